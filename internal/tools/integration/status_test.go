package integration

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// statusDoc is what status -o json prints, the fields the test reads.
type statusDoc struct {
	Description string `json:"description"`
	Verdict     string `json:"verdict"`
	Interfaces  []struct {
		Name      string `json:"name"`
		State     string `json:"state"`
		Described bool   `json:"described"`
		Addresses []struct {
			Address      string  `json:"address"`
			Dynamic      bool    `json:"dynamic"`
			ValidSeconds *uint32 `json:"valid_seconds"`
		} `json:"addresses"`
		Tables []struct {
			ID     uint32 `json:"id"`
			Name   string `json:"name"`
			Routes *int   `json:"routes"`
		} `json:"tables"`
		Rules []struct {
			Priority uint32 `json:"priority"`
			Selector string `json:"selector"`
			Table    uint32 `json:"table"`
		} `json:"rules"`
		RPFilter *struct {
			Effective string `json:"effective"`
			Why       string `json:"why"`
		} `json:"rp_filter"`
		Networkd *struct {
			State       string   `json:"state"`
			NetworkFile string   `json:"network_file"`
			Dropins     []string `json:"dropins"`
			DropinsFrom string   `json:"dropins_from"`
		} `json:"networkd"`
		Verdict string `json:"verdict"`
	} `json:"interfaces"`
}

// status runs symroute status -o json with args and decodes what it prints.
func (s *site) status(args ...string) statusDoc {
	s.t.Helper()
	out := s.mustSymroute(0, append([]string{"status", "-o", "json"}, args...)...)
	var doc statusDoc
	// Notes go to standard error, which symroute shares with the JSON here: the object starts at the first '{'.
	if i := strings.IndexByte(out, '{'); i < 0 || json.Unmarshal([]byte(out[i:]), &doc) != nil {
		s.t.Fatalf("status -o json printed no JSON:\n%s", out)
	}
	return doc
}

// TestStatusShowsEveryInterface: on a host someone configured by hand (no description), status lists its links
// with their addresses (a leased one with its time left), the rules that select them and their tables' routes,
// and networkd leaving them alone. After apply, status with the description names every described interface
// with its table id and rules, networkd's file and a drop-in from the real networkd 252, and verify's verdict.
func TestStatusShowsEveryInterface(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	s.Host.IP("addr", "add", "192.168.1.77/24", "dev", "eth-a", "valid_lft", "600", "preferred_lft", "600")
	s.Host.IP("route", "add", "10.99.0.0/16", "via", "10.0.0.254", "table", "100")
	s.Host.IP("rule", "add", "pref", "100", "iif", "eth-b", "lookup", "100")

	doc := s.status()
	if doc.Verdict != "no description" || doc.Description != "" {
		t.Errorf("without a description: verdict %q, description %q", doc.Verdict, doc.Description)
	}
	var names []string
	for _, ifc := range doc.Interfaces {
		names = append(names, ifc.Name)
		if ifc.State != "up" || ifc.Described || ifc.Verdict != "no description" || ifc.Networkd == nil || ifc.Networkd.State != "unmanaged" {
			t.Errorf("%s: %+v", ifc.Name, ifc)
		}
	}
	if slices.Sort(names); !slices.Equal(names, []string{"eth-a", "eth-b"}) {
		t.Fatalf("links %v, want eth-a and eth-b (lo is left out)", names)
	}
	a, b := doc.Interfaces[0], doc.Interfaces[1]
	if a.Name != "eth-a" {
		a, b = b, a
	}
	if len(a.Addresses) != 2 || a.Addresses[0].Address != "192.168.1.10/24" || a.Addresses[0].Dynamic ||
		!a.Addresses[1].Dynamic || a.Addresses[1].ValidSeconds == nil || *a.Addresses[1].ValidSeconds == 0 || *a.Addresses[1].ValidSeconds > 600 {
		t.Errorf("eth-a's addresses: %+v", a.Addresses)
	}
	if len(b.Rules) != 1 || b.Rules[0].Priority != 100 || b.Rules[0].Selector != "from all iif eth-b" || b.Rules[0].Table != 100 ||
		len(b.Tables) != 1 || b.Tables[0].ID != 100 || b.Tables[0].Routes == nil || *b.Tables[0].Routes != 1 {
		t.Errorf("eth-b's rules %+v, tables %+v", b.Rules, b.Tables)
	}
	if len(a.Rules) != 0 || a.RPFilter == nil || a.RPFilter.Effective != "off" {
		t.Errorf("eth-a: rules %+v, rp_filter %+v", a.Rules, a.RPFilter)
	}

	desc := s.describe("two-nic.yaml", twoNICDescription("loose"))
	s.mustSymroute(0, "apply", "-c", desc)
	// A drop-in networkd applies (the MTU shows it did), though networkd 252 does not list it: status finds it
	// beside the file networkd names.
	s.writeFile("etc/systemd/network/10-symroute-eth-b.network.d/50-status-test.conf", "[Link]\nMTUBytes=1400\n")
	s.reloadNetworkd()
	h := s.Host.Handle()
	defer h.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if l, err := h.LinkByName("eth-b"); err == nil && l.Attrs().MTU == 1400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("networkd did not apply the drop-in's MTU in 20 s; log:\n%s", s.Networkd.Log())
		}
	}
	s.Networkd.WaitConfigured(t, s.Host, 20*time.Second, "eth-b")

	doc = s.status("-c", desc)
	if doc.Verdict != "ok" || doc.Description != desc || len(doc.Interfaces) != 2 {
		t.Fatalf("with the description: %+v", doc)
	}
	for i, want := range []struct {
		name   string
		table  uint32
		rule   uint32
		source string
	}{{"eth-a", 1000000, 20010, "from " + hostA}, {"eth-b", 1000001, 20020, "from " + hostB}} {
		ifc := doc.Interfaces[i]
		if ifc.Name != want.name || !ifc.Described || ifc.Verdict != "ok" || len(ifc.Tables) == 0 || ifc.Tables[0].ID != want.table ||
			ifc.Tables[0].Name != "symroute-"+want.name || ifc.Tables[0].Routes == nil || *ifc.Tables[0].Routes == 0 {
			t.Errorf("%s: %+v", want.name, ifc)
		}
		if !slices.ContainsFunc(ifc.Rules, func(r struct {
			Priority uint32 `json:"priority"`
			Selector string `json:"selector"`
			Table    uint32 `json:"table"`
		}) bool {
			return r.Priority == want.rule && r.Selector == want.source && r.Table == want.table
		}) {
			t.Errorf("%s's rules %+v lack %d: %s lookup %d", want.name, ifc.Rules, want.rule, want.source, want.table)
		}
		if ifc.RPFilter == nil || ifc.RPFilter.Why != "loose (all=0, "+want.name+"=2)" {
			t.Errorf("%s's rp_filter %+v", want.name, ifc.RPFilter)
		}
		if ifc.Networkd == nil || ifc.Networkd.State != "configured" || ifc.Networkd.NetworkFile != "/etc/systemd/network/10-symroute-"+want.name+".network" {
			t.Errorf("%s's networkd %+v", want.name, ifc.Networkd)
		}
	}
	if d := doc.Interfaces[1].Networkd; d == nil || !slices.Equal(d.Dropins, []string{"/etc/systemd/network/10-symroute-eth-b.network.d/50-status-test.conf"}) || d.DropinsFrom != "files" {
		t.Errorf("eth-b's drop-ins as networkd reports them: %+v", d)
	}

	out := s.mustSymroute(0, "status", "-c", desc, "eth-b")
	for _, want := range []string{"symroute status: ok: " + desc, "eth-b  up", "  tables     1000001 symroute-eth-b (", "  drop-ins   /etc/systemd/network/10-symroute-eth-b.network.d/50-status-test.conf\n", "  verdict    ok\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("status eth-b lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "eth-a  ") || strings.ContainsRune(out, 0x1b) {
		t.Errorf("status eth-b shows eth-a, or colour on a pipe:\n%s", out)
	}
	if code, out := s.symroute("status", "-c", desc, "eth-c"); code != 2 || !strings.Contains(out, `no interface "eth-c"; the described interfaces are eth-a, eth-b`) {
		t.Errorf("status eth-c: exit %d:\n%s", code, out)
	}
}

package state

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"testing/fstest"

	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/core/status"
)

// links answers Links from the fake kernel's links.
func (k *fakeKernel) Links() ([]routing.Link, error) {
	var out []routing.Link
	for name, i := range k.links {
		out = append(out, routing.Link{Index: i, Name: name, Loopback: name == "lo", OperState: "up"})
	}
	slices.SortFunc(out, func(a, b routing.Link) int { return a.Index - b.Index })
	return out, k.fail["Links"]
}

func (k *fakeKernel) AllAddresses() (map[int][]routing.Address, error) {
	return k.addresses, k.fail["Addresses"]
}

// TestStatusReadsWhatItShows: with a description, status reads the planned tables alone (never main), each link's
// addresses, rp_filter and networkd's file and drop-ins; the report names every interface with its table and
// rule. Networkd not answering is a note.
func TestStatusReadsWhatItShows(t *testing.T) {
	p := testPlan(t)
	h := healthyHost(p)
	h.kernel.addresses = map[int][]routing.Address{2: {{Prefix: netip.MustParsePrefix("192.168.1.10/24")}}}
	h.networkd.links[2].NetworkFileDropins = []string{"/etc/systemd/network/10-symroute-eth-a.network.d/50-mtu.conf"}
	res := h.verify(t, p)
	h.kernel.tablesRead = nil
	// networkd 252 lists no drop-ins: those of eth-b's file are found in the root, as networkd reads them.
	root := fstest.MapFS{"etc/systemd/network/10-symroute-eth-b.network.d/50-mtu.conf": {Data: []byte("[Link]\nMTUBytes=1400\n")}}
	snap, err := Status(context.Background(), p, &res, h.sources(), h.kernel, root)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.kernel.tablesRead, []uint32{1000000, 1000001, 1000002}) {
		t.Errorf("tables read: %v", h.kernel.tablesRead)
	}
	r := status.Build(snap)
	if !reflect.DeepEqual(r.Names(), []string{"eth-a", "eth-b", "eth-c"}) || r.Verdict != status.OK {
		t.Fatalf("report: %+v", r)
	}
	a := r.Interfaces[0]
	if a.Tables[0].ID != 1000000 || len(a.Rules) == 0 || a.RPFilter.Why != "loose (all=0, eth-a=2)" || a.Networkd == nil || len(a.Networkd.Dropins) != 1 ||
		a.Networkd.DropinsFrom != status.FromNetworkd || len(a.Addresses) != 1 {
		t.Errorf("eth-a: %+v", a)
	}
	if b := r.Interfaces[1].Networkd; b == nil || b.DropinsFrom != status.FromFiles || !slices.Equal(b.Dropins, []string{"/etc/systemd/network/10-symroute-eth-b.network.d/50-mtu.conf"}) {
		t.Errorf("eth-b's networkd: %+v", b)
	}

	h.networkd.err = errors.New("no such name")
	snap, err = Status(context.Background(), nil, nil, h.sources(), h.kernel, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = status.Build(snap)
	if !reflect.DeepEqual(r.Names(), []string{"eth-a", "eth-b", "eth-c"}) || r.Verdict != status.NoDescription || snap.Networkd != nil || len(r.Notes) != 1 {
		t.Errorf("without a description and networkd: %+v", r)
	}
	h.kernel.fail["Links"] = errors.New("netlink: operation not permitted")
	if _, err := Status(context.Background(), nil, nil, h.sources(), h.kernel, nil); err == nil {
		t.Error("a kernel that cannot list its links gave no error")
	}
}

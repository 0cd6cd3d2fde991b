package generator_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ign "github.com/coreos/ignition/v2/config/v3_3"
	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// validCases renders every valid golden case's files, as generate does.
func validCases(t *testing.T) map[string][]fileset.File {
	t.Helper()
	wants, err := filepath.Glob("../golden/*/want")
	if err != nil || len(wants) == 0 {
		t.Fatalf("no valid golden cases: %v", err)
	}
	out := map[string][]fileset.File{}
	for _, want := range wants {
		dir := filepath.Dir(want)
		data, err := os.ReadFile(filepath.Join(dir, "input.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		h, rep := description.Parse(data)
		p, planRep := plan.Build(h)
		rep.Merge(planRep)
		files, genRep, err := generator.Generate(p, generator.Options{Source: "input.yaml", Root: os.DirFS(filepath.Join(dir, "root"))})
		rep.Merge(genRep)
		if err != nil || rep.HasErrors(false) {
			t.Fatalf("%s: %v %v", dir, err, rep.Entries)
		}
		out[filepath.Base(dir)] = files
	}
	return out
}

func encode(t *testing.T, files []fileset.File, f generator.Format) []byte {
	t.Helper()
	doc, err := generator.Encode(files, f, "input.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// sameFiles compares what a provisioning document would write with what generate writes.
func sameFiles(t *testing.T, format string, files []fileset.File, got written) {
	t.Helper()
	if len(got) != len(files) {
		t.Errorf("%s carries %d files, generate writes %d", format, len(got), len(files))
	}
	for _, f := range files {
		g, ok := got["/"+f.Path]
		switch {
		case !ok:
			t.Errorf("%s lacks /%s", format, f.Path)
		case f.Link != "":
			if g.link != f.Link || g.data != nil {
				t.Errorf("%s's /%s is not generate's link to %s (link %q, %d bytes)", format, f.Path, f.Link, g.link, len(g.data))
			}
		case g.link != "" || g.mode != int(f.Mode.Perm()) || !bytes.Equal(g.data, f.Data):
			t.Errorf("%s's /%s differs from generate's (mode %o, %d bytes vs %d, link %q)", format, f.Path, g.mode, len(g.data), len(f.Data), g.link)
		}
	}
}

// node is a file a document writes, its mode and bytes, or a symbolic link it makes, its target.
type node struct {
	mode int
	data []byte
	link string
}

type written = map[string]node

// ignitionFiles validates an Ignition config with the Ignition config library, the code ignition-validate
// runs, and returns the files it writes (each source a base64 data URL, gzip-compressed where the config says so,
// as Butane writes them) and the symbolic links it makes.
func ignitionFiles(t *testing.T, doc []byte) written {
	t.Helper()
	cfg, rep, err := ign.Parse(doc)
	if err != nil || len(rep.Entries) > 0 {
		t.Fatalf("Ignition rejects the config: %v\n%s", err, rep.String())
	}
	out := written{}
	for _, f := range cfg.Storage.Files {
		data := dataURL(t, f.Path, *f.Contents.Source)
		if c := f.Contents.Compression; c != nil && *c != "" {
			if *c != "gzip" {
				t.Fatalf("%s: compression %q", f.Path, *c)
			}
			z, err := gzip.NewReader(bytes.NewReader(data))
			if err == nil {
				data, err = io.ReadAll(z)
			}
			if err != nil {
				t.Fatalf("%s: gzip: %v", f.Path, err)
			}
		}
		if f.Overwrite == nil || !*f.Overwrite {
			t.Errorf("%s is not overwritten on reprovisioning", f.Path)
		}
		out[f.Path] = node{mode: *f.Mode, data: data}
	}
	for _, l := range cfg.Storage.Links {
		if l.Target == nil || l.Hard != nil && *l.Hard || l.Overwrite == nil || !*l.Overwrite {
			t.Errorf("%s is not a symbolic link with a target, replacing what is there", l.Path)
			continue
		}
		out[l.Path] = node{link: *l.Target}
	}
	return out
}

// dataURL decodes a data URL without a media type, base64 or percent-encoded, the two forms Ignition configs
// carry.
func dataURL(t *testing.T, path, src string) []byte {
	t.Helper()
	if b64, ok := strings.CutPrefix(src, "data:;base64,"); ok {
		data, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("%s: source %q: %v", path, src, err)
		}
		return data
	}
	if raw, ok := strings.CutPrefix(src, "data:,"); ok {
		data, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatalf("%s: source %q: %v", path, src, err)
		}
		return []byte(data)
	}
	t.Fatalf("%s: source %q is not a data URL", path, src)
	return nil
}

func TestIgnitionOutputValidates(t *testing.T) {
	for name, files := range validCases(t) {
		t.Run(name, func(t *testing.T) {
			sameFiles(t, "ignition", files, ignitionFiles(t, encode(t, files, generator.FormatIgnition)))
		})
	}
}

// butaneDoc is the part of Butane's flatcar variant symroute emits; decoding it strictly rejects any other key.
type butaneDoc struct {
	Variant string `yaml:"variant"`
	Version string `yaml:"version"`
	Storage struct {
		Files []struct {
			Path      string `yaml:"path"`
			Mode      int    `yaml:"mode"`
			Overwrite bool   `yaml:"overwrite"`
			Contents  struct {
				Inline string `yaml:"inline"`
			} `yaml:"contents"`
		} `yaml:"files"`
		Links []struct {
			Path      string `yaml:"path"`
			Target    string `yaml:"target"`
			Hard      bool   `yaml:"hard"`
			Overwrite bool   `yaml:"overwrite"`
		} `yaml:"links"`
	} `yaml:"storage"`
}

// butaneFiles reads a Butane document back as YAML with no unknown key, requires Flatcar's variant, and returns
// the files and links it carries.
func butaneFiles(t *testing.T, doc []byte) written {
	t.Helper()
	var d butaneDoc
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Variant != generator.ButaneVariant || d.Version != generator.ButaneVersion {
		t.Fatalf("variant %q version %q", d.Variant, d.Version)
	}
	got := written{}
	for _, f := range d.Storage.Files {
		if !f.Overwrite {
			t.Errorf("%s is not overwritten on reprovisioning", f.Path)
		}
		got[f.Path] = node{mode: f.Mode, data: []byte(f.Contents.Inline)}
	}
	for _, l := range d.Storage.Links {
		if l.Hard || !l.Overwrite {
			t.Errorf("%s is not a symbolic link replacing what is there", l.Path)
		}
		got[l.Path] = node{link: l.Target}
	}
	return got
}

// TestButaneCarriesEveryFile: every valid case's Butane document, read back as YAML with no unknown key, names
// Flatcar's variant and carries exactly generate's files, bytes and modes. What Butane makes of such a document
// is TestRealButaneTranslatesTheDocument's.
func TestButaneCarriesEveryFile(t *testing.T) {
	for name, files := range validCases(t) {
		t.Run(name, func(t *testing.T) {
			sameFiles(t, "butane", files, butaneFiles(t, encode(t, files, generator.FormatButane)))
		})
	}
}

// butaneFixture holds files whose bytes a YAML encoder can get wrong: an indented first line, no final newline,
// trailing blank lines, YAML's own markers, quotes, a tab, a backslash and UTF-8; an empty file; other modes; and
// one large enough that Butane compresses it.
var butaneFixture = []fileset.File{
	{Path: "etc/sysctl.d/90-symroute.conf", Mode: 0o644, Data: []byte(strings.Repeat("# eth-a: loose\nnet.ipv4.conf.eth-a.rp_filter = 2\n", 16))},
	{Path: "etc/systemd/network/10-symroute-bond0.100.network", Mode: 0o644, Data: []byte("# Generated by symroute from input.yaml.\n\n[Match]\nName=bond0.100\n\n[Network]\nAddress=192.168.1.10/24\n\n[RoutingPolicyRule]\nFrom=192.168.1.10/32\nTable=1000000\nPriority=20010\n")},
	{Path: "etc/symroute-fixture/indented", Mode: 0o600, Data: []byte("  starts with spaces\n\tthen a tab\n")},
	{Path: "etc/symroute-fixture/no-final-newline", Mode: 0o644, Data: []byte("key: value # not a comment")},
	{Path: "etc/symroute-fixture/trailing-blank-lines", Mode: 0o644, Data: []byte("x\n\n\n")},
	{Path: "etc/symroute-fixture/markers", Mode: 0o755, Data: []byte("---\n...\n- item\n'single' \"double\" back\\slash\nété ✓\n")},
	{Path: "etc/symroute-fixture/empty", Mode: 0o644, Data: []byte{}},
}

// TestRealButaneTranslatesTheDocument: golden/butane/butane.ign is what the real Butane made of butane.yaml, the
// fixture's Butane document, with --strict (no warning). The Ignition config library validates it, and the files
// it writes are the fixture's, byte for byte. butane.sha256 names the document Butane translated: when the
// encoder changes the document, the test fails until Butane translates it again (golden/butane/README.md).
func TestRealButaneTranslatesTheDocument(t *testing.T) {
	const dir = "../golden/butane"
	doc := encode(t, butaneFixture, generator.FormatButane)
	golden.File(t, filepath.Join(dir, "butane.yaml"), doc)
	sum := sha256.Sum256(doc)
	recorded, err := os.ReadFile(filepath.Join(dir, "butane.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(sum[:]) + "  butane.yaml\n"; string(recorded) != want {
		t.Fatalf("butane.yaml is not the document Butane translated into butane.ign (butane.sha256 says %q, the document is %q): translate it again as golden/butane/README.md says", recorded, want)
	}
	ign, err := os.ReadFile(filepath.Join(dir, "butane.ign"))
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, "Butane's translation", butaneFixture, ignitionFiles(t, ign))
}

// cloudInitFiles validates a #cloud-config document with Debian's cloud-init schema and returns the files it
// writes and the links its runcmd makes: systemctl enable, which must come before networkd takes the files up,
// makes a link to the unit in the wants directory of each target its [Install] section names.
func cloudInitFiles(t *testing.T, cloudInit string, doc []byte) written {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte("#cloud-config\n")) {
		t.Fatalf("the document does not start with #cloud-config")
	}
	path := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cloudInit, "schema", "--config-file", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
		t.Fatalf("cloud-init schema rejects the document: %v\n%s", err, out)
	}
	var cfg struct {
		WriteFiles []struct {
			Path, Owner, Permissions, Content string
		} `yaml:"write_files"`
		RunCmd [][]string `yaml:"runcmd"`
	}
	if err := yaml.Unmarshal(doc, &cfg); err != nil {
		t.Fatal(err)
	}
	got := written{}
	for _, f := range cfg.WriteFiles {
		var mode int
		if _, err := fmtSscanOctal(f.Permissions, &mode); err != nil || f.Owner != "root:root" {
			t.Errorf("%s: permissions %q owner %q", f.Path, f.Permissions, f.Owner)
		}
		got[f.Path] = node{mode: mode, data: []byte(f.Content)}
	}
	takenUp := false
	for _, cmd := range cfg.RunCmd {
		if strings.HasPrefix(strings.Join(cmd, " "), "systemctl enable ") {
			if takenUp {
				t.Errorf("%q comes after networkd takes the files up", cmd)
			}
			continue
		}
		takenUp = takenUp || cmd[0] == "networkctl" || strings.Contains(cmd[len(cmd)-1], "networkd")
	}
	if !takenUp {
		t.Error("no runcmd reloads networkd: the files would wait for the next boot")
	}
	for p, target := range enabledLinks(cfg.RunCmd, func(p string) []byte { return got[p].data }) {
		got[p] = node{link: target}
	}
	return got
}

// enabledLinks are the links systemctl enable makes for each unit a runcmd enables: one to the unit in the wants
// directory of each target its [Install] section names. unit gives a unit file's bytes by path.
func enabledLinks(runcmd [][]string, unit func(path string) []byte) map[string]string {
	out := map[string]string{}
	for _, cmd := range runcmd {
		name, enable := strings.CutPrefix(strings.Join(cmd, " "), "systemctl enable ")
		if !enable {
			continue
		}
		name = strings.TrimPrefix(name, "--now ") // starting it too makes no other link
		unitPath := "/etc/systemd/system/" + name
		for line := range strings.SplitSeq(string(unit(unitPath)), "\n") {
			if by, ok := strings.CutPrefix(line, "WantedBy="); ok {
				for _, target := range strings.Fields(by) {
					out["/etc/systemd/system/"+target+".wants/"+name] = unitPath
				}
			}
		}
	}
	return out
}

func TestCloudInitOutputValidates(t *testing.T) {
	cloudInit := testenv.Program(t, "cloud-init", "cloud-init")
	for name, files := range validCases(t) {
		t.Run(name, func(t *testing.T) {
			sameFiles(t, "cloud-init", files, cloudInitFiles(t, cloudInit, encode(t, files, generator.FormatCloudInit)))
		})
	}
}

// linkFixture is a unit and the link systemctl enable makes for it, with a file networkd takes up.
var linkFixture = []fileset.File{
	{Path: ownership.SysctlPath, Mode: 0o644, Data: []byte("# Generated by symroute from input.yaml.\nnet.ipv4.conf.eth0.rp_filter = 2\n")},
	{Path: ownership.ConnmarkUnitPath, Mode: 0o644, Data: []byte("# Generated by symroute from input.yaml.\n[Unit]\nDescription=x\n\n[Install]\nWantedBy=sysinit.target\n")},
	{Path: ownership.ConnmarkWantsLink, Mode: fs.ModeSymlink | 0o777, Link: "/" + ownership.ConnmarkUnitPath},
}

// TestFormatsCarryLinks: each provisioning document makes the unit's enablement link, and passes the same
// validator as the files: Ignition's config library, Butane's keys decoded strictly, cloud-init's schema (where
// systemctl enable makes the link).
func TestFormatsCarryLinks(t *testing.T) {
	sameFiles(t, "ignition", linkFixture, ignitionFiles(t, encode(t, linkFixture, generator.FormatIgnition)))
	sameFiles(t, "butane", linkFixture, butaneFiles(t, encode(t, linkFixture, generator.FormatButane)))
	for _, format := range []generator.Format{generator.FormatButane, generator.FormatIgnition, generator.FormatCloudInit} {
		checkDocument(t, format, encode(t, linkFixture, format), linkFixture) // as FuzzPipeline reads it
	}
	cloudInit := testenv.Program(t, "cloud-init", "cloud-init")
	sameFiles(t, "cloud-init", linkFixture, cloudInitFiles(t, cloudInit, encode(t, linkFixture, generator.FormatCloudInit)))
}

// TestCloudInitRefusesLinksEnableCannotMake: a link that is not the one systemctl enable makes for a unit written
// with it cannot be carried by cloud-init, and is refused rather than left out.
func TestCloudInitRefusesLinksEnableCannotMake(t *testing.T) {
	unit, link := linkFixture[1], linkFixture[2]
	otherTarget := bytes.Replace(unit.Data, []byte("WantedBy=sysinit.target"), []byte("WantedBy=multi-user.target"), 1)
	for name, files := range map[string][]fileset.File{
		"not in a wants directory": {unit, {Path: "etc/symroute/link", Link: link.Link}},
		"to another unit":          {unit, {Path: link.Path, Link: "/etc/systemd/system/other.service"}},
		"unit not written":         {link},
		"unit wanted by another":   {{Path: unit.Path, Mode: 0o644, Data: otherTarget}, link},
		"an option for a name": {{Path: "etc/systemd/system/-x.service", Mode: 0o644, Data: unit.Data},
			{Path: "etc/systemd/system/sysinit.target.wants/-x.service", Link: "/etc/systemd/system/-x.service"}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := generator.Encode(files, generator.FormatCloudInit, "input.yaml"); err == nil || !strings.Contains(err.Error(), "cloud-init cannot make the link") {
				t.Errorf("Encode: %v", err)
			}
		})
	}
}

// TestFormatGolden keeps one case's documents in golden/ for review.
func TestFormatGolden(t *testing.T) {
	files := validCases(t)["two-nic-lan-client"]
	for format, name := range map[generator.Format]string{generator.FormatButane: "butane.yaml", generator.FormatIgnition: "ignition.json", generator.FormatCloudInit: "cloud-init.yaml"} {
		golden.File(t, filepath.Join("../golden/two-nic-lan-client/formats", name), encode(t, files, format))
	}
}

func fmtSscanOctal(s string, v *int) (int, error) { return fmt.Sscanf(s, "%o", v) }

package generator_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ign "github.com/coreos/ignition/v2/config/v3_3"
	igntypes "github.com/coreos/ignition/v2/config/v3_3/types"
	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/fileset"
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
func sameFiles(t *testing.T, format string, files []fileset.File, got map[string]struct {
	mode int
	data []byte
}) {
	t.Helper()
	if len(got) != len(files) {
		t.Errorf("%s carries %d files, generate writes %d", format, len(got), len(files))
	}
	for _, f := range files {
		g, ok := got["/"+f.Path]
		if !ok {
			t.Errorf("%s lacks /%s", format, f.Path)
			continue
		}
		if g.mode != int(f.Mode.Perm()) || !bytes.Equal(g.data, f.Data) {
			t.Errorf("%s's /%s differs from generate's (mode %o, %d bytes vs %d)", format, f.Path, g.mode, len(g.data), len(f.Data))
		}
	}
}

type written = map[string]struct {
	mode int
	data []byte
}

// ignitionFiles validates an Ignition config with the Ignition config library, the code ignition-validate
// runs, and returns the files it writes.
func ignitionFiles(t *testing.T, doc []byte) written {
	t.Helper()
	cfg, rep, err := ign.Parse(doc)
	if err != nil || len(rep.Entries) > 0 {
		t.Fatalf("Ignition rejects the config: %v\n%s", err, rep.String())
	}
	out := written{}
	for _, f := range cfg.Storage.Files {
		src := *f.Contents.Source
		data, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(src, "data:;base64,"))
		if err != nil || !strings.HasPrefix(src, "data:;base64,") {
			t.Fatalf("%s: source %q: %v", f.Path, src, err)
		}
		if f.Overwrite == nil || !*f.Overwrite {
			t.Errorf("%s is not overwritten on reprovisioning", f.Path)
		}
		out[f.Path] = struct {
			mode int
			data []byte
		}{*f.Mode, data}
	}
	return out
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
	} `yaml:"storage"`
}

// TestButaneOutputValidates: the Butane module is not served by the module proxy, so the Butane document is
// translated here as Butane translates storage.files (inline contents become a data URL) into the Ignition
// library's types for the spec flatcar 1.0.0 targets, and the result is validated by that library.
func TestButaneOutputValidates(t *testing.T) {
	for name, files := range validCases(t) {
		t.Run(name, func(t *testing.T) {
			var doc butaneDoc
			dec := yaml.NewDecoder(bytes.NewReader(encode(t, files, generator.FormatButane)))
			dec.KnownFields(true)
			if err := dec.Decode(&doc); err != nil {
				t.Fatal(err)
			}
			if doc.Variant != "flatcar" || doc.Version != "1.0.0" {
				t.Fatalf("variant %q version %q", doc.Variant, doc.Version)
			}
			var cfg igntypes.Config
			cfg.Ignition.Version = "3.3.0"
			for _, f := range doc.Storage.Files {
				mode, overwrite := f.Mode, f.Overwrite
				source := "data:;base64," + base64.StdEncoding.EncodeToString([]byte(f.Contents.Inline))
				var file igntypes.File
				file.Path, file.Overwrite = f.Path, &overwrite
				file.Mode, file.Contents.Source = &mode, &source
				cfg.Storage.Files = append(cfg.Storage.Files, file)
			}
			raw, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			sameFiles(t, "butane", files, ignitionFiles(t, raw))
		})
	}
}

func TestCloudInitOutputValidates(t *testing.T) {
	cloudInit := testenv.Program(t, "cloud-init", "cloud-init")
	for name, files := range validCases(t) {
		t.Run(name, func(t *testing.T) {
			doc := encode(t, files, generator.FormatCloudInit)
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
				got[f.Path] = struct {
					mode int
					data []byte
				}{mode, []byte(f.Content)}
			}
			sameFiles(t, "cloud-init", files, got)
			if len(cfg.RunCmd) == 0 {
				t.Error("no runcmd: the files would wait for the next boot")
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

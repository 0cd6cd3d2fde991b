package generator_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/plan"
)

// fuzzRoot is a system with the files the golden drop-in cases extend, so drop-in mode renders too.
var fuzzRoot = fstest.MapFS{
	"run/systemd/network/10-netplan-eth-b.network": {Data: []byte("[Match]\nName=eth-b\n")},
	"run/systemd/network/10-netplan-eth1.network":  {Data: []byte("[Match]\nName=eth1\n")},
	"usr/lib/systemd/network/zz-default.network":   {Data: []byte("[Match]\nName=*\n")},
	"etc/sysctl.d/99-x.conf":                       {Data: []byte("net.ipv4.conf.all.rp_filter = 1\n")},
}

// FuzzPipeline runs check and render on arbitrary descriptions, seeded with every golden description. Whatever
// the input, either validation refuses it, or every rendered file (and every provisioning document) is one the
// target reads as symroute meant: no NUL or other control byte, every line of a networkd file blank, a comment,
// a section or one Key=Value, no glob or list in a name, and each document carrying exactly the files' bytes. The
// second wall inside Generate must never be what refuses: validation comes first.
func FuzzPipeline(f *testing.F) {
	seeds, _ := filepath.Glob("../golden/*/input.yaml")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, rep := description.Parse(data)
		if rep.HasErrors(false) {
			return
		}
		p, planRep := plan.Build(h)
		if planRep.HasErrors(false) {
			return
		}
		files, genRep, err := generator.Generate(p, generator.Options{Source: "host.yaml", Root: fuzzRoot})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range genRep.Entries {
			if strings.Contains(e.Message, "refusing to write") {
				t.Fatalf("validation let a value through to the second wall: %s", e.Message)
			}
		}
		if genRep.HasErrors(false) {
			return
		}
		for _, f := range files {
			checkRendered(t, f)
		}
		for _, format := range []generator.Format{generator.FormatButane, generator.FormatIgnition, generator.FormatCloudInit} {
			doc, err := generator.Encode(files, format, "host.yaml")
			if err != nil {
				t.Fatal(err)
			}
			checkDocument(t, format, doc, files)
		}
	})
}

// checkRendered reads a rendered file the way its consumer would, independently of the generator's own wall.
func checkRendered(t *testing.T, f fileset.File) {
	t.Helper()
	if bytes.ContainsFunc(f.Data, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }) {
		t.Fatalf("%s holds a control byte:\n%q", f.Path, f.Data)
	}
	sc := bufio.NewScanner(bytes.NewReader(f.Data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		switch {
		case strings.HasSuffix(f.Path, ".network") || strings.HasSuffix(f.Path, ".conf") && strings.Contains(f.Path, "systemd/"):
			if strings.HasSuffix(line, "\\") {
				t.Fatalf("%s: a line networkd continues: %q", f.Path, line)
			}
			if line[0] == '[' {
				continue
			}
			key, value, ok := strings.Cut(line, "=")
			if !ok || strings.ContainsAny(key, " \t") {
				t.Fatalf("%s: not one Key=Value: %q", f.Path, line)
			}
			if key == "Name" && (strings.ContainsAny(value, "*?[]\\ \t\"'") || value == "" || value[0] == '!') {
				t.Fatalf("%s: a pattern, list or quote in Name=: %q", f.Path, line)
			}
		case strings.HasPrefix(f.Path, "etc/sysctl.d/"):
			key, value, ok := strings.Cut(line, " = ")
			if !ok || strings.ContainsAny(key, "*?[= ") || strings.Trim(value, "012") != "" {
				t.Fatalf("%s: not one explicit key = value: %q", f.Path, line)
			}
		case strings.HasPrefix(f.Path, "etc/iproute2/"):
			if fields := strings.Fields(line); len(fields) != 2 {
				t.Fatalf("%s: not <id> <name>: %q", f.Path, line)
			}
		}
	}
}

// checkDocument decodes a provisioning document and requires exactly the files' bytes in it, and their links
// (shown as "-> target").
func checkDocument(t *testing.T, format generator.Format, doc []byte, files []fileset.File) {
	t.Helper()
	got := map[string]string{}
	switch format {
	case generator.FormatIgnition:
		var cfg struct {
			Storage struct {
				Files []struct {
					Path     string
					Contents struct{ Source string }
				}
				Links []struct{ Path, Target string }
			}
		}
		if err := json.Unmarshal(doc, &cfg); err != nil {
			t.Fatalf("ignition: %v", err)
		}
		for _, f := range cfg.Storage.Files {
			data, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(f.Contents.Source, "data:;base64,"))
			if err != nil {
				t.Fatal(err)
			}
			got[f.Path] = string(data)
		}
		for _, l := range cfg.Storage.Links {
			got[l.Path] = "-> " + l.Target
		}
	default:
		var cfg struct {
			Storage struct {
				Files []struct {
					Path     string
					Contents struct{ Inline string }
				}
				Links []struct{ Path, Target string }
			}
			WriteFiles []struct {
				Path    string
				Content string
			} `yaml:"write_files"`
			RunCmd [][]string     `yaml:"runcmd"`
			Other  map[string]any `yaml:",inline"`
		}
		if err := yaml.Unmarshal(doc, &cfg); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		for _, f := range cfg.Storage.Files {
			got[f.Path] = f.Contents.Inline
		}
		for _, l := range cfg.Storage.Links {
			got[l.Path] = "-> " + l.Target
		}
		for _, f := range cfg.WriteFiles {
			got[f.Path] = f.Content
		}
		for p, target := range enabledLinks(cfg.RunCmd, func(p string) []byte { return []byte(got[p]) }) {
			got[p] = "-> " + target
		}
		for k := range cfg.Other {
			if k != "variant" && k != "version" {
				t.Fatalf("%s: unexpected top-level key %q", format, k)
			}
		}
	}
	if len(got) != len(files) {
		t.Fatalf("%s carries %d files, want %d", format, len(got), len(files))
	}
	for _, f := range files {
		want := string(f.Data)
		if f.Link != "" {
			want = "-> " + f.Link
		}
		if got["/"+f.Path] != want {
			t.Fatalf("%s: %s differs from the file's bytes", format, f.Path)
		}
	}
}

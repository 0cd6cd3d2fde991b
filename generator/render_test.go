package generator

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"text/template"
)

// TestRenderAllReportsTheFirstRefusedFileInOrder: files render concurrently, but the file the second wall refuses
// is the first refused one in the order they were added, whichever finished first, and every good file is whole.
func TestRenderAllReportsTheFirstRefusedFileInOrder(t *testing.T) {
	tmpl := template.Must(template.New("").Parse(`{{define "file"}}[Match]
Name={{.}}
{{end}}`))
	for range 20 {
		g := &gen{tmpl: tmpl}
		for i := range 64 {
			name := fmt.Sprintf("eth%d", i)
			if i == 17 || i == 40 {
				name = "bad name"
			}
			g.render(fmt.Sprintf("etc/systemd/network/%02d.network", i), "file", name)
		}
		renderErr, checkErr := g.renderAll()
		if renderErr != nil {
			t.Fatal(renderErr)
		}
		if checkErr == nil || !strings.HasPrefix(checkErr.Error(), "/etc/systemd/network/17.network:") {
			t.Fatalf("checkErr = %v, want the refusal of 17.network", checkErr)
		}
		if got := string(g.files[63].Data); got != "[Match]\nName=eth63\n" {
			t.Fatalf("file 63 = %q", got)
		}
	}
}

// TestTidyCollapsesBlankRuns: tidy does what collapsing every run of three or more newlines to two, and ending
// the file with exactly one newline, does.
func TestTidyCollapsesBlankRuns(t *testing.T) {
	runs := regexp.MustCompile(`\n{3,}`)
	for _, in := range []string{
		"", "\n", "\n\n\n\n", "a", "a\n", "a\n\n", "a\n\n\nb", "\n\n\na\n\n\n\n\nb\n\nc\n\n\n",
		"[Match]\nName=x\n\n\n\n[Network]\nAddress=10.0.0.1/24\n\n\n",
	} {
		want := string(bytes.TrimRight(runs.ReplaceAll([]byte(in), []byte("\n\n")), "\n")) + "\n"
		if got := string(tidy([]byte(in))); got != want {
			t.Errorf("tidy(%q) = %q, want %q", in, got, want)
		}
	}
}

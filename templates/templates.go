// Package templates holds the text/template files symroute renders. They live at the top of the repository so
// a reviewer can read the shape of every generated file without reading Go; the logic stays in generator/.
package templates

import "embed"

// FS holds every *.tmpl file.
//
//go:embed *.tmpl
var FS embed.FS

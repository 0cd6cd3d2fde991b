// Package sysctlconf is sysctl.d(5)'s syntax in one place: the /proc/sys path a key names, and the explicit
// assignments of a file. The plan, the generator's override check, the cloud-init document and the edge that
// writes /proc/sys all read keys through it.
package sysctlconf

import "strings"

// Path returns the path under /proc/sys that a sysctl.d key names: when the key's first separator is a dot,
// dots and slashes swap; when it is a slash, the key is the path already.
func Path(key string) string {
	for _, c := range key {
		if c == '/' {
			return key
		}
		if c == '.' {
			break
		}
	}
	out := []rune(key)
	for i, c := range out {
		switch c {
		case '.':
			out[i] = '/'
		case '/':
			out[i] = '.'
		}
	}
	return string(out)
}

// Assignment is one explicit "key = value" line.
type Assignment struct {
	// Key is as written, without a leading '-' (which only says a missing key is no error).
	Key   string
	Value string
}

// Parse returns a file's explicit assignments in order. Comments (# and ;), blank lines, lines without '=' and
// glob keys are left out: systemd-sysctl never lets a glob override an explicit key. Lines of any length are
// read (a bufio.Scanner would stop at 64 KiB and miss every assignment after a long comment).
func Parse(data []byte) []Assignment {
	var out []Assignment
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimPrefix(strings.TrimSpace(key), "-")
		if !ok || key == "" || strings.ContainsAny(key, "*?[") {
			continue
		}
		out = append(out, Assignment{Key: key, Value: strings.TrimSpace(value)})
	}
	return out
}

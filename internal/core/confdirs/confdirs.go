// Package confdirs lists configuration files the way systemd does (conf_files_list): the directories are read in
// precedence order, a file name in an earlier directory masks the same name in a later one, a link to /dev/null
// masks the name altogether, hidden files (a name starting with '.') and anything but a regular file (a
// directory, a socket, a FIFO, a dangling link) are skipped, and what remains is sorted by file name across
// directories.
package confdirs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// File is one file that takes effect: its name, the sort key, and its path relative to the root.
type File struct {
	Name, Path string
}

// List returns the files ending in suffix under dirs (relative to root, highest precedence first), in the order
// systemd applies them.
func List(root fs.FS, dirs []string, suffix string) ([]File, error) {
	byName := map[string]string{}
	for _, dir := range dirs {
		entries, err := fs.ReadDir(root, dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue // systemd skips hidden files, symroute's temporaries among them
			}
			if _, masked := byName[e.Name()]; !masked && strings.HasSuffix(e.Name(), suffix) {
				byName[e.Name()] = path.Join(dir, e.Name())
			}
		}
	}
	files := make([]File, 0, len(byName))
	for name, p := range byName {
		if target, err := fs.ReadLink(root, p); err == nil && target == "/dev/null" {
			continue // masked
		}
		if info, err := fs.Stat(root, p); err != nil || !info.Mode().IsRegular() {
			continue // a directory, socket, FIFO or dangling link: nothing systemd can read as a file
		}
		files = append(files, File{Name: name, Path: p})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

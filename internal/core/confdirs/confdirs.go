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
	type entry struct {
		path string
		typ  fs.FileMode
	}
	byName := map[string]entry{}
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
				byName[e.Name()] = entry{path.Join(dir, e.Name()), e.Type()}
			}
		}
	}
	files := make([]File, 0, len(byName))
	for name, e := range byName {
		// The listing already tells a regular file from anything else: only a link costs a look at its target.
		if !e.typ.IsRegular() && (e.typ&fs.ModeSymlink == 0 || !linksToAFile(root, e.path)) {
			continue // a directory, socket, FIFO, mask or dangling link: nothing systemd reads as a file
		}
		files = append(files, File{Name: name, Path: e.path})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

// linksToAFile says whether the link p leads to a regular file, and is not a link to /dev/null (a mask).
func linksToAFile(root fs.FS, p string) bool {
	if target, err := fs.ReadLink(root, p); err == nil && target == "/dev/null" {
		return false
	}
	info, err := fs.Stat(root, p)
	return err == nil && info.Mode().IsRegular()
}

// Package fileset is the unit every part of symroute passes files in: a path under the root, a mode and bytes,
// and, for networkd's files, the link they configure.
package fileset

import "io/fs"

// File is one file symroute wants in place; Path is relative to the root.
type File struct {
	Path string
	Mode fs.FileMode
	Data []byte
	// Link, when set, makes the file a symbolic link to that absolute path, with no Data: the links
	// `systemctl enable` makes.
	Link string
	// For a .network file or drop-in: the interface it configures, and the absolute path of the .network file
	// networkd should report applying to that link, which verify checks.
	Interface, Configures string
}

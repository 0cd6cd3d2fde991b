// Package recordstore keeps symroute's record (internal/core/record) under a root: read strictly, written
// atomically, mode 0600.
package recordstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/rootfs"
)

// Where the record lives under the root. /var/lib survives reboots, as the record of what is in place must.
const (
	Dir  = "var/lib/symroute"
	Name = "record.json"
	// maxSize bounds the record read back: it holds symroute's own small files and their previous versions.
	maxSize = 64 << 20
)

// Load reads the record under root; a root with none yields an empty record.
func Load(root *rootfs.Root) (*record.Record, error) {
	d, err := root.OpenDir(Dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return &record.Record{Version: record.FormatVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	defer d.Close()
	data, err := d.ReadFile(Name, maxSize)
	if errors.Is(err, fs.ErrNotExist) {
		return &record.Record{Version: record.FormatVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	var r record.Record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: %w; move it aside only if you know what symroute has applied", d.Path(Name), err)
	}
	if r.Version != record.FormatVersion {
		return nil, fmt.Errorf("%s is format %d; this symroute reads format %d, so it cannot tell what is symroute's", d.Path(Name), r.Version, record.FormatVersion)
	}
	return &r, nil
}

// Save writes the record atomically and durably: a temporary file synced, renamed over the record, and the
// directory synced. Only the holder of the root's lock may call it.
func Save(root *rootfs.Root, r *record.Record) error {
	r.Version = record.FormatVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	d, err := root.OpenDir(Dir, true)
	if err != nil {
		return err
	}
	defer d.Close()
	tmp, err := d.WriteTemp(Name, append(data, '\n'), 0o600)
	if err != nil {
		return err
	}
	if err := d.Rename(tmp, Name); err != nil {
		d.Remove(tmp)
		return err
	}
	return d.Sync()
}

package rootfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is a directory under the root opened for changes: it and every directory between it and the root are real
// directories, not links. Every method works relative to its descriptor, so a link swapped in later changes
// nothing.
type Dir struct {
	// Rel is the directory's path relative to the root.
	Rel  string
	f    *os.File
	root *Root
}

// OpenDir opens the directory rel for changes. With create, missing directories are made (mode 0755); without
// it, a missing directory is fs.ErrNotExist.
func (r *Root) OpenDir(rel string, create bool) (*Dir, error) {
	if create {
		if err := r.mkdirAll(rel); err != nil {
			return nil, err
		}
	}
	f, err := r.openNoLinks(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return &Dir{Rel: rel, f: f, root: r}, nil
}

// mkdirAll makes rel and its missing parents, refusing links on the way.
func (r *Root) mkdirAll(rel string) error {
	parts := strings.Split(rel, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		d, err := r.openNoLinks(sub, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			d.Close()
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		parent := "."
		if i > 0 {
			parent = strings.Join(parts[:i], "/")
		}
		pd, err := r.openNoLinks(parent, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(int(pd.Fd()), parts[i], 0o755)
		pd.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return &fs.PathError{Op: "mkdir", Path: r.Join(sub), Err: err}
		}
	}
	return nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.f.Close() }

// Path returns the path of name in d, for messages.
func (d *Dir) Path(name string) string { return d.root.Join(path.Join(d.Rel, name)) }

func (d *Dir) fd() int { return int(d.f.Fd()) }

// Lstat describes name without following a link; the result's Sys() is a *unix.Stat_t.
func (d *Dir) Lstat(name string) (fs.FileInfo, error) { return statAt(d.f, name, d.Path(name)) }

// ReadFile reads name, which must be a regular file (not a link) of at most max bytes.
func (d *Dir) ReadFile(name string, max int64) ([]byte, error) {
	fd, err := unix.Openat(d.fd(), name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		err = ErrLink
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.Path(name), Err: err}
	}
	f := os.NewFile(uintptr(fd), d.Path(name))
	defer f.Close()
	return readRegular(f, d.Path(name), max)
}

// List returns the directory's entries, sorted by name.
func (d *Dir) List() ([]fs.DirEntry, error) {
	// A second descriptor: ReadDir moves the offset of the one it reads.
	fd, err := unix.Openat(d.fd(), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: d.Path(""), Err: err}
	}
	f := os.NewFile(uintptr(fd), d.Path(""))
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: d.Path(""), Err: unwrapPathError(err)}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	return entries, nil
}

// TempSuffix marks the temporary files CreateTemp makes: "." + target name + TempSuffix + random hex. A run that
// dies between writing and renaming leaves them; RemoveTemps removes them.
const TempSuffix = ".tmp-"

// Temp is a temporary file beside its target: written, but on disk only once Sync has returned.
type Temp struct {
	Dir  *Dir
	Name string
	f    *os.File
}

// CreateTemp writes data to a new temporary file beside target, with mode, and starts writing it to disk without
// waiting: the kernel writes many files out together faster than one after another. Sync waits for it; Close
// releases it.
func (d *Dir) CreateTemp(target string, data []byte, mode fs.FileMode) (*Temp, error) {
	name, err := tempName(target)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.fd(), name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		return nil, &fs.PathError{Op: "create", Path: d.Path(name), Err: err}
	}
	t := &Temp{Dir: d, Name: name, f: os.NewFile(uintptr(fd), d.Path(name))}
	err = func() error {
		if _, err := t.f.Write(data); err != nil {
			return err
		}
		if err := t.f.Chmod(mode.Perm()); err != nil { // the umask may have narrowed the mode given to open
			return err
		}
		// Only a hint: Sync is what waits for the data, and reports any error writing it.
		unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		return nil
	}()
	if err != nil {
		t.Discard()
		return nil, fmt.Errorf("write %s: %w", d.Path(name), err)
	}
	return t, nil
}

// tempName is a new temporary name beside target.
func tempName(target string) (string, error) {
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", err
	}
	return "." + target + TempSuffix + hex.EncodeToString(suffix[:]), nil
}

// CreateTempLink makes a symbolic link to linkTarget under a new temporary name beside target, named as
// CreateTemp names its files. Rename puts it in place, replacing whatever file or link target is, atomically;
// nothing follows either link. The link holds no data: syncing the directory after the rename makes it durable,
// and its Sync and Close do nothing.
func (d *Dir) CreateTempLink(target, linkTarget string) (*Temp, error) {
	name, err := tempName(target)
	if err != nil {
		return nil, err
	}
	if err := unix.Symlinkat(linkTarget, d.fd(), name); err != nil {
		return nil, &fs.PathError{Op: "symlink", Path: d.Path(name), Err: err}
	}
	return &Temp{Dir: d, Name: name}, nil
}

// ReadLink returns the target of the link name in d, without following it.
func (d *Dir) ReadLink(name string) (string, error) { return readLinkAt(d.f, name, d.Path(name)) }

// Sync waits until the file's data and metadata are on disk.
func (t *Temp) Sync() error {
	if t.f == nil {
		return nil
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", t.Dir.Path(t.Name), err)
	}
	return nil
}

// Close releases the file's descriptor; the file stays.
func (t *Temp) Close() error {
	if t.f == nil {
		return nil
	}
	return t.f.Close()
}

// Discard removes the file, closing it if still open.
func (t *Temp) Discard() {
	t.Close()
	unix.Unlinkat(t.Dir.fd(), t.Name, 0)
}

// WriteTemp writes data to a new temporary file beside target, with mode, synced to disk, and returns its name.
func (d *Dir) WriteTemp(target string, data []byte, mode fs.FileMode) (string, error) {
	t, err := d.CreateTemp(target, data, mode)
	if err != nil {
		return "", err
	}
	err = t.Sync()
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Discard()
		return "", err
	}
	return t.Name, nil
}

// Rename moves from to to within the directory, replacing to (a link there is replaced, not followed).
func (d *Dir) Rename(from, to string) error {
	if err := unix.Renameat(d.fd(), from, d.fd(), to); err != nil {
		return &fs.PathError{Op: "rename", Path: d.Path(to), Err: err}
	}
	return nil
}

// Remove unlinks name; a link is removed itself, never its target.
func (d *Dir) Remove(name string) error {
	if err := unix.Unlinkat(d.fd(), name, 0); err != nil {
		return &fs.PathError{Op: "remove", Path: d.Path(name), Err: err}
	}
	return nil
}

// RemoveEmptyDir removes the directory name if it is empty, and reports whether it did: a directory that holds
// anything (another program's file) stays.
func (d *Dir) RemoveEmptyDir(name string) (bool, error) {
	err := unix.Unlinkat(d.fd(), name, unix.AT_REMOVEDIR)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOENT):
		return false, nil
	}
	return false, &fs.PathError{Op: "remove", Path: d.Path(name), Err: err}
}

// Sync makes the directory's entries durable.
func (d *Dir) Sync() error {
	if err := d.f.Sync(); err != nil {
		return &fs.PathError{Op: "sync", Path: d.Path(""), Err: err}
	}
	return nil
}

// RemoveTemps removes the temporary files and links a killed run left for the targets owned accepts, and returns
// their names. Only call it while holding the lock every writer takes: another run's temporaries are in use.
func (d *Dir) RemoveTemps(owned func(target string) bool) ([]string, error) {
	entries, err := d.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		i := strings.LastIndex(name, TempSuffix)
		if !strings.HasPrefix(name, ".") || i < 0 || (!e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0) || !owned(name[1:i]) {
			continue
		}
		if err := d.Remove(name); err != nil {
			return removed, err
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// ErrRemoved is returned by OpenLock when the file was removed between opening and checking it; open it again.
var ErrRemoved = errors.New("removed while being opened")

// SameFile reports whether f is still the file called name in d: a lock holder may remove its lock file, and a
// waiter that opened the removed one must open the new one.
func (d *Dir) SameFile(f *os.File, name string) bool {
	var a, b unix.Stat_t
	return unix.Fstat(int(f.Fd()), &a) == nil && unix.Fstatat(d.fd(), name, &b, unix.AT_SYMLINK_NOFOLLOW) == nil && a.Dev == b.Dev && a.Ino == b.Ino
}

// OpenLock opens (creating it, mode 0600) the lock file name: a regular file with one link, never followed
// through a link and never truncated.
func (d *Dir) OpenLock(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd(), name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.ELOOP) {
		err = ErrLink
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.Path(name), Err: err}
	}
	f := os.NewFile(uintptr(fd), d.Path(name))
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "stat", Path: d.Path(name), Err: err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: d.Path(name), Err: fmt.Errorf("%w; remove it", ErrNotRegular)}
	case st.Nlink == 0:
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: d.Path(name), Err: ErrRemoved}
	case st.Nlink != 1:
		// A hard link could name a file outside the root; writing the pid would change it.
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: d.Path(name), Err: fmt.Errorf("it has %d hard links, so it may be another file as well; remove it", st.Nlink)}
	}
	return f, nil
}

// OpenLog opens name for appending, creating it (mode 0600) if needed, never through a link.
func (d *Dir) OpenLog(name string) (*os.File, error) {
	fd, err := unix.Openat(d.fd(), name, unix.O_WRONLY|unix.O_CREAT|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.ELOOP) {
		err = ErrLink
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.Path(name), Err: err}
	}
	return os.NewFile(uintptr(fd), d.Path(name)), nil
}

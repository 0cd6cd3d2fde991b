// Package rootfs reads and writes files under a root directory (/ on a host, an unpacked image in CI) so that
// nothing in the tree can send a read or a write somewhere else, hang symroute, or make it read without bound:
//
//   - Reads of the system's files (.network, sysctl.d) follow symbolic links the way the system would, but
//     inside the root: an absolute link resolves against the root, ".." stops at it (openat2 RESOLVE_IN_ROOT).
//     Only regular files are read, after fstat, and each at most MaxFileSize bytes: a FIFO never blocks a
//     read, /dev/zero never fills memory.
//   - Writes go through directories opened with no symbolic link anywhere between the root and the file
//     (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), and every change is made relative to that directory's descriptor:
//     a rename replaces a link rather than writing through it, an unlink removes the link itself.
//
// Where the kernel lacks openat2 (before Linux 5.6), writes walk the path one component at a time with
// O_NOFOLLOW, and reads use os.Root, which follows links only while they stay inside the root and refuses
// absolute ones.
package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// MaxFileSize bounds one system file symroute reads. networkd's and sysctl.d's files are a few kilobytes.
const MaxFileSize = 4 << 20

// Root is an open root directory.
type Root struct {
	// Path is the root as given, for messages.
	Path string
	dir  *os.File // O_PATH descriptor of the root
	os   *os.Root // the fallback for reads without openat2
}

// Open opens the root directory path. Links in path itself are followed: the caller named it.
func Open(path string) (*Root, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open root", Path: path, Err: err}
	}
	r := &Root{Path: path, dir: os.NewFile(uintptr(fd), path)}
	if !haveOpenat2() {
		if r.os, err = os.OpenRoot(path); err != nil {
			r.dir.Close()
			return nil, err
		}
	}
	return r, nil
}

// Close releases the root's descriptors.
func (r *Root) Close() error {
	if r.os != nil {
		r.os.Close()
	}
	return r.dir.Close()
}

// Join returns the path of rel under the root, for messages.
func (r *Root) Join(rel string) string {
	if rel == "" || rel == "." {
		return r.Path
	}
	return strings.TrimSuffix(r.Path, "/") + "/" + rel
}

var (
	openat2Once sync.Once
	openat2OK   bool
	// forceFallback makes the package behave as on a kernel without openat2; tests set it.
	forceFallback bool
)

func haveOpenat2() bool {
	if forceFallback {
		return false
	}
	openat2Once.Do(func() {
		fd, err := unix.Openat2(unix.AT_FDCWD, "/", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
		if err == nil {
			unix.Close(fd)
		}
		openat2OK = !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM)
	})
	return openat2OK
}

const (
	resolveInRoot  = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
	resolveNoLinks = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
)

// ErrLink is returned when a write would pass through a symbolic link.
var ErrLink = errors.New("a component is a symbolic link; symroute does not write through links, so replace it with the directory or file itself")

// ErrNotRegular is returned for a file that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// openNoLinks opens rel beneath the root with no symbolic link on the way.
func (r *Root) openNoLinks(rel string, flags int, mode uint32) (*os.File, error) {
	if !fs.ValidPath(rel) {
		return nil, &fs.PathError{Op: "open", Path: r.Join(rel), Err: fs.ErrInvalid}
	}
	var fd int
	var err error
	if haveOpenat2() {
		fd, err = unix.Openat2(int(r.dir.Fd()), rel, &unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveNoLinks})
	} else {
		fd, err = walkNoLinks(int(r.dir.Fd()), rel, flags, mode)
	}
	if errors.Is(err, unix.ELOOP) {
		err = ErrLink
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: r.Join(rel), Err: err}
	}
	return os.NewFile(uintptr(fd), r.Join(rel)), nil
}

// walkNoLinks opens rel from dirfd one component at a time, refusing a link at every step.
func walkNoLinks(dirfd int, rel string, flags int, mode uint32) (int, error) {
	parts := strings.Split(rel, "/")
	cur := dirfd
	for i, p := range parts {
		if p == ".." {
			return -1, unix.EXDEV
		}
		last := i == len(parts)-1
		f, m := unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(0)
		if last {
			f, m = flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode
		}
		next, err := unix.Openat(cur, p, f, m)
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			if errors.Is(err, unix.ENOTDIR) {
				// O_NOFOLLOW|O_DIRECTORY on a link fails with ENOTDIR; tell a link from a file.
				var st unix.Stat_t
				if unix.Fstatat(dirfd, strings.Join(parts[:i+1], "/"), &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
					return -1, unix.ELOOP
				}
			}
			return -1, err
		}
		cur = next
	}
	return cur, nil
}

// ReadFS returns the root as an fs.FS for reading the system's configuration: links are followed inside the
// root, only regular files are read, each at most MaxFileSize bytes. It implements fs.ReadFileFS, fs.ReadDirFS
// and fs.ReadLinkFS.
func (r *Root) ReadFS() fs.FS { return readFS{r} }

type readFS struct{ r *Root }

// open opens name for reading, following links inside the root. O_NONBLOCK keeps a FIFO from blocking the open;
// O_NOCTTY keeps a terminal from becoming ours.
func (f readFS) open(name string, flags int) (*os.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	flags |= unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	if !haveOpenat2() {
		file, err := f.r.os.OpenFile(name, flags, 0)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: f.r.Join(name), Err: unwrapPathError(err)}
		}
		return file, nil
	}
	fd, err := unix.Openat2(int(f.r.dir.Fd()), name, &unix.OpenHow{Flags: uint64(flags), Resolve: resolveInRoot})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: f.r.Join(name), Err: err}
	}
	return os.NewFile(uintptr(fd), f.r.Join(name)), nil
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (f readFS) Open(name string) (fs.File, error) {
	file, err := f.open(name, 0)
	if err != nil {
		return nil, err
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	if !info.Mode().IsRegular() && !info.IsDir() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: f.r.Join(name), Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(info.Mode()))}
	}
	return file, nil
}

// ReadFile reads a regular file of at most MaxFileSize bytes.
func (f readFS) ReadFile(name string) ([]byte, error) {
	file, err := f.open(name, 0)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return readRegular(file, f.r.Join(name), MaxFileSize)
}

// readRegular reads file, which must be a regular file of at most max bytes.
func readRegular(file *os.File, shown string, max int64) ([]byte, error) {
	info, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: shown, Err: fmt.Errorf("%w (%s); symroute reads only regular files", ErrNotRegular, kind(info.Mode()))}
	}
	if info.Size() > max {
		return nil, &fs.PathError{Op: "read", Path: shown, Err: fmt.Errorf("%w: %d bytes, more than the %d symroute reads", ErrTooLarge, info.Size(), max)}
	}
	// The size can change while reading; the limit holds whatever it becomes. Room for the size fstat gave reads
	// an unchanged file in one call and sees its end in the next; growing from a small buffer takes several.
	var b bytes.Buffer
	b.Grow(int(info.Size()) + bytes.MinRead)
	if _, err := b.ReadFrom(io.LimitReader(file, max+1)); err != nil {
		return nil, &fs.PathError{Op: "read", Path: shown, Err: err}
	}
	data := b.Bytes()
	if int64(len(data)) > max {
		return nil, &fs.PathError{Op: "read", Path: shown, Err: fmt.Errorf("%w: it grew past the %d bytes symroute reads", ErrTooLarge, max)}
	}
	return data, nil
}

// ErrTooLarge is returned for a file larger than symroute reads.
var ErrTooLarge = errors.New("too large")

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	}
	return "not a regular file"
}

// ReadDir lists a directory, sorted by name.
func (f readFS) ReadDir(name string) ([]fs.DirEntry, error) {
	dir, err := f.open(name, unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	entries, err := dir.ReadDir(-1)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: f.r.Join(name), Err: unwrapPathError(err)}
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	return entries, nil
}

// ReadLink returns a link's target, the link itself found inside the root.
func (f readFS) ReadLink(name string) (string, error) {
	parent, base, err := f.parent(name)
	if err != nil {
		return "", err
	}
	defer parent.Close()
	return readLinkAt(parent, base, f.r.Join(name))
}

// readLinkAt returns the target of the link name in dir. A target as long as the buffer may have been cut short,
// and is refused rather than returned so.
func readLinkAt(dir *os.File, name, shown string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(int(dir.Fd()), name, buf)
	if err == nil && n == len(buf) {
		err = fmt.Errorf("%w: the link's target is longer than %d bytes", ErrTooLarge, len(buf)-1)
	}
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: shown, Err: err}
	}
	return string(buf[:n]), nil
}

// Lstat describes name without following it when it is a link.
func (f readFS) Lstat(name string) (fs.FileInfo, error) {
	parent, base, err := f.parent(name)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	return statAt(parent, base, f.r.Join(name))
}

func (f readFS) parent(name string) (*os.File, string, error) {
	if !fs.ValidPath(name) || name == "." {
		return nil, "", &fs.PathError{Op: "lstat", Path: name, Err: fs.ErrInvalid}
	}
	parent, err := f.open(path.Dir(name), unix.O_DIRECTORY)
	return parent, path.Base(name), err
}

// statAt describes name in dir without following a link.
func statAt(dir *os.File, name, shown string) (fs.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: shown, Err: err}
	}
	return fileInfo{name: name, st: st}, nil
}

// fileInfo is an fs.FileInfo from a stat result.
type fileInfo struct {
	name string
	st   unix.Stat_t
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.st.Size }
func (i fileInfo) ModTime() time.Time { return time.Unix(i.st.Mtim.Unix()) }
func (i fileInfo) IsDir() bool        { return i.Mode().IsDir() }
func (i fileInfo) Sys() any           { return &i.st }

// Links is the file's hard-link count.
func (i fileInfo) Links() uint64 { return uint64(i.st.Nlink) }

func (i fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(i.st.Mode & 0o777)
	switch i.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	}
	if i.st.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if i.st.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if i.st.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// ReadFile reads the file at p, following links as the caller named it, when it is a regular file of at most max
// bytes: a FIFO, a device such as /dev/zero or an oversized file is refused rather than read.
func ReadFile(p string, max int64) ([]byte, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	return readRegular(f, p, max)
}

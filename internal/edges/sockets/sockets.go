// Package sockets finds the established TCP connections that use given local addresses, as `ss` does: over
// NETLINK_SOCK_DIAG, with the owning process found by the socket's inode under /proc. apply asks it before
// removing an address, since the operator's own SSH session is the connection most often cut.
package sockets

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tcpEstablished is TCP_ESTABLISHED in the kernel's tcp_states.h.
const tcpEstablished = 1

// Conn is one established TCP connection.
type Conn struct {
	Local, Remote netip.AddrPort
	// Process names the owners, like "sshd[812]", when /proc tells.
	Process string
}

func (c Conn) String() string {
	s := fmt.Sprintf("%s -> %s", c.Local, c.Remote)
	if c.Process != "" {
		s += " (" + c.Process + ")"
	}
	return s
}

// Finder looks connections up through a netlink handle of the namespace to ask.
type Finder struct {
	// Handle has a NETLINK_INET_DIAG socket; nil means this process's namespace.
	Handle *netlink.Handle
	// Proc is where processes are, /proc on a host; "" skips naming them.
	Proc string
}

// Established returns the established TCP connections whose local address is one of locals.
func (f Finder) Established(locals []netip.Addr) ([]Conn, error) {
	want := map[netip.Addr]bool{}
	for _, a := range locals {
		want[a.Unmap()] = true
	}
	if len(want) == 0 {
		return nil, nil
	}
	h := f.Handle
	if h == nil {
		var err error
		if h, err = netlink.NewHandle(unix.NETLINK_INET_DIAG); err != nil {
			return nil, fmt.Errorf("open a sock_diag socket: %w", err)
		}
		defer h.Close()
	}
	var out []Conn
	inodes := map[uint32][]int{}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		var socks []*netlink.Socket
		var err error
		for range 5 { // a dump the kernel interrupted is retried, as every other dump
			if socks, err = h.SocketDiagTCP(fam); !errors.Is(err, netlink.ErrDumpInterrupted) {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("list TCP sockets: %w", err)
		}
		for _, s := range socks {
			local, lok := netip.AddrFromSlice(s.ID.Source)
			remote, rok := netip.AddrFromSlice(s.ID.Destination)
			if s.State != tcpEstablished || !lok || !rok || !want[local.Unmap()] {
				continue
			}
			out = append(out, Conn{Local: netip.AddrPortFrom(local.Unmap(), s.ID.SourcePort), Remote: netip.AddrPortFrom(remote.Unmap(), s.ID.DestinationPort)})
			inodes[s.INode] = append(inodes[s.INode], len(out)-1)
		}
	}
	if f.Proc != "" && len(out) > 0 {
		for inode, owners := range owners(f.Proc, inodes) {
			for _, i := range inodes[inode] {
				out[i].Process = strings.Join(owners, ", ")
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Local.String()+out[i].Remote.String() < out[j].Local.String()+out[j].Remote.String()
	})
	return out, nil
}

// owners maps each socket inode to the processes that hold it, by reading every process's descriptors: what ss -p
// does, and only done when a connection was found.
func owners(proc string, inodes map[uint32][]int) map[uint32][]string {
	out := map[uint32][]string{}
	pids, _ := os.ReadDir(proc)
	for _, p := range pids {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(proc, p.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(proc, p.Name(), "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]"), 10, 32)
			if err != nil || inodes[uint32(n)] == nil {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join(proc, p.Name(), "comm"))
			name := fmt.Sprintf("%s[%d]", strings.TrimSpace(string(comm)), pid)
			if owners := out[uint32(n)]; len(owners) == 0 || owners[len(owners)-1] != name {
				out[uint32(n)] = append(owners, name)
			}
		}
	}
	return out
}

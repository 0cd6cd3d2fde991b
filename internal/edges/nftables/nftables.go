// Package nftables loads, reads and deletes symroute's nftables table (table inet symroute, which marks
// connections by their ingress interface), and nothing else of the ruleset.
//
// Load runs `nft -f` on the ruleset file, the command the connmark unit runs at boot, so that apply proves the
// boot path; the file replaces the table atomically (table; delete table; table {...} in one transaction). Read
// and Delete go through the kernel's netlink API. Read renders the table into a fingerprint for the record:
// the same table gives the same text on every read, and any change to a chain, a rule or a set changes it.
package nftables

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	gnft "github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/symroute/symroute/internal/core/ownership"
)

// DefaultBinary is where Debian and Fedora install nft, and the path the connmark unit runs.
const DefaultBinary = "/usr/sbin/nft"

// DefaultTimeout bounds one `nft -f`: loading a table of a few rules takes milliseconds; a hung nft must not hold
// apply's lock for ever.
const DefaultTimeout = 30 * time.Second

// maxStderr bounds what an error quotes of nft's standard error: its message comes first, and a runaway output
// must not end up whole in a log line or the record.
const maxStderr = 4 << 10

// Edge is what apply, verify and remove need of nftables; *Ruleset is the real one.
type Edge interface {
	Load(ctx context.Context, path string) error
	Read() (Table, bool, error)
	Delete() error
}

// Ruleset works on table inet symroute in one network namespace. The zero value works on the caller's own
// namespace with the default nft.
type Ruleset struct {
	// Binary is nft; empty means DefaultBinary, or nft on PATH where that is missing.
	Binary string
	// Timeout bounds Load; zero means DefaultTimeout.
	Timeout time.Duration
	// NetNS is the namespace to work in, open for as long as the Ruleset is used; 0 means the caller's own.
	NetNS netns.NsHandle
}

var _ Edge = (*Ruleset)(nil)

// Load runs `nft -f path` in the namespace. An error quotes nft's standard error, which names the file, line
// and column of a mistake; nft sends nothing to the kernel for a file it cannot parse, and the kernel applies
// the file's transaction whole or not at all, so a failed Load leaves the table as it was.
func (r *Ruleset) Load(ctx context.Context, path string) error {
	bin, err := r.binary()
	if err != nil {
		return err
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-f", path)
	var stderr headBuffer
	cmd.Stderr = &stderr
	// A killed nft's children (a wrapper's, in its place) may hold stderr open: Wait gives up on them after this.
	cmd.WaitDelay = time.Second
	if err := r.start(cmd); err != nil {
		return fmt.Errorf("%s -f %s: %w", bin, path, err)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if msg := stderr.String(); msg != "" {
			return fmt.Errorf("%s -f %s: %w: %s", bin, path, err, msg)
		}
		return fmt.Errorf("%s -f %s: %w", bin, path, err)
	}
	return nil
}

// Available says whether Load and Read can work here: nft is installed and the kernel answers on netfilter's
// netlink. apply asks before changing anything, so a host without nftables is refused, not half changed.
func (r *Ruleset) Available() error {
	bin, err := r.binary()
	if err != nil {
		return err
	}
	if _, err := exec.LookPath(bin); err != nil {
		return fmt.Errorf("nft cannot run (install nftables): %w", err)
	}
	_, _, err = r.Read()
	return err
}

func (r *Ruleset) binary() (string, error) {
	if r.Binary != "" {
		return r.Binary, nil
	}
	if _, err := os.Stat(DefaultBinary); err == nil {
		return DefaultBinary, nil
	}
	bin, err := exec.LookPath("nft")
	if err != nil {
		return "", fmt.Errorf("nft is neither at %s nor on PATH (install nftables): %w", DefaultBinary, err)
	}
	return bin, nil
}

// start starts cmd in the namespace. A process starts in the namespace of the thread that forks it, so the fork
// happens on a thread of its own moved into the namespace; that thread is never unlocked, and Go ends it with
// the goroutine rather than hand it, in the wrong namespace, to other goroutines.
func (r *Ruleset) start(cmd *exec.Cmd) error {
	if r.NetNS <= 0 {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(r.NetNS); err != nil {
			errc <- fmt.Errorf("enter the network namespace: %w", err)
			return
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// headBuffer keeps the first maxStderr bytes written to it and counts the rest.
type headBuffer struct {
	buf     []byte
	dropped int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	n := min(len(p), maxStderr-len(h.buf))
	h.buf = append(h.buf, p[:n]...)
	h.dropped += len(p) - n
	return len(p), nil
}

func (h *headBuffer) String() string {
	s := strings.TrimSpace(string(h.buf))
	if h.dropped > 0 {
		s += fmt.Sprintf(" [%d more bytes]", h.dropped)
	}
	return s
}

// Delete deletes table inet symroute, with its chains, rules and sets; a table that is not there is no error.
// It names that one table, so no other table is touched.
func (r *Ruleset) Delete() error {
	c, err := r.conn()
	if err != nil {
		return err
	}
	c.DelTable(&gnft.Table{Name: ownership.NFTTable, Family: gnft.TableFamilyINet})
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete table inet %s: %w", ownership.NFTTable, err)
	}
	return nil
}

func (r *Ruleset) conn() (*gnft.Conn, error) {
	if r.NetNS > 0 {
		return gnft.New(gnft.WithNetNSFd(int(r.NetNS)))
	}
	return gnft.New()
}

// Table is table inet symroute as the kernel holds it.
type Table struct {
	Flags  uint32  // NFT_TABLE_F_*: a dormant table is there but does nothing
	Chains []Chain // by name
	Sets   []Set   // by name; nft makes an anonymous set (__set0...) for every { ... } in a rule
}

// Chain is one chain and its rules, in the order the kernel evaluates them.
type Chain struct {
	Name string
	// Type, Hook and Policy are empty, and Priority 0, for a regular chain (one reached only by jump or goto).
	Type     string
	Hook     string
	Priority int32
	Policy   string
	// Rules are the rules' expressions as the kernel reports them, rendered (see rule in render.go), without
	// handles and counters' values.
	Rules []string
}

// Set is one set: its properties rendered, and its elements rendered and sorted (a hash set's dump order is its
// hash seed's).
type Set struct {
	Name     string
	Spec     string
	Elements []string
}

// Fingerprint is the table as text, one line per chain, rule, set and element: the record keeps it after
// apply, and verify compares the table with it.
func (t Table) Fingerprint() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s flags %d\n", ownership.NFTTable, t.Flags)
	for _, c := range t.Chains {
		if c.Hook == "" {
			fmt.Fprintf(&b, "chain %s\n", c.Name)
		} else {
			fmt.Fprintf(&b, "chain %s: type %s hook %s priority %d policy %s\n", c.Name, c.Type, c.Hook, c.Priority, c.Policy)
		}
		for _, rule := range c.Rules {
			fmt.Fprintf(&b, "rule %s: %s\n", c.Name, rule)
		}
	}
	for _, s := range t.Sets {
		fmt.Fprintf(&b, "set %s: %s\n", s.Name, s.Spec)
		for _, e := range s.Elements {
			fmt.Fprintf(&b, "element %s: %s\n", s.Name, e)
		}
	}
	return b.String()
}

// Hash reads the table and returns a hash of its fingerprint, short enough for the record; ok is false when the
// table does not exist.
func (r *Ruleset) Hash() (string, bool, error) {
	t, ok, err := r.Read()
	if err != nil || !ok {
		return "", ok, err
	}
	sum := sha256.Sum256([]byte(t.Fingerprint()))
	return hex.EncodeToString(sum[:]), true, nil
}

// readAttempts bounds the reads of a ruleset that keeps changing under them.
const readAttempts = 5

// Read reads table inet symroute; ok is false when it does not exist. The table, its chains, rules and sets are
// separate dumps; the ruleset's generation, read before and after, tells a consistent read from one that a
// concurrent change (an nft -f, another program's update) went through, which is read again.
func (r *Ruleset) Read() (Table, bool, error) {
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(max(r.NetNS, 0))})
	if err != nil {
		return Table{}, false, fmt.Errorf("open a netfilter netlink socket: %w", err)
	}
	defer nl.Close()
	for range readAttempts {
		before, err := generation(nl)
		if err != nil {
			return Table{}, false, err
		}
		t, ok, err := r.read(nl)
		if err != nil {
			return Table{}, false, err
		}
		after, err := generation(nl)
		if err != nil {
			return Table{}, false, err
		}
		if after == before {
			return t, ok, nil
		}
	}
	return Table{}, false, fmt.Errorf("table inet %s: the ruleset changed during %d reads in a row", ownership.NFTTable, readAttempts)
}

func (r *Ruleset) read(nl *netlink.Conn) (Table, bool, error) {
	c, err := r.conn()
	if err != nil {
		return Table{}, false, err
	}
	tbl, err := c.ListTableOfFamily(ownership.NFTTable, gnft.TableFamilyINet)
	if errors.Is(err, unix.ENOENT) {
		return Table{}, false, nil
	}
	if err != nil {
		return Table{}, false, fmt.Errorf("read table inet %s: %w", ownership.NFTTable, err)
	}
	t := Table{Flags: tbl.Flags}
	chains, err := c.ListChainsOfTableFamily(gnft.TableFamilyINet)
	if err != nil {
		return Table{}, false, fmt.Errorf("read the chains of table inet %s: %w", ownership.NFTTable, err)
	}
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != ownership.NFTTable {
			continue // another inet table's
		}
		t.Chains = append(t.Chains, chainOf(ch))
	}
	slices.SortFunc(t.Chains, func(a, b Chain) int { return strings.Compare(a.Name, b.Name) })
	rules, err := rules(nl)
	if err != nil {
		return Table{}, false, err
	}
	for i := range t.Chains {
		t.Chains[i].Rules = rules[t.Chains[i].Name]
	}
	if t.Sets, err = sets(nl); err != nil {
		return Table{}, false, err
	}
	return t, true, nil
}

// hooks names the inet family's hooks by number (NF_INET_*).
var hooks = []string{"prerouting", "input", "forward", "output", "postrouting", "ingress"}

func chainOf(ch *gnft.Chain) Chain {
	c := Chain{Name: ch.Name}
	if ch.Hooknum == nil {
		return c
	}
	c.Type = string(ch.Type)
	c.Hook = fmt.Sprintf("%d", *ch.Hooknum)
	if int(*ch.Hooknum) < len(hooks) {
		c.Hook = hooks[*ch.Hooknum]
	}
	if ch.Priority != nil {
		c.Priority = int32(*ch.Priority)
	}
	c.Policy = "accept"
	if ch.Policy != nil && *ch.Policy == gnft.ChainPolicyDrop {
		c.Policy = "drop"
	}
	return c
}

// Package record is what symroute has done to a host: the files it wrote (with hashes and modes), the rules and
// tables networkd made from them, the sysctl keys it set with the values they had before, and whether the
// networkd.conf.d drop-in is in place. It is written under /var/lib/symroute before the first file of a
// transaction changes, as "pending", with everything needed to undo it, so a run that dies anywhere is undone by
// the next one; and it is the one answer to "is this symroute's?": a rule in symroute's range that the record does
// not list is someone else's, and is never deleted.
//
// The types here are plain data; internal/edges/recordstore reads and writes them under a root.
package record

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/symroute/symroute/internal/core/routing"
)

// FormatVersion is the record's own format; a record of another version is refused, not guessed at.
const FormatVersion = 1

// Record is the whole record.
type Record struct {
	Version int `json:"version"`
	// Applied is what the last finished transaction left in place; nil before symroute's first apply and after
	// a remove that left nothing.
	Applied *State `json:"applied,omitempty"`
	// Pending is a transaction under way, or one whose process died: the next run undoes it.
	Pending *Transaction `json:"pending,omitempty"`
}

// State is what symroute has in place.
type State struct {
	// Transaction is the ID of the transaction that put this state in place.
	Transaction string `json:"transaction,omitempty"`
	// Description names the description it came from (its base name), for messages.
	Description string   `json:"description,omitempty"`
	Files       []File   `json:"files"`
	Rules       []Rule   `json:"rules"`
	Tables      []uint32 `json:"tables"`
	Sysctls     []Sysctl `json:"sysctls"`
	// Addresses are the addresses symroute's own .network files give each link (own mode): removing the file
	// removes them, so remove and apply guard them.
	Addresses map[string][]netip.Prefix `json:"addresses,omitempty"`
	// Links are the links networkd configures from symroute's files (the interfaces, and lo for the cluster
	// rules).
	Links []string `json:"links,omitempty"`
	// KeepForeign says networkd.conf.d's drop-in is in place: adding or removing it takes a networkd restart.
	KeepForeign bool `json:"keep_foreign"`
	// Connmark is the nftables table of track_connections as it was after it was loaded (a hash of what the
	// kernel holds), and ConnmarkKernel the kernel release that held it: a newer kernel may describe the same
	// table differently. Both empty when no interface tracks connections.
	Connmark       string `json:"connmark,omitempty"`
	ConnmarkKernel string `json:"connmark_kernel,omitempty"`
	// Follow are the places where the follower keeps the dynamic interfaces' "from <address>" rules: the rules
	// there with its protocol are symroute's, whatever their addresses.
	Follow []FollowSlot `json:"follow,omitempty"`
}

// FollowSlot is where the follower keeps one interface's rules: at Priority, to Table.
type FollowSlot struct {
	Interface string `json:"interface"`
	Table     uint32 `json:"table"`
	Priority  uint32 `json:"priority"`
}

// File is one file symroute wrote, relative to the root; or, with Link, one symbolic link, to that target.
type File struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Mode   uint32 `json:"mode"`
	Link   string `json:"link,omitempty"`
}

// Rule is one routing-policy rule networkd made from symroute's files. A mark rule has no address to tell its
// family by, so it carries one (4 or 6): networkd makes one rule per family.
type Rule struct {
	Priority uint32       `json:"priority"`
	From     netip.Prefix `json:"from,omitzero"`
	To       netip.Prefix `json:"to,omitzero"`
	Mark     uint32       `json:"mark,omitzero"`
	Mask     uint32       `json:"mask,omitzero"`
	Iif      string       `json:"iif,omitzero"`
	Family   int          `json:"family,omitzero"`
	Table    uint32       `json:"table"`
	// SuppressDefault: suppress_prefixlength 0, the lookup takes the table's routes but its default route.
	SuppressDefault bool `json:"suppress_default,omitzero"`
}

// Sysctl is one key symroute set: its value, and the value it had before symroute first set it, which remove
// restores.
type Sysctl struct {
	Key      string `json:"key"`
	Value    string `json:"value"`
	Original string `json:"original"`
	// Absent says the key did not exist when symroute first set it (the link came later); remove leaves it.
	Absent bool `json:"absent,omitempty"`
}

// Op is what a transaction does.
type Op string

const (
	OpApply  Op = "apply"
	OpTry    Op = "try"
	OpRemove Op = "remove"
)

// Transaction is a change under way. Undo and SysctlUndo are the state before it, exactly, so rolling it back is
// its inverse: the previous bytes and modes of every file it touches, the previous value of every key it sets,
// and a networkd restart where it restarted networkd.
type Transaction struct {
	ID      string    `json:"id"`
	Op      Op        `json:"op"`
	Process Process   `json:"process"`
	Started time.Time `json:"started"`
	// Deadline is when an unconfirmed try rolls back.
	Deadline   time.Time    `json:"deadline,omitzero"`
	Undo       []FileUndo   `json:"undo"`
	SysctlUndo []SysctlUndo `json:"sysctl_undo"`
	// Restart says the transaction changes networkd.conf.d: networkd is restarted forward and back. ConfFirst
	// says the restart came before the reload of the other files (the drop-in arrived), so an undo reloads first.
	Restart   bool `json:"restart"`
	ConfFirst bool `json:"conf_first,omitempty"`
	// Target is the state the transaction brings about.
	Target State `json:"target"`
	// Watcher is the process that rolls an unconfirmed try back at its deadline.
	Watcher *Process `json:"watcher,omitempty"`
	// Verified says the target state verified; a try waits for confirmation only then.
	Verified bool `json:"verified,omitempty"`
	// Existing are the target's rules that were in the kernel, alike in every part, before the transaction:
	// another program's, or left from an earlier life. An undo never deletes them.
	Existing []Rule `json:"existing,omitempty"`
	// Before is the routing the transaction may touch, as it was before it: every rule, and the routes on the
	// links it configures and in its tables, one line each. An undo, by this run or a later one, checks it.
	Before []string `json:"before,omitempty"`
	// BeforeOmitted says Before was too large to keep (it counts its lines): an undo cannot check it.
	BeforeOmitted int `json:"before_omitted,omitempty"`
	// ConnmarkBefore is the nftables table of track_connections before the transaction ("" when there was none):
	// an undo loads the previous file back, or deletes the table, until it is that again.
	ConnmarkBefore string `json:"connmark_before,omitempty"`
	// FollowBefore are the follower's slots before the transaction: an undo runs the follower there again, or
	// stops it where there were none.
	FollowBefore []FollowSlot `json:"follow_before,omitempty"`
	// CreatedDirs are the directories the transaction's files need that did not exist before it, deepest
	// first: an undo removes each that is empty again.
	CreatedDirs []string `json:"created_dirs,omitempty"`
	// LinksBefore are the addresses and the routes of main on the links the transaction touches, as they were
	// before it. networkd, told to configure a link and then to let it go (symroute's file was new, the undo
	// removes it), takes away the addresses and routes it configured, a hand-made host's included: an undo puts
	// back each that is missing.
	LinksBefore []LinkState `json:"links_before,omitempty"`
}

// LinkState is a link's IPv4 and IPv6 addresses (each with its broadcast, "" for none) and the routes of main
// through it, at one moment.
type LinkState struct {
	Name      string      `json:"name"`
	Addresses []AddressAt `json:"addresses,omitempty"`
	Routes    []MainRoute `json:"routes,omitempty"`
}

// AddressAt is an address on a link, with its broadcast.
type AddressAt struct {
	Prefix    netip.Prefix `json:"prefix"`
	Broadcast netip.Addr   `json:"broadcast,omitzero"`
}

// MainRoute is a unicast route of main through a link.
type MainRoute struct {
	Destination netip.Prefix `json:"destination,omitzero"`
	Gateway     netip.Addr   `json:"gateway,omitzero"`
	Metric      int          `json:"metric,omitempty"`
}

// Process names a process across pid reuse and reboots: its pid, its start time in clock ticks since boot, and
// the boot it ran in.
type Process struct {
	PID    int    `json:"pid"`
	Start  uint64 `json:"start"`
	BootID string `json:"boot_id,omitempty"`
}

// FileUndo is a file as it was before a transaction: absent, these bytes with this mode, or a symbolic link to
// Link. Records from before links have no Link, and read as files.
type FileUndo struct {
	Path    string `json:"path"`
	Existed bool   `json:"existed"`
	Data    []byte `json:"data,omitempty"`
	Mode    uint32 `json:"mode,omitempty"`
	Link    string `json:"link,omitempty"`
}

// SysctlUndo is a key a transaction sets: its value before, and the value the transaction sets. An undo writes
// Value back only while the key still holds Set; another value is another program's, and stays.
type SysctlUndo struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Set   string `json:"set"`
}

// Hash is a file's SHA-256, as the record stores it.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Sysctl returns the record of key, if symroute set it.
func (s *State) Sysctl(key string) (Sysctl, bool) {
	if s == nil {
		return Sysctl{}, false
	}
	i := slices.IndexFunc(s.Sysctls, func(x Sysctl) bool { return x.Key == key })
	if i < 0 {
		return Sysctl{}, false
	}
	return s.Sysctls[i], true
}

// String renders r as `ip rule` does.
func (r Rule) String() string {
	suppress := ""
	if r.SuppressDefault {
		suppress = " suppress_prefixlength 0"
	}
	family := ""
	if r.Family == 6 {
		family = " (IPv6)"
	}
	return fmt.Sprintf("%d: %s lookup %s%s%s", r.Priority, r.Selector(), routing.TableName(r.Table), suppress, family)
}

// Selector is what the rule selects, as ip rule shows it: "from 192.168.1.10", "from all fwmark 0x800/0xf00 iif
// eth-b".
func (r Rule) Selector() string {
	return routing.Rule{From: r.From, To: r.To, Mark: r.Mark, Mask: r.Mask, Iif: r.Iif}.Selector()
}

package nftables

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/symroute/symroute/internal/core/ownership"
)

// Rules and sets are read here from the kernel's own netlink attributes rather than through google/nftables'
// expression types: those drop what they do not model (the source register of `ct mark set`, bitwise's
// operation and shift, any expression they do not know), and a fingerprint that drops a field misses a change
// of it. The rendering is reversible: every attribute is kept, with its type and its exact bytes, except the
// kernel's handles and positions, counters' values and alignment padding, which change without the table
// changing.

// generation returns the ruleset's generation, which every committed nftables transaction increments.
func generation(nl *netlink.Conn) (uint32, error) {
	msgs, err := nl.Execute(request(unix.NFT_MSG_GETGEN, 0, unix.AF_UNSPEC, nil))
	if err != nil {
		return 0, fmt.Errorf("read the nftables generation: %w", err)
	}
	for _, m := range msgs {
		for _, a := range attrsOf(m) {
			if a.typ == unix.NFTA_GEN_ID && len(a.val) == 4 {
				return binary.BigEndian.Uint32(a.val), nil
			}
		}
	}
	return 0, fmt.Errorf("read the nftables generation: no generation in the kernel's answer")
}

func request(msgType uint16, flags netlink.HeaderFlags, family uint8, attrs []netlink.Attribute) netlink.Message {
	data, _ := netlink.MarshalAttributes(attrs) // only fails on an attribute over 64 KiB
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType), Flags: netlink.Request | flags},
		// struct nfgenmsg: family, version, resource id.
		Data: append([]byte{family, unix.NFNETLINK_V0, 0, 0}, data...),
	}
}

// dump asks for every object of one kind in table inet symroute, its name under attribute tableAttr.
func dump(nl *netlink.Conn, msgType uint16, tableAttr uint16, more ...netlink.Attribute) ([]netlink.Message, error) {
	attrs := append([]netlink.Attribute{{Type: tableAttr, Data: []byte(ownership.NFTTable + "\x00")}}, more...)
	return nl.Execute(request(msgType, netlink.Dump, unix.NFPROTO_INET, attrs))
}

func attrsOf(m netlink.Message) []attr {
	if len(m.Data) < 4 {
		return nil
	}
	a, _ := split(m.Data[4:])
	return a
}

// rules returns each chain's rules, rendered, in the order the kernel evaluates them.
func rules(nl *netlink.Conn) (map[string][]string, error) {
	msgs, err := dump(nl, unix.NFT_MSG_GETRULE, unix.NFTA_RULE_TABLE)
	if err != nil {
		return nil, fmt.Errorf("read the rules of table inet %s: %w", ownership.NFTTable, err)
	}
	out := map[string][]string{}
	for _, m := range msgs {
		var chain string
		var parts []string
		for _, a := range attrsOf(m) {
			switch a.typ {
			case unix.NFTA_RULE_CHAIN:
				chain = strings.TrimRight(string(a.val), "\x00")
			case unix.NFTA_RULE_EXPRESSIONS:
				parts = append(parts, expressions(a.val)...)
			case unix.NFTA_RULE_TABLE, unix.NFTA_RULE_HANDLE, unix.NFTA_RULE_POSITION, unix.NFTA_RULE_ID,
				nftaRulePositionID, nftaRuleChainID, unix.NFTA_RULE_PAD:
				// Which table is asked; the rest are the kernel's numbering, not the rule.
			default: // userdata (a comment), compat, and whatever a newer kernel adds
				parts = append(parts, field(a, nil, nil))
			}
		}
		out[chain] = append(out[chain], strings.Join(parts, " "))
	}
	return out, nil
}

// exprAttrs names the attributes of the expressions symroute's table uses (linux/netfilter/nf_tables.h), by
// attribute type; others are shown by number.
var exprAttrs = map[string][]string{
	"meta":      {1: "dreg", 2: "key", 3: "sreg"},
	"ct":        {1: "dreg", 2: "key", 3: "dir", 4: "sreg"},
	"cmp":       {1: "sreg", 2: "op", 3: "data"},
	"bitwise":   {1: "sreg", 2: "dreg", 3: "len", 4: "mask", 5: "xor", 6: "op", 7: "data", 8: "sreg2"},
	"immediate": {1: "dreg", 2: "data"},
	"fib":       {1: "dreg", 2: "result", 3: "flags"},
	"payload":   {1: "dreg", 2: "base", 3: "offset", 4: "len", 5: "sreg", 6: "csum_type", 7: "csum_offset", 8: "csum_flags"},
	"lookup":    {1: "set", 2: "sreg", 3: "dreg", 4: "set_id", 5: "flags"},
}

// exprValues names the values of a few of those attributes ("expression.attribute"), by value.
var exprValues = map[string][]string{
	"meta.key":   {3: "mark", 4: "iif", 5: "oif", 6: "iifname", 7: "oifname", 15: "nfproto", 16: "l4proto"},
	"ct.key":     {0: "state", 1: "direction", 2: "status", 3: "mark"},
	"cmp.op":     {"eq", "neq", "lt", "lte", "gt", "gte"},
	"bitwise.op": {"bool", "lshift", "rshift", "and", "or", "xor"},
	"fib.result": {1: "oif", 2: "oifname", 3: "type"},
}

// volatile lists the attributes of stateful expressions that change as packets pass: counter's bytes and
// packets, quota's consumed bytes, last's timestamp.
var volatile = map[string][]uint16{"counter": {1, 2}, "quota": {3}, "last": {1, 2}}

// expressions renders a rule's expressions, each as name{attribute=value ...}.
func expressions(b []byte) []string {
	elems, _ := split(b)
	var out []string
	for _, e := range elems {
		var name string
		var data []byte
		var other []string
		parts, _ := split(e.val)
		for _, a := range parts {
			switch a.typ {
			case unix.NFTA_EXPR_NAME:
				name = strings.TrimRight(string(a.val), "\x00")
			case unix.NFTA_EXPR_DATA:
				data = a.val
			default:
				other = append(other, field(a, nil, nil))
			}
		}
		var fields []string
		attrs, _ := split(data)
		for _, a := range attrs {
			if len(a.val) == 0 || slices.Contains(volatile[name], a.typ) {
				continue // padding, or state
			}
			fields = append(fields, field(a, exprAttrs[name], func(attr string) []string { return exprValues[name+"."+attr] }))
		}
		s := name
		if len(fields) > 0 {
			s += "{" + strings.Join(fields, " ") + "}"
		}
		out = append(out, strings.Join(append([]string{s}, other...), " "))
	}
	return out
}

// sets returns the table's sets, with their elements.
func sets(nl *netlink.Conn) ([]Set, error) {
	msgs, err := dump(nl, unix.NFT_MSG_GETSET, unix.NFTA_SET_TABLE)
	if err != nil {
		return nil, fmt.Errorf("read the sets of table inet %s: %w", ownership.NFTTable, err)
	}
	var out []Set
	for _, m := range msgs {
		var s Set
		var fields []string
		for _, a := range attrsOf(m) {
			switch {
			case a.typ == unix.NFTA_SET_NAME:
				s.Name = strings.TrimRight(string(a.val), "\x00")
			case a.typ == unix.NFTA_SET_TABLE || a.typ == nftaSetHandle || a.typ == unix.NFTA_SET_ID || len(a.val) == 0:
			case a.typ == nftaSetType || a.typ == nftaSetCount:
				// The kernel's choice of backend (on some kernels shown as its address, which KASLR moves
				// at every boot) and the number of elements, which the elements themselves show.
			default:
				fields = append(fields, field(a, setAttrs, nil))
			}
		}
		s.Spec = strings.Join(fields, " ")
		if s.Elements, err = elements(nl, s.Name); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Set) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

var setAttrs = []string{2: "name", 3: "flags", 4: "key_type", 5: "key_len", 6: "data_type", 7: "data_len", 8: "policy",
	9: "desc", 11: "timeout", 12: "gc_interval", 13: "userdata", 15: "obj_type", 17: "expr", 18: "expressions"}

var elemAttrs = []string{1: "key", 2: "data", 3: "flags", 4: "timeout", 6: "userdata", 9: "objref", 10: "key_end"}

// Attribute types of linux/netfilter/nf_tables.h that golang.org/x/sys/unix lacks.
const (
	nftaRulePositionID     = 10
	nftaRuleChainID        = 11
	nftaSetHandle          = 16
	nftaSetType            = 19
	nftaSetCount           = 20
	nftaSetElemExpressions = 11
)

// elements returns a set's elements, rendered and sorted; the time an element has left and its counters are
// state, and left out.
func elements(nl *netlink.Conn, set string) ([]string, error) {
	msgs, err := dump(nl, unix.NFT_MSG_GETSETELEM, unix.NFTA_SET_ELEM_LIST_TABLE,
		netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")})
	if err != nil {
		return nil, fmt.Errorf("read the elements of set %s of table inet %s: %w", set, ownership.NFTTable, err)
	}
	var out []string
	for _, m := range msgs {
		for _, a := range attrsOf(m) {
			if a.typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
				continue
			}
			elems, _ := split(a.val)
			for _, e := range elems {
				var fields []string
				attrs, _ := split(e.val)
				for _, f := range attrs {
					switch f.typ {
					case unix.NFTA_SET_ELEM_EXPIRATION, unix.NFTA_SET_ELEM_EXPR, nftaSetElemExpressions:
					default:
						if len(f.val) > 0 {
							fields = append(fields, field(f, elemAttrs, nil))
						}
					}
				}
				out = append(out, strings.Join(fields, " "))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// attr is one netlink attribute; typ keeps the nested and byte-order flags, so that two attributes that differ
// only there still render apart.
type attr struct {
	typ uint16
	val []byte
}

// split cuts b into netlink attributes; ok is false unless b is exactly a run of well-formed attributes with
// zeroed padding, which is what makes rendering the parts instead of the bytes lose nothing.
func split(b []byte) (out []attr, ok bool) {
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, false
		}
		n := int(binary.NativeEndian.Uint16(b))
		if n < 4 || n > len(b) {
			return nil, false
		}
		end := min((n+3)&^3, len(b))
		if slices.ContainsFunc(b[n:end], func(c byte) bool { return c != 0 }) {
			return nil, false
		}
		out = append(out, attr{typ: binary.NativeEndian.Uint16(b[2:]), val: b[4:n]})
		b = b[end:]
	}
	return out, true
}

// dataFields are the attributes that hold a struct nft_data: the bytes of a register, or a verdict.
var dataFields = []string{"data", "mask", "xor", "key", "key_end"}

// field renders an attribute of a known object (a message, an expression, an element) as name=value, named
// from names by type (or by number), its 32-bit value from values where they name it.
func field(a attr, names []string, values func(string) []string) string {
	name := strconv.Itoa(int(a.typ))
	if t := int(a.typ); t < len(names) && names[t] != "" {
		name = names[t]
	}
	if len(a.val) == 4 && values != nil {
		v := binary.BigEndian.Uint32(a.val)
		if vs := values(name); int(v) < len(vs) && vs[v] != "" {
			return name + "=" + vs[v]
		}
	}
	if slices.Contains(dataFields, name) {
		return name + "=" + data(a.val)
	}
	return name + "=" + value(a.val)
}

// value renders bytes, in the first of these forms that fits:
//   - a string: printable characters and the NULs after them, as "text" (one NUL) or "text"/length;
//   - 4 bytes: one of the kernel's fields, big-endian, in decimal;
//   - nested attributes, as {type=value ...};
//   - otherwise hex, every byte.
//
// Each form can be told from the others and read back into the same bytes.
func value(b []byte) string {
	if s, ok := text(b); ok {
		return s
	}
	if len(b) == 4 {
		return strconv.FormatUint(uint64(binary.BigEndian.Uint32(b)), 10)
	}
	if parts, ok := split(b); ok && len(parts) > 0 {
		var fields []string
		for _, p := range parts {
			fields = append(fields, strconv.Itoa(int(p.typ))+"="+value(p.val))
		}
		return "{" + strings.Join(fields, " ") + "}"
	}
	return "0x" + hex.EncodeToString(b)
}

// data renders a struct nft_data: {value=<register bytes>} or {verdict={code and chain}}.
func data(b []byte) string {
	parts, ok := split(b)
	if !ok || len(parts) == 0 {
		return value(b)
	}
	var fields []string
	for _, p := range parts {
		switch p.typ {
		case unix.NFTA_DATA_VALUE:
			fields = append(fields, "value="+register(p.val))
		case unix.NFTA_DATA_VERDICT:
			fields = append(fields, "verdict="+value(p.val))
		default:
			fields = append(fields, strconv.Itoa(int(p.typ))+"="+value(p.val))
		}
	}
	return "{" + strings.Join(fields, " ") + "}"
}

// register renders the bytes of a register: 4 bytes (a mark, a mask) as a number in the host's order, in hex,
// as nft --debug=netlink shows them; others as a string where they are one (an interface name), else in hex.
func register(b []byte) string {
	if len(b) == 4 {
		return fmt.Sprintf("0x%08x", binary.NativeEndian.Uint32(b))
	}
	if s, ok := text(b); ok {
		return s
	}
	return "0x" + hex.EncodeToString(b)
}

// text reads b as a string: printable ASCII, then nothing but NULs.
func text(b []byte) (string, bool) {
	s := strings.TrimRight(string(b), "\x00")
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return "", false
	}
	if len(b) == len(s)+1 {
		return strconv.Quote(s), true
	}
	return strconv.Quote(s) + "/" + strconv.Itoa(len(b)), true
}

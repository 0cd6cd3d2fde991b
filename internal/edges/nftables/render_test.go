package nftables

import (
	"encoding/binary"
	"testing"
)

// nla encodes one netlink attribute, padded.
func nla(typ uint16, val []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(val)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// TestRender: each form of value and data, and bytes that look like another form stay apart.
func TestRender(t *testing.T) {
	ifname := append([]byte("eth1"), make([]byte, 12)...)
	mark := binary.NativeEndian.AppendUint32(nil, 0x1000)
	badPadding := nla(1, []byte{7})
	badPadding[6] = 1
	for _, c := range []struct {
		name string
		got  string
		want string
	}{
		{"a kernel field", value(be32(3)), "3"},
		{"a name", value([]byte("__set0\x00")), `"__set0"`},
		{"a name of 3 characters", value([]byte("foo\x00")), `"foo"`},
		{"a prefix without NUL", value([]byte("eth")), `"eth"/3`},
		{"bytes", value([]byte{0xff, 1}), "0xff01"},
		{"a nest", value(nla(1, be32(2))), "{1=2}"},
		{"a nest with non-zero padding", value(badPadding), "0x0500010007000100"},
		{"an interface", data(nla(1, ifname)), `{value="eth1"/16}`},
		{"a mark", data(nla(1, mark)), "{value=0x00001000}"},
		{"a mask that reads as a space", data(nla(1, binary.NativeEndian.AppendUint32(nil, 0x20))), "{value=0x00000020}"},
		{"a byte", data(nla(1, []byte{1})), "{value=0x01}"},
		{"a verdict", data(nla(2, append(nla(1, be32(0xfffffffd)), nla(2, []byte("other\x00"))...))), `{verdict={1=4294967293 2="other"}}`},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
}

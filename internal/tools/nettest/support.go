package nettest

import (
	"bytes"
	"context"
	"sync"

	"github.com/symroute/symroute/internal/edges/networkd"
)

// syncBuffer is a bytes.Buffer safe for the process's writer and the test's reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type networkdClient struct{ *networkd.Client }

func dialNetworkd(ctx context.Context, address string) (networkdClient, error) {
	c, err := networkd.Dial(ctx, address)
	return networkdClient{c}, err
}

func (c networkdClient) state(ctx context.Context, ifindex int) (string, error) {
	l, err := c.DescribeLink(ctx, ifindex)
	return l.AdministrativeState, err
}

package kernel

import (
	"context"
	"errors"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// changeGroups are the rtnetlink groups whose messages say the routing may have changed: links, addresses, rules
// and routes, in both families.
var changeGroups = []uint{
	unix.RTNLGRP_LINK,
	unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR,
	unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE,
	unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE,
}

// WatchChanges signals on the returned channel whenever this network namespace's links, addresses, rules or
// routes change, until ctx ends. It says only that something changed: whoever listens reads the state anew, so a
// burst of messages comes to one signal waiting on the channel, and an overflowed socket (messages lost) is a
// change too. It blocks in the kernel between messages: no polling.
func WatchChanges(ctx context.Context) (<-chan struct{}, error) {
	sock, err := nl.Subscribe(unix.NETLINK_ROUTE, changeGroups...)
	if err != nil {
		return nil, err
	}
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	stop := context.AfterFunc(ctx, sock.Close)
	go func() {
		defer stop()
		defer close(out)
		for {
			_, _, err := sock.Receive()
			if ctx.Err() != nil {
				return
			}
			if err != nil && !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, unix.EINTR) {
				return
			}
			signal()
		}
	}()
	return out, nil
}

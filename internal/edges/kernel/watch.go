package kernel

import (
	"context"
	"errors"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
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
// routes change, until ctx ends, when it closes the channel. It says only that something changed: whoever
// listens reads the state anew, so a burst of messages comes to one signal waiting on the channel, and an
// overflowed socket (messages lost) is a change too. It blocks in the kernel between messages: no polling. A
// socket that fails is opened again (after resubscribeDelay, on the namespace the watch began in) and the gap
// counts as a change, since messages may have been lost in it.
func WatchChanges(ctx context.Context) (<-chan struct{}, error) {
	here, err := netns.Get()
	if err != nil {
		return nil, err
	}
	sock, err := nl.Subscribe(unix.NETLINK_ROUTE, changeGroups...)
	if err != nil {
		here.Close()
		return nil, err
	}
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	go func() {
		defer here.Close()
		defer close(out)
		for {
			stop := context.AfterFunc(ctx, sock.Close)
			receive(ctx, sock, signal)
			stop()
			sock.Close()
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
					return
				case <-time.After(resubscribeDelay):
				}
				if again, err := nl.SubscribeAt(here, netns.None(), unix.NETLINK_ROUTE, changeGroups...); err == nil {
					sock = again
					signal()
					break
				}
			}
			if ctx.Err() != nil {
				sock.Close() // the new one, when the context ended as it was opened; the old one closes twice, harmlessly
				return
			}
		}
	}()
	return out, nil
}

// resubscribeDelay is how long WatchChanges waits before opening a failed socket again.
const resubscribeDelay = time.Second

// receive signals each message or overflow on sock until it fails or ctx ends.
func receive(ctx context.Context, sock *nl.NetlinkSocket, signal func()) {
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
}

package agent

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// pingEvery is how often PingGateway sends an echo request while no reply came.
const pingEvery = 250 * time.Millisecond

// PingGateway checks that gw answers an ICMP echo request sent from the address from, until ctx ends. link is
// the interface the gateway is on, the zone of an IPv6 link-local gateway.
//
// Why an echo: it is the one check that needs nothing beyond the agent's own privileges (a raw ICMP socket, which
// the agent's CAP_NET_RAW allows) and golang.org/x/net, already in the module graph, and it exercises the new
// routing itself: the request leaves from the interface's address, so it takes the interface's table, and the
// reply must come back to that address. An ARP or ND check would prove only the neighbour, not the route, and
// needs a packet sent anyway to start the resolution, and a neighbour entry already STALE is confirmed only after
// the kernel's delay_first_probe_time (5 s). A gateway that drops echo requests fails the check, and the policy
// rolls back: the node's state then names the gateway that did not answer.
func PingGateway(ctx context.Context, link string, from, gw netip.Addr) error {
	network, proto := "ip4:icmp", 1
	var request, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if gw.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		request, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	conn, err := icmp.ListenPacket(network, from.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	id, seq := os.Getpid()&0xffff, rand.IntN(1<<16)
	msg, err := (&icmp.Message{Type: request, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("symroute-agent")}}).Marshal(nil)
	if err != nil {
		return err
	}
	dst := &net.IPAddr{IP: gw.AsSlice()}
	if gw.Is6() && gw.IsLinkLocalUnicast() {
		dst.Zone = link
	}
	buf := make([]byte, 1500)
	for {
		if _, err := conn.WriteTo(msg, dst); err != nil {
			return fmt.Errorf("send an echo request: %w", err)
		}
		if err := conn.SetReadDeadline(time.Now().Add(pingEvery)); err != nil {
			return err
		}
		for {
			n, peer, err := conn.ReadFrom(buf)
			if ctx.Err() != nil {
				return fmt.Errorf("no echo reply: %w", ctx.Err())
			}
			if err != nil {
				break // the next request
			}
			p, ok := peer.(*net.IPAddr)
			if !ok {
				continue
			}
			if a, ok := netip.AddrFromSlice(p.IP); !ok || a.Unmap() != gw.WithZone("") {
				continue
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != reply {
				continue
			}
			if echo, ok := m.Body.(*icmp.Echo); ok && echo.ID == id && echo.Seq == seq {
				return nil
			}
		}
	}
}

// attemptTimeout bounds one attempt of a Retrying check, so one request that hangs does not spend the deadline.
const attemptTimeout = 5 * time.Second

// Retrying makes check pass when any attempt passes before ctx ends: it tries again every pingEvery after a
// failure, and fails with the last attempt's error. One failed request (an HTTP/2 connection the new routes
// reset, an API server restarting behind its load balancer) is not a failed check, and must not roll a node
// back and stop the rollout.
func Retrying(check func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		for {
			attempt, cancel := context.WithTimeout(ctx, attemptTimeout)
			err := check(attempt)
			cancel()
			if err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return err
			case <-time.After(pingEvery):
			}
		}
	}
}

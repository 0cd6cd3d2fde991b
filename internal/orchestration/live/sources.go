package live

import (
	"context"

	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/edges/networkd"
	"github.com/symroute/symroute/internal/edges/nftables"
	"github.com/symroute/symroute/internal/edges/recordstore"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/edges/sysctl"
	"github.com/symroute/symroute/internal/orchestration/state"
)

// Sources connects verify and status to the kernel of this network namespace, the sysctl tree procSys
// (DefaultProcSys when empty) and, when it answers, networkd on the system bus (DBUS_SYSTEM_BUS_ADDRESS is
// honoured): without networkd, the network-file check is skipped, not failed.
func Sources(ctx context.Context, procSys string) (state.Sources, func(), error) {
	reader, err := kernel.NewReader(nil)
	if err != nil {
		return state.Sources{}, nil, err
	}
	if procSys == "" {
		procSys = DefaultProcSys
	}
	src := state.Sources{Kernel: reader, Sysctl: sysctl.Applier{ProcSys: procSys}, Connmark: &nftables.Ruleset{}}
	dctx, cancel := context.WithTimeout(ctx, BusTimeout)
	defer cancel()
	client, err := networkd.Dial(dctx, "")
	if err != nil {
		return src, reader.Close, nil
	}
	src.Networkd = timeoutNetworkd{client}
	return src, func() { client.Close(); reader.Close() }, nil
}

// timeoutNetworkd bounds each call, so a hung networkd delays a verify by seconds, not forever.
type timeoutNetworkd struct{ c *networkd.Client }

func (t timeoutNetworkd) DescribeLink(ctx context.Context, ifindex int) (networkd.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, BusTimeout)
	defer cancel()
	return t.c.DescribeLink(ctx, ifindex)
}

func (t timeoutNetworkd) DescribeLinks(ctx context.Context) ([]networkd.Link, error) {
	ctx, cancel := context.WithTimeout(ctx, BusTimeout)
	defer cancel()
	return t.c.DescribeLinks(ctx)
}

// Recorded is what root's record says symroute has in place, for telling its rules from others': the pending
// try's target while one is pending. Without a record, or when it cannot be read, it is nil, and every unplanned
// rule counts as someone else's; the error says why it could not be read.
func Recorded(root *rootfs.Root) (*record.State, error) {
	rec, err := recordstore.Load(root)
	if err != nil {
		return nil, err
	}
	if rec.Pending != nil {
		return &rec.Pending.Target, nil
	}
	return rec.Applied, nil
}

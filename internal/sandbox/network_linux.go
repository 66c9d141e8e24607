package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/stratus-faas/stratus/internal/peercred"
)

// Every isolated instance has a network namespace of its own: its own
// loopback, where its Runtime API (127.0.0.1:9001, as on Lambda) and the
// Stratus API it is given are served by this server, and one end of a veth
// pair whose other end is on the host, routed and masqueraded to the
// network outside. An nftables table per server refuses what an instance
// sends to the host itself (its listeners on every address) and to other
// instances, and lets nothing in but answers. Nothing of the host's
// sockets is visible in the instance's /proc/net.
//
// Namespaces are built ahead on the spawner threads, as roots are: a
// spawner unshares a fresh one for its next instance, so the clone simply
// inherits it and the cold path pays nothing.

const (
	// RuntimeAPIAddr is where every isolated instance finds its Runtime API.
	RuntimeAPIAddr = "127.0.0.1:9001"
	// The shared address space of RFC 6598, split in blocks of 2^14
	// addresses: one per server on the host (its uid range), a /31 per
	// instance in it.
	netBlockBits = 14
	netSlots     = 1 << (netBlockBits - 1)
	maxNetBlocks = 1 << (22 - netBlockBits)
	// Host-side interface names: the prefix, two hex digits of the block,
	// a sequence number. Within the 15 characters the kernel allows.
	linkPrefix = "stx"
	// Connections an instance may hold open to the API at once.
	instanceAPIConns = 64
)

var netBase = netip.MustParseAddr("100.64.0.0")

// network is a server's share of the host's instance networking.
type network struct {
	block  int
	prefix string // host-side interface names of this server's instances
	api    netip.AddrPort
	serve  func(net.Listener)
	hostNS int // the server's own network namespace
	table  *nftables.Table

	mu   sync.Mutex
	free []int // freed slots, oldest first: a slot is reused as late as can be
	next int
	seq  atomic.Uint64
}

// instanceNet is the network namespace of one instance.
type instanceNet struct {
	n       *network
	fd      int // holds the namespace until the instance is gone
	slot    int
	runtime net.Listener
	api     net.Listener
	diag    *peercred.Diag // finds the owners of sockets in the namespace
}

// newNetwork claims the block of the server's uid range, writes its
// firewall and turns on forwarding. api is the address the server's API
// listens on; instances reach it at the same address (or 127.0.0.1 for an
// unspecified one) inside their own namespace, and serve serves it there.
func newNetwork(block int, api netip.AddrPort, serve func(net.Listener)) (*network, error) {
	if block >= maxNetBlocks {
		return nil, fmt.Errorf("network isolation: more than %d servers on this host", maxNetBlocks)
	}
	if serve == nil || !api.IsValid() {
		return nil, errors.New("network isolation: no API address to give instances")
	}
	if api.Addr().IsUnspecified() {
		api = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), api.Port())
	}
	hostNS, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("network isolation: %w", err)
	}
	n := &network{block: block, prefix: fmt.Sprintf("%s%02x", linkPrefix, block), api: api, serve: serve, hostNS: hostNS}
	if err := n.firewall(); err != nil {
		unix.Close(hostNS)
		return nil, fmt.Errorf("network isolation: firewall: %w", err)
	}
	// Forwarding is host-wide in Linux: instances' packets and their
	// answers cross the host. Left on at exit, as other users may need it.
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		n.close()
		return nil, fmt.Errorf("network isolation: turn on forwarding: %w", err)
	}
	return n, nil
}

func (n *network) close() {
	if n.table != nil {
		if c, err := nftables.New(); err == nil {
			c.DelTable(n.table)
			_ = c.Flush()
		}
	}
	unix.Close(n.hostNS)
}

// addrs are the host's and the instance's ends of a slot's /31.
func (n *network) addrs(slot int) (host, inst netip.Addr) {
	b := netBase.As4()
	v := binary.BigEndian.Uint32(b[:]) + uint32(n.block)<<netBlockBits + uint32(slot)*2
	binary.BigEndian.PutUint32(b[:], v)
	host = netip.AddrFrom4(b)
	return host, host.Next()
}

func (n *network) blockPrefix() netip.Prefix {
	h, _ := n.addrs(0)
	return netip.PrefixFrom(h, 32-netBlockBits)
}

func (n *network) allocSlot() (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.next < netSlots {
		n.next++
		return n.next - 1, nil
	}
	if len(n.free) == 0 {
		return -1, errors.New("no free instance address")
	}
	s := n.free[0]
	n.free = n.free[1:]
	return s, nil
}

func (n *network) releaseSlot(s int) {
	n.mu.Lock()
	n.free = append(n.free, s)
	n.mu.Unlock()
}

// build makes a namespace and moves the calling thread, a spawner's, into
// it: the spawner's next clone inherits it. host is a netlink handle
// opened in the host's namespace.
func (n *network) build(host *netlink.Handle) (*instanceNet, error) {
	slot, err := n.allocSlot()
	if err != nil {
		return nil, err
	}
	in := &instanceNet{n: n, fd: -1, slot: slot}
	if err := in.setup(host); err != nil {
		in.close()
		return nil, fmt.Errorf("instance network: %w", err)
	}
	return in, nil
}

func (in *instanceNet) setup(host *netlink.Handle) error {
	n := in.n
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	in.fd = fd
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE) // in the new namespace
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	if !n.api.Addr().IsLoopback() {
		// The API's own address, on the instance's loopback: an endpoint
		// URL (and a TLS certificate) naming it work unchanged.
		bits := 32
		if n.api.Addr().Is6() {
			bits = 128
		}
		if err := h.AddrAdd(lo, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(n.api.Addr(), bits))}); err != nil {
			return fmt.Errorf("API address: %w", err)
		}
	}
	hostName := n.prefix + strconv.FormatUint(n.seq.Add(1), 16)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: hostName, PeerNamespace: netlink.NsFd(n.hostNS)}
	if err := h.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	hostAddr, instAddr := n.addrs(in.slot)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(instAddr, 31))}); err != nil {
		return fmt.Errorf("instance address: %w", err)
	}
	if err := h.LinkSetUp(eth0); err != nil {
		return err
	}
	peer, err := host.LinkByName(hostName)
	if err != nil {
		return err
	}
	if err := host.AddrAdd(peer, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(hostAddr, 31))}); err != nil {
		return fmt.Errorf("host address: %w", err)
	}
	if err := host.LinkSetUp(peer); err != nil {
		return err
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: hostAddr.AsSlice()}); err != nil {
		return fmt.Errorf("default route: %w", err)
	}
	// Sockets belong to the namespace they are made in: these listen
	// inside the instance's, served by the server.
	if in.diag, err = peercred.OpenDiag(); err != nil {
		return err
	}
	if in.runtime, err = net.Listen("tcp", RuntimeAPIAddr); err != nil {
		return err
	}
	api, err := net.Listen("tcp", n.api.String())
	if err != nil {
		return err
	}
	in.api = &boundedListener{Listener: api, slots: make(chan struct{}, instanceAPIConns), done: make(chan struct{})}
	return nil
}

// start serves the API inside the namespace once the instance runs.
func (in *instanceNet) start() { in.n.serve(in.api) }

// close frees the namespace: with the last process in it gone, the
// kernel removes it and both ends of its veth.
func (in *instanceNet) close() {
	if in.runtime != nil {
		_ = in.runtime.Close()
	}
	if in.api != nil {
		_ = in.api.Close()
	}
	if in.diag != nil {
		in.diag.Close()
	}
	if in.fd >= 0 {
		unix.Close(in.fd)
		in.fd = -1
	}
	in.n.releaseSlot(in.slot)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// firewall writes the server's table, replacing one a crashed server of
// the same block left: instances may not reach the host (input), other
// instances of any server, or link-local addresses such as a cloud's
// metadata service (forward); nothing reaches an instance but answers;
// what leaves the host is masqueraded.
func (n *network) firewall() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: "stratus-" + n.prefix}
	if old, err := c.ListTableOfFamily(t.Name, t.Family); err == nil && old != nil {
		c.DelTable(old)
		if err := c.Flush(); err != nil {
			return err
		}
	}
	n.table = c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	input := c.AddChain(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	forward := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	post := c.AddChain(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept})
	own := []byte(n.prefix)
	anyInstance := []byte(linkPrefix)
	reject := &expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}
	rule := func(ch *nftables.Chain, e ...expr.Any) { c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e}) }

	rule(input, append(ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, own), reject)...)

	fromOwn := ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, own)
	rule(forward, cat(fromOwn, ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, anyInstance), []expr.Any{reject})...)
	rule(forward, cat(fromOwn, ipv4Dst(netip.MustParsePrefix("169.254.0.0/16")), []expr.Any{reject})...)
	rule(forward, cat(fromOwn, []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})...)
	toOwn := ifname(expr.MetaKeyOIFNAME, expr.CmpOpEq, own)
	rule(forward, cat(toOwn, answers(), []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})...)
	rule(forward, cat(toOwn, []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})...)

	rule(post, cat(ipv4Src(n.blockPrefix()), ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, anyInstance), []expr.Any{&expr.Masq{}})...)
	return c.Flush()
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// ifname compares an interface name's first len(prefix) bytes: a prefix
// match, as nft's "name*".
func ifname(key expr.MetaKey, op expr.CmpOp, prefix []byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: prefix}}
}

func ipv4Match(offset uint32, p netip.Prefix) []expr.Any {
	mask := net.CIDRMask(p.Bits(), 32)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

func ipv4Src(p netip.Prefix) []expr.Any { return ipv4Match(12, p) }
func ipv4Dst(p netip.Prefix) []expr.Any { return ipv4Match(16, p) }

// answers matches packets of connections an instance opened.
func answers() []expr.Any {
	bits := make([]byte, 4)
	binary.NativeEndian.PutUint32(bits, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: bits, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// boundedListener holds at most cap(slots) connections open at once; more
// wait in the backlog, so one instance cannot take the server's files.
type boundedListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (l *boundedListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &boundedConn{Conn: c, release: func() { <-l.slots }}, nil
}

func (l *boundedListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type boundedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *boundedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

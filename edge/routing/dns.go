package routing

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// DNS answers are short-lived so viewers follow health changes quickly.
const (
	answerTTL = 5
	zoneTTL   = 300
	// maxUDPSize caps EDNS0 answers (the DNS flag day 2020 value).
	maxUDPSize = 1232
)

// ServiceName is the name viewers resolve, under the zone.
func (r *Router) ServiceName() string { return "video." + r.cfg.Zone }

// checkZone refuses a zone (ending in a dot) that is not a DNS name of
// host-name labels (letters, digits and '-', 1 to 63 bytes, no '-' at
// either end) short enough for the names under it: the router would
// answer for names no resolver asks.
func checkZone(zone string) error {
	name := strings.TrimSuffix(zone, ".")
	if name == "" || len("video."+zone) > 254 {
		return fmt.Errorf("zone %q: want a DNS name such as cdn.example", zone)
	}
	for _, l := range strings.Split(name, ".") {
		ok := l != "" && len(l) <= 63 && l[0] != '-' && l[len(l)-1] != '-'
		for _, c := range l {
			ok = ok && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-')
		}
		if !ok {
			return fmt.Errorf("zone %q: label %q: want 1 to 63 letters, digits or '-', not starting or ending with '-'", zone, l)
		}
	}
	return nil
}

func (r *Router) nsName() string { return "ns1." + r.cfg.Zone }

// ServeDNS implements dns.Handler: it answers for the zone only, from live
// edge state, never larger than the query allows.
func (r *Router) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	var remote netip.Addr
	udp := true
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		remote, _ = netip.AddrFromSlice(a.IP)
	case *net.TCPAddr:
		remote, _ = netip.AddrFromSlice(a.IP)
		udp = false
	}
	resp := r.Answer(req, remote.Unmap())
	if udp {
		size := dns.MinMsgSize // 512 without EDNS0
		if opt := req.IsEdns0(); opt != nil {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
		resp.Truncate(size)
	}
	_ = w.WriteMsg(resp)
}

// Answer builds the response to one query from a resolver at remote.
func (r *Router) Answer(req *dns.Msg, remote netip.Addr) *dns.Msg {
	resp := new(dns.Msg)
	qtype := "none"
	defer func() { r.metrics.countQuery(qtype, resp.Rcode) }()
	if req.Opcode != dns.OpcodeQuery {
		resp.SetRcode(req, dns.RcodeNotImplemented)
		return resp
	}
	if len(req.Question) != 1 {
		resp.SetRcode(req, dns.RcodeFormatError)
		return resp
	}
	q := req.Question[0]
	qtype = dns.TypeToString[q.Qtype]
	if qtype == "" {
		qtype = "other"
	}
	name := strings.ToLower(dns.Fqdn(q.Name))
	zone := strings.ToLower(r.cfg.Zone)
	if !dns.IsSubDomain(zone, name) || q.Qclass != dns.ClassINET {
		resp.SetRcode(req, dns.RcodeRefused)
		return resp
	}
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = false
	client := remote
	var ecs *dns.EDNS0_SUBNET
	if opt := req.IsEdns0(); opt != nil {
		out := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		out.SetUDPSize(maxUDPSize)
		if opt.Version() != 0 {
			// RFC 6891, 6.1.3: we speak EDNS version 0 only.
			resp.Rcode = dns.RcodeBadVers
			resp.Answer, resp.Ns = nil, nil
			resp.Extra = []dns.RR{out}
			return resp
		}
		for _, o := range opt.Option {
			if s, ok := o.(*dns.EDNS0_SUBNET); ok {
				prefix, ok := ecsPrefix(s)
				if !ok {
					resp.Rcode = dns.RcodeFormatError
					resp.Extra = []dns.RR{out}
					return resp
				}
				ecs = s
				if prefix.Bits() > 0 { // /0: the resolver asks that no subnet be used
					client = prefix.Addr()
				}
			}
		}
		if ecs != nil {
			// The answer holds for the whole source prefix.
			out.Option = append(out.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: ecs.Family,
				SourceNetmask: ecs.SourceNetmask, SourceScope: ecs.SourceNetmask, Address: ecs.Address})
		}
		resp.Extra = append(resp.Extra, out)
	}
	soa := r.zoneSOA
	switch {
	case q.Qtype == dns.TypeANY:
		// RFC 8482: a minimal answer, nothing to amplify.
		resp.Answer = append(resp.Answer, &dns.HINFO{Hdr: hdr(name, dns.TypeHINFO, answerTTL), Cpu: "RFC8482"})
	case name == zone && q.Qtype == dns.TypeSOA:
		resp.Answer = append(resp.Answer, soa)
	case name == zone && q.Qtype == dns.TypeNS:
		resp.Answer = append(resp.Answer, &dns.NS{Hdr: hdr(zone, dns.TypeNS, zoneTTL), Ns: r.nsName()})
	case name == strings.ToLower(r.nsName()) && q.Qtype == dns.TypeA:
		resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(name, dns.TypeA, zoneTTL), A: net.IPv4(127, 0, 0, 1)})
	case name == strings.ToLower(r.ServiceName()) && (q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA):
		for _, e := range r.Choose(client) {
			var rrs []dns.RR
			for _, a := range e.Addresses {
				if a.Is4() && q.Qtype == dns.TypeA {
					rrs = append(rrs, &dns.A{Hdr: hdr(name, dns.TypeA, answerTTL), A: a.AsSlice()})
				}
				if a.Is6() && q.Qtype == dns.TypeAAAA {
					rrs = append(rrs, &dns.AAAA{Hdr: hdr(name, dns.TypeAAAA, answerTTL), AAAA: a.AsSlice()})
				}
			}
			if len(rrs) > 0 {
				resp.Answer = rrs
				break
			}
		}
		if len(resp.Answer) == 0 {
			resp.Ns = append(resp.Ns, soa)
		}
	case name == zone || name == strings.ToLower(r.ServiceName()) || name == strings.ToLower(r.nsName()):
		resp.Ns = append(resp.Ns, soa) // the name exists, not this type
	default:
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, soa)
	}
	return resp
}

// ecsPrefix checks an ECS option of a query (RFC 7871, 7.1.2): a known
// family, a source prefix no longer than its addresses, a scope of 0, and
// no address bits set past the source prefix. It returns the prefix.
func ecsPrefix(s *dns.EDNS0_SUBNET) (netip.Prefix, bool) {
	if s.SourceScope != 0 {
		return netip.Prefix{}, false
	}
	var a netip.Addr
	switch s.Family {
	case 0: // what dig sends for +subnet=0
		if s.SourceNetmask != 0 {
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
	case 1:
		ip := s.Address.To4()
		if ip == nil {
			return netip.Prefix{}, false
		}
		a = netip.AddrFrom4([4]byte(ip))
	case 2:
		if len(s.Address) != 16 {
			return netip.Prefix{}, false
		}
		a = netip.AddrFrom16([16]byte(s.Address))
	default:
		return netip.Prefix{}, false
	}
	p, err := a.Prefix(int(s.SourceNetmask))
	if err != nil || p.Addr() != a {
		return netip.Prefix{}, false
	}
	return p, true
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

func (r *Router) soa() *dns.SOA {
	return &dns.SOA{Hdr: hdr(r.cfg.Zone, dns.TypeSOA, zoneTTL), Ns: r.nsName(), Mbox: "hostmaster." + r.cfg.Zone,
		Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: answerTTL}
}

// ServeDNSOn answers on UDP and TCP at addr until ctx ends. ready, if not
// nil, gets the address both listen on once they do (the port the kernel
// chose, when addr asks for any port with ":0"); it needs room for that
// value, as ServeDNSOn does not wait for a reader.
func (r *Router) ServeDNSOn(ctx context.Context, addr string, ready chan<- string) error {
	conns, ln, err := listenDNS(addr)
	if err != nil {
		return err
	}
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	tcp := &dns.Server{Listener: ln, Handler: r, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- tcp.ActivateAndServe() }()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { r.serveUDP(c) })
	}
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	closeAll()
	wg.Wait()
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	serr := tcp.ShutdownContext(sctx)
	if err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	return serr
}

// udpBatch is how many datagrams serveUDP takes from, and hands to, the
// kernel in one system call (recvmmsg and sendmmsg on Linux): under load
// the queue holds many queries, and a call per datagram each way cost more
// than answering them.
const udpBatch = 32

// maxUDPQuery is the largest query read whole. A longer datagram (no
// resolver sends one: EDNS0 buffers are at most 4096 bytes) arrives cut,
// does not parse, and gets FORMERR.
const maxUDPQuery = 8 << 10

// batchConn reads and writes several datagrams a call (x/net's ipv4 and
// ipv6 PacketConn, one message at a time where the system has no batch
// calls).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// serveUDP answers queries on one socket until it is closed.
func (r *Router) serveUDP(c *net.UDPConn) {
	var bc batchConn = ipv4.NewPacketConn(c)
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		bc = ipv6.NewPacketConn(c)
	}
	in := make([]ipv4.Message, udpBatch)
	out := make([]ipv4.Message, udpBatch)
	bufs := make([][]byte, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, maxUDPQuery)}
		bufs[i] = make([]byte, 0, maxUDPSize)
		out[i].Buffers = make([][]byte, 1)
	}
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		k := 0
		for _, m := range in[:n] {
			from, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			addr, _ := netip.AddrFromSlice(from.IP)
			resp, ok := r.answerPacket(m.Buffers[0][:m.N], addr.Unmap())
			if !ok {
				continue
			}
			packed, err := resp.PackBuffer(bufs[k])
			if err != nil {
				continue
			}
			out[k].Buffers[0], out[k].Addr = packed, from
			k++
		}
		for sent := 0; sent < k; {
			w, err := bc.WriteBatch(out[sent:k], 0)
			if err != nil || w == 0 {
				break // the rest are lost, as a datagram may be; resolvers ask again
			}
			sent += w
		}
	}
}

// answerPacket parses a UDP query and answers it, truncated to the size the
// query allows. A packet that does not parse gets FORMERR when its header
// is intact (12 bytes, never more than the query), and nothing otherwise.
func (r *Router) answerPacket(pkt []byte, from netip.Addr) (*dns.Msg, bool) {
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		if len(pkt) < 12 || pkt[2]&0x80 != 0 { // too short, or a response: ignore
			return nil, false
		}
		resp := new(dns.Msg)
		resp.Id = uint16(pkt[0])<<8 | uint16(pkt[1])
		resp.Response = true
		resp.Rcode = dns.RcodeFormatError
		r.metrics.countQuery("malformed", dns.RcodeFormatError)
		return resp, true
	}
	if req.Response {
		return nil, false
	}
	resp := r.Answer(req, from)
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
	}
	resp.Truncate(size)
	return resp, true
}

// listenDNS opens one UDP socket per CPU on addr's port (SO_REUSEPORT: the
// kernel spreads queries over them, and each socket has one reader that
// answers in place, with no goroutine or control message per packet) and a
// TCP listener on the same port. Asked for any port, it tries again when the
// port UDP got is taken for TCP: the two are separate spaces.
func listenDNS(addr string) ([]*net.UDPConn, net.Listener, error) {
	anyPort := strings.HasSuffix(addr, ":0")
	lc := net.ListenConfig{Control: reusePort}
	for attempt := 0; ; attempt++ {
		var conns []*net.UDPConn
		closeAll := func() {
			for _, c := range conns {
				c.Close()
			}
		}
		at := addr
		for range max(1, runtime.NumCPU()) {
			pc, err := lc.ListenPacket(context.Background(), "udp", at)
			if err != nil {
				closeAll()
				return nil, nil, fmt.Errorf("dns: listen udp %s: %w", addr, err)
			}
			at = pc.LocalAddr().String() // the rest join the port the first got
			conns = append(conns, pc.(*net.UDPConn))
		}
		ln, err := net.Listen("tcp", at)
		if err == nil {
			return conns, ln, nil
		}
		closeAll()
		if !anyPort || attempt == 20 {
			return nil, nil, fmt.Errorf("dns: listen tcp %s: %w", at, err)
		}
	}
}

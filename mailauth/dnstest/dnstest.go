// Package dnstest runs a DNS server on loopback for tests: it answers, over
// UDP and TCP on one port, the records a test gives it (SPF and DMARC TXT
// records, DKIM keys, addresses, MX), NXDOMAIN for names it has none for,
// and SERVFAIL to everything during an outage. Sign DKIM-signs test mail
// with the keys it publishes.
package dnstest

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Server is a DNS server with records set by the test.
type Server struct {
	// Addr is host:port, for DNS_RESOLVER or mailauth.ResolverOptions.
	Addr string
	// TTL is the TTL of every answer, in seconds; default 300.
	TTL uint32

	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case FQDN
	outage  bool
	queries atomic.Int64

	udp, tcp *dns.Server
}

// Start runs a server on 127.0.0.1 until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{TTL: 300, records: map[string][]dns.RR{}}
	var err error
	for range 20 {
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			continue
		}
		var l net.Listener
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close() // the TCP port is taken: another pair
			continue
		}
		s.Addr = pc.LocalAddr().String()
		s.udp = &dns.Server{PacketConn: pc, Handler: s}
		s.tcp = &dns.Server{Listener: l, Handler: s}
		break
	}
	if err != nil {
		t.Fatalf("dnstest: listen: %v", err)
	}
	started := make(chan struct{}, 2)
	s.udp.NotifyStartedFunc = func() { started <- struct{}{} }
	s.tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go func() { _ = s.udp.ActivateAndServe() }()
	go func() { _ = s.tcp.ActivateAndServe() }()
	for range 2 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("dnstest: server did not start")
		}
	}
	t.Cleanup(func() {
		_ = s.udp.Shutdown()
		_ = s.tcp.Shutdown()
	})
	return s
}

// ServeDNS answers one question.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	s.mu.Lock()
	outage := s.outage
	var rrs []dns.RR
	exists := false
	if len(req.Question) == 1 {
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		_, exists = s.records[name]
		for _, rr := range s.records[name] {
			if rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
				rrs = append(rrs, dns.Copy(rr))
			}
		}
	}
	s.mu.Unlock()
	switch {
	case outage:
		m.Rcode = dns.RcodeServerFailure
	case len(rrs) > 0:
		m.Answer = rrs
	case !exists:
		m.Rcode = dns.RcodeNameError
		fallthrough
	default:
		// RFC 2308 3: a negative answer carries the zone's SOA.
		m.Ns = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
			Ns: "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: 60}}
	}
	_ = w.WriteMsg(m)
}

func (s *Server) add(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := strings.ToLower(rr.Header().Name)
	s.records[name] = append(s.records[name], rr)
}

func (s *Server) hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: rrtype, Class: dns.ClassINET, Ttl: s.TTL}
}

// TXT adds a TXT record at name; a value longer than 255 bytes is split
// into strings of that size (RFC 7208 3.3).
func (s *Server) TXT(name, value string) {
	var parts []string
	for len(value) > 255 {
		parts, value = append(parts, value[:255]), value[255:]
	}
	s.add(&dns.TXT{Hdr: s.hdr(name, dns.TypeTXT), Txt: append(parts, value)})
}

// SPF publishes an SPF record for domain, e.g. "v=spf1 ip4:127.0.0.10 -all".
func (s *Server) SPF(domain, record string) { s.TXT(domain, record) }

// DMARC publishes a DMARC record for domain, e.g. "v=DMARC1; p=reject".
func (s *Server) DMARC(domain, record string) { s.TXT("_dmarc."+domain, record) }

// A adds an address record (A or AAAA) at name.
func (s *Server) A(name string, ip string) {
	addr := net.ParseIP(ip)
	if v4 := addr.To4(); v4 != nil {
		s.add(&dns.A{Hdr: s.hdr(name, dns.TypeA), A: v4})
		return
	}
	s.add(&dns.AAAA{Hdr: s.hdr(name, dns.TypeAAAA), AAAA: addr})
}

// MX adds a mail exchanger for name.
func (s *Server) MX(name, host string, pref uint16) {
	s.add(&dns.MX{Hdr: s.hdr(name, dns.TypeMX), Preference: pref, Mx: dns.Fqdn(host)})
}

// DKIMKey makes an Ed25519 key (RFC 8463), publishes it as selector's key
// of domain (RFC 6376 3.6.1), and returns its private half for signing.
func (s *Server) DKIMKey(domain, selector string) crypto.Signer {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	s.TXT(selector+"._domainkey."+domain, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	return priv
}

// Outage makes the server answer SERVFAIL to every question while on, as a
// resolver does whose upstream servers are unreachable.
func (s *Server) Outage(on bool) {
	s.mu.Lock()
	s.outage = on
	s.mu.Unlock()
}

// Queries is how many questions the server was asked.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Signature says how Sign signs.
type Signature struct {
	Domain, Selector string
	Key              crypto.Signer // from DKIMKey
	// Headers are the fields signed, in order; default From, To, Subject,
	// Date, Message-ID. Leaving From out makes the signature of an
	// attacker who signs someone else's mail.
	Headers []string
	// BodyLength, when positive, signs only the first so many bytes of
	// the canonical body (the l= tag of RFC 6376 3.5): whatever follows
	// is unsigned.
	BodyLength int
}

// Sign returns raw with a DKIM-Signature (RFC 6376, ed25519-sha256 of RFC
// 8463, relaxed/relaxed canonicalization) on top. It signs what a test asks
// for, including what a careful signer refuses to: a signature without
// From, or one of a body length.
func Sign(raw []byte, s Signature) []byte {
	text := strings.ReplaceAll(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n", "\r\n")
	head, body, _ := strings.Cut(text, "\r\n\r\n")
	head += "\r\n"
	headers := s.Headers
	if headers == nil {
		headers = []string{"From", "To", "Subject", "Date", "Message-ID"}
	}
	canonBody := relaxedBody(body)
	if s.BodyLength > 0 && s.BodyLength < len(canonBody) {
		canonBody = canonBody[:s.BodyLength]
	}
	bh := sha256.Sum256([]byte(canonBody))
	tags := "v=1; a=ed25519-sha256; c=relaxed/relaxed; d=" + s.Domain + "; s=" + s.Selector +
		"; t=" + strconv.FormatInt(time.Now().Unix(), 10) + "; h=" + strings.ToLower(strings.Join(headers, ":"))
	if s.BodyLength > 0 {
		tags += "; l=" + strconv.Itoa(s.BodyLength)
	}
	tags += "; bh=" + base64.StdEncoding.EncodeToString(bh[:]) + "; b="
	fields := headerFields(head)
	var signed strings.Builder
	// RFC 6376 5.4.2: the same name signed twice takes instances from
	// the bottom up.
	used := map[string]int{}
	for _, name := range headers {
		key := strings.ToLower(name)
		var found []string
		for _, f := range fields {
			if n, _, _ := strings.Cut(f, ":"); strings.EqualFold(strings.TrimSpace(n), key) {
				found = append(found, f)
			}
		}
		if i := len(found) - 1 - used[key]; i >= 0 {
			signed.WriteString(relaxedHeader(found[i]) + "\r\n")
		}
		used[key]++
	}
	signed.WriteString(relaxedHeader("DKIM-Signature: " + tags))
	sum := sha256.Sum256([]byte(signed.String()))
	sig, err := s.Key.Sign(rand.Reader, sum[:], crypto.Hash(0))
	if err != nil {
		panic(err)
	}
	return []byte("DKIM-Signature: " + tags + base64.StdEncoding.EncodeToString(sig) + "\r\n" + text)
}

// headerFields splits a header into its fields, folded lines joined.
func headerFields(head string) []string {
	var out []string
	for _, line := range strings.SplitAfter(head, "\r\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1] += line
			continue
		}
		out = append(out, line)
	}
	for i := range out {
		out[i] = strings.TrimSuffix(out[i], "\r\n")
	}
	return out
}

// relaxedHeader is RFC 6376 3.4.2.
func relaxedHeader(f string) string {
	name, value, _ := strings.Cut(f, ":")
	value = strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", ""), "\t", " ")
	return strings.ToLower(strings.TrimSpace(name)) + ":" + strings.Join(strings.Fields(value), " ")
}

// relaxedBody is RFC 6376 3.4.4.
func relaxedBody(body string) string {
	lines := strings.Split(body, "\r\n")
	for i, l := range lines {
		l = strings.ReplaceAll(l, "\t", " ")
		for strings.Contains(l, "  ") {
			l = strings.ReplaceAll(l, "  ", " ")
		}
		lines[i] = strings.TrimRight(l, " ")
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}

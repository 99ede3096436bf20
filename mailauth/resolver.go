package mailauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Resolver asks DNS servers the questions of SPF, DKIM and DMARC and keeps
// each answer for its TTL (RFC 1035 3.2.1; negative answers for the SOA's
// minimum, RFC 2308 5), in a cache of bounded size: every mail would
// otherwise ask the same few questions of its domain again.
//
// Its errors are *net.DNSError, which the SPF, DKIM and DMARC code reads
// the way it reads the standard library's: IsNotFound for a name or
// record that does not exist, IsTemporary (and Temporary()) for anything
// another try might answer — a timeout, SERVFAIL, no server reachable.
type Resolver struct {
	servers []string
	udp     *dns.Client
	tcp     *dns.Client
	now     func() time.Time

	mu      sync.Mutex
	cache   map[cacheKey]cacheEntry
	maxSize int
}

// ResolverOptions configure a Resolver.
type ResolverOptions struct {
	// Server is host:port of the DNS server to ask; "" asks the
	// servers of /etc/resolv.conf.
	Server string
	// Timeout bounds one question to one server; default 2s.
	Timeout time.Duration
	// CacheSize bounds the answers kept; default 4096.
	CacheSize int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// NewResolver returns a Resolver asking o.Server, or the system's servers.
func NewResolver(o ResolverOptions) (*Resolver, error) {
	r := &Resolver{now: o.Now, maxSize: o.CacheSize, cache: map[cacheKey]cacheEntry{}}
	if o.Server != "" {
		if _, _, err := net.SplitHostPort(o.Server); err != nil {
			return nil, fmt.Errorf("mailauth: DNS server %q is not host:port: %w", o.Server, err)
		}
		r.servers = []string{o.Server}
	} else {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, fmt.Errorf("mailauth: read the system's DNS servers: %w", err)
		}
		for _, s := range conf.Servers {
			r.servers = append(r.servers, net.JoinHostPort(s, conf.Port))
		}
		if len(r.servers) == 0 {
			return nil, errors.New("mailauth: /etc/resolv.conf names no DNS server")
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if r.maxSize <= 0 {
		r.maxSize = 4096
	}
	if r.now == nil {
		r.now = time.Now
	}
	r.udp = &dns.Client{Net: "udp", Timeout: o.Timeout, UDPSize: 4096}
	r.tcp = &dns.Client{Net: "tcp", Timeout: o.Timeout}
	return r, nil
}

type cacheKey struct {
	name  string
	qtype uint16
}

type cacheEntry struct {
	rrs     []dns.RR
	missing bool // the name or the record does not exist
	expires time.Time
}

// maxTTL bounds how long any answer is kept, whatever its TTL says.
const maxTTL = time.Hour

// defaultNegativeTTL is kept for a negative answer that carries no SOA.
const defaultNegativeTTL = time.Minute

// query returns the records of type qtype at name, following CNAMEs as the
// server answered them.
func (r *Resolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	fqdn := dns.Fqdn(strings.ToLower(name))
	key := cacheKey{fqdn, qtype}
	now := r.now()
	r.mu.Lock()
	e, ok := r.cache[key]
	r.mu.Unlock()
	if ok && now.Before(e.expires) {
		if e.missing {
			return nil, &net.DNSError{Err: "no such record", Name: name, IsNotFound: true}
		}
		return e.rrs, nil
	}
	if _, ok := dns.IsDomainName(fqdn); !ok {
		return nil, &net.DNSError{Err: "not a domain name", Name: name, IsNotFound: true}
	}
	var lastErr error
	for _, server := range r.servers {
		resp, err := r.exchange(ctx, fqdn, qtype, server)
		if err != nil {
			lastErr = &net.DNSError{Err: err.Error(), Name: name, Server: server, IsTemporary: true,
				IsTimeout: isTimeout(err)}
			continue
		}
		switch resp.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
		default:
			// SERVFAIL, REFUSED and the like: maybe another server,
			// or the same later, answers.
			lastErr = &net.DNSError{Err: "server answered " + dns.RcodeToString[resp.Rcode], Name: name,
				Server: server, IsTemporary: true}
			continue
		}
		var rrs []dns.RR
		minTTL := maxTTL
		for _, rr := range resp.Answer {
			if rr.Header().Rrtype != qtype {
				continue
			}
			rrs = append(rrs, rr)
			minTTL = min(minTTL, time.Duration(rr.Header().Ttl)*time.Second)
		}
		if len(rrs) == 0 {
			ttl := defaultNegativeTTL
			for _, rr := range resp.Ns {
				if soa, ok := rr.(*dns.SOA); ok {
					ttl = min(time.Duration(min(soa.Minttl, soa.Hdr.Ttl))*time.Second, maxTTL)
				}
			}
			r.store(key, cacheEntry{missing: true, expires: now.Add(ttl)})
			return nil, &net.DNSError{Err: "no such record", Name: name, Server: server, IsNotFound: true}
		}
		r.store(key, cacheEntry{rrs: rrs, expires: now.Add(minTTL)})
		return rrs, nil
	}
	return nil, lastErr
}

// exchange asks one server over UDP, and over TCP when the answer did not
// fit (RFC 1035 4.2.1, RFC 7766).
func (r *Resolver) exchange(ctx context.Context, fqdn string, qtype uint16, server string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(fqdn, qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	resp, _, err := r.udp.ExchangeContext(ctx, m, server)
	if err == nil && resp.Truncated {
		resp, _, err = r.tcp.ExchangeContext(ctx, m, server)
	}
	return resp, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}

// store keeps an answer, making room first: expired answers go, and when
// none has expired, an arbitrary one.
func (r *Resolver) store(key cacheKey, e cacheEntry) {
	if !e.expires.After(r.now()) {
		return // a TTL of 0: not to be kept (RFC 1035 3.2.1)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.cache[key]; !ok && len(r.cache) >= r.maxSize {
		now := r.now()
		for k, v := range r.cache {
			if !now.Before(v.expires) {
				delete(r.cache, k)
			}
		}
		for k := range r.cache {
			if len(r.cache) < r.maxSize {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[key] = e
}

// LookupTXT returns the TXT records at name, each record's strings joined
// (RFC 7208 3.3, RFC 6376 3.6.2.2).
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

// LookupMX returns the MX records at name.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := r.query(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	out := make([]*net.MX, 0, len(rrs))
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return out, nil
}

// LookupIPAddr returns the IPv4 and IPv6 addresses of host; it fails only
// when both questions do, and then temporarily when either was temporary.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	var errs []error
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.query(ctx, host, qtype)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			switch a := rr.(type) {
			case *dns.A:
				out = append(out, net.IPAddr{IP: a.A})
			case *dns.AAAA:
				out = append(out, net.IPAddr{IP: a.AAAA})
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	for _, err := range errs {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsTemporary {
			return nil, err
		}
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// LookupAddr returns the names of addr by its PTR records (RFC 1035 3.5).
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	arpa, err := dns.ReverseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: err.Error(), Name: addr, IsNotFound: true}
	}
	rrs, err := r.query(ctx, arpa, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, nil
}

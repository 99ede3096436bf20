package mailauth_test

import (
	"bytes"
	"context"
	"crypto"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"ticketd/mailauth"
	"ticketd/mailauth/dnstest"
)

// world is DNS for a few domains: staff.example signs and publishes
// p=reject; open.example publishes SPF for 127.0.0.10 and no DMARC;
// lists.example sends through 127.0.0.20 with p=none; sub.corp.example
// inherits corp.example's sp=quarantine.
type world struct {
	dns     *dnstest.Server
	checker *mailauth.Checker
	staff   crypto.Signer
	corp    crypto.Signer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	d := dnstest.Start(t)
	w := &world{dns: d}
	d.SPF("staff.example", "v=spf1 ip4:127.0.0.10 -all")
	d.DMARC("staff.example", "v=DMARC1; p=reject")
	w.staff = d.DKIMKey("staff.example", "s1")
	d.SPF("open.example", "v=spf1 ip4:127.0.0.10 -all")
	d.SPF("lists.example", "v=spf1 ip4:127.0.0.20 -all")
	d.DMARC("lists.example", "v=DMARC1; p=none")
	d.DMARC("corp.example", "v=DMARC1; p=none; sp=quarantine")
	w.corp = d.DKIMKey("corp.example", "k")
	d.SPF("evil.example", "v=spf1 ip4:127.0.0.66 -all")
	// Eleven includes: more DNS lookups than RFC 7208 4.6.4 allows.
	chain := "v=spf1"
	for i := range 11 {
		name := "n" + string(rune('a'+i)) + ".loop.example"
		d.SPF(name, "v=spf1 -all")
		chain += " include:" + name
	}
	d.SPF("loop.example", chain+" ip4:127.0.0.10 -all")
	r, err := mailauth.NewResolver(mailauth.ResolverOptions{Server: d.Addr})
	if err != nil {
		t.Fatal(err)
	}
	w.checker = mailauth.NewChecker(r, "mx.ticketd.test", 10*time.Second)
	return w
}

func message(from, body string, extra ...string) []byte {
	h := "From: " + from + "\r\nTo: support@ticketd.test\r\nSubject: Printer\r\nMessage-ID: <m1@example>\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return []byte(h + "\r\n" + body)
}

func sign(t *testing.T, raw []byte, domain, selector string, key crypto.Signer, headers ...string) []byte {
	t.Helper()
	if headers == nil {
		headers = []string{"From", "To", "Subject", "Message-ID"}
	}
	var out bytes.Buffer
	if err := dkim.Sign(&out, bytes.NewReader(raw), &dkim.SignOptions{Domain: domain, Selector: selector, Signer: key,
		HeaderKeys: headers}); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestCheck(t *testing.T) {
	w := newWorld(t)
	staffMail := message("Mod <mod@staff.example>", "status: completed\r\n")
	for _, tc := range []struct {
		name     string
		raw      func() []byte
		env      mailauth.Envelope
		from     string
		spf      mailauth.Result
		dmarc    mailauth.Result
		policy   string
		auth     bool
		temp     bool
		enforced string
	}{
		{name: "signed and sent from the domain's server",
			raw:  func() []byte { return sign(t, staffMail, "staff.example", "s1", w.staff) },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.10"), Helo: "mx.staff.example", MailFrom: "mod@staff.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.Pass, policy: "reject", auth: true},
		{name: "signed, relayed by another server",
			raw:  func() []byte { return sign(t, staffMail, "staff.example", "s1", w.staff) },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "relay.example", MailFrom: "bounce@evil.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.Pass, policy: "reject", auth: true},
		{name: "forged From, unsigned, from another server",
			raw:  func() []byte { return staffMail },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "x@evil.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.Fail, policy: "reject", enforced: "reject"},
		{name: "forged From, envelope forged too",
			raw:  func() []byte { return staffMail },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "mod@staff.example"},
			from: "mod@staff.example", spf: mailauth.Fail, dmarc: mailauth.Fail, policy: "reject", enforced: "reject"},
		{name: "signed by the attacker's own domain",
			raw: func() []byte {
				return sign(t, staffMail, "evil.example", "e", w.dns.DKIMKey("evil.example", "e"))
			},
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "x@evil.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.Fail, policy: "reject", enforced: "reject"},
		{name: "a signature that does not cover From",
			raw: func() []byte {
				return dnstest.Sign(staffMail, dnstest.Signature{Domain: "staff.example", Selector: "s1", Key: w.staff,
					Headers: []string{"To", "Subject"}})
			},
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "x@evil.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.Fail, policy: "reject", enforced: "reject"},
		{name: "a body changed after signing",
			raw: func() []byte {
				return append(sign(t, staffMail, "staff.example", "s1", w.staff), "priority: low\r\n"...)
			},
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "x@evil.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.Fail, policy: "reject", enforced: "reject"},
		{name: "a signature with a body length",
			raw: func() []byte {
				signed := dnstest.Sign(staffMail, dnstest.Signature{Domain: "staff.example", Selector: "s1", Key: w.staff,
					BodyLength: len("status: completed\r\n")})
				return append(signed, "priority: low\r\n"...)
			},
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "x@evil.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.Fail, policy: "reject", enforced: "reject"},
		{name: "two From addresses",
			raw: func() []byte {
				return sign(t, message("mod@staff.example, x@evil.example", "hi"), "staff.example", "s1", w.staff)
			},
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.10"), Helo: "mx.staff.example", MailFrom: "mod@staff.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.PermError},
		{name: "two From fields",
			raw: func() []byte {
				return sign(t, message("mod@staff.example", "hi", "From: x@evil.example"), "staff.example", "s1", w.staff)
			},
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.10"), Helo: "mx.staff.example", MailFrom: "mod@staff.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.PermError},
		{name: "signed by the test signer",
			raw: func() []byte {
				return dnstest.Sign(staffMail, dnstest.Signature{Domain: "staff.example", Selector: "s1", Key: w.staff})
			},
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "x@evil.example"},
			from: "mod@staff.example", spf: mailauth.Pass, dmarc: mailauth.Pass, policy: "reject", auth: true},
		{name: "no DMARC record, SPF passes for the From domain",
			raw:  func() []byte { return message("ann@open.example", "hi") },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.10"), Helo: "mx.open.example", MailFrom: "ann@open.example"},
			from: "ann@open.example", spf: mailauth.Pass, dmarc: mailauth.None, auth: true},
		{name: "no DMARC record, SPF passes for another domain",
			raw:  func() []byte { return message("ann@open.example", "hi") },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "x@evil.example"},
			from: "ann@open.example", spf: mailauth.Pass, dmarc: mailauth.None},
		{name: "no DMARC record, SPF fails",
			raw:  func() []byte { return message("ann@open.example", "hi") },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "ann@open.example"},
			from: "ann@open.example", spf: mailauth.Fail, dmarc: mailauth.None},
		{name: "p=none fails",
			raw:  func() []byte { return message("list@lists.example", "hi") },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "list@lists.example"},
			from: "list@lists.example", spf: mailauth.Fail, dmarc: mailauth.Fail, policy: "none"},
		{name: "a subdomain takes its organization's sp=",
			raw:  func() []byte { return message("a@sub.corp.example", "hi") },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "x@evil.example"},
			from: "a@sub.corp.example", spf: mailauth.Pass, dmarc: mailauth.Fail, policy: "quarantine", enforced: "quarantine"},
		{name: "a subdomain passes by its organization's signature (relaxed alignment)",
			raw:  func() []byte { return sign(t, message("a@sub.corp.example", "hi"), "corp.example", "k", w.corp) },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.66"), Helo: "evil.example", MailFrom: "x@evil.example"},
			from: "a@sub.corp.example", spf: mailauth.Pass, dmarc: mailauth.Pass, policy: "quarantine", auth: true},
		{name: "SPF with too many lookups",
			raw:  func() []byte { return message("a@loop.example", "hi") },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.10"), Helo: "mx.loop.example", MailFrom: "a@loop.example"},
			from: "a@loop.example", spf: mailauth.PermError, dmarc: mailauth.None},
		{name: "the null sender is checked by its HELO name",
			raw:  func() []byte { return message("ann@open.example", "hi") },
			env:  mailauth.Envelope{IP: net.ParseIP("127.0.0.10"), Helo: "open.example"},
			from: "ann@open.example", spf: mailauth.Pass, dmarc: mailauth.None, auth: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := w.checker.Check(context.Background(), tc.raw(), tc.env, tc.from)
			if v.SPF.Result != tc.spf || v.DMARC.Result != tc.dmarc || v.DMARC.Policy != tc.policy ||
				v.Authenticated() != tc.auth || v.Temporary() != tc.temp || v.Enforced() != tc.enforced {
				t.Errorf("verdict %s (auth %v, temp %v, enforced %q), want spf=%s dmarc=%s p=%q auth %v temp %v enforced %q",
					v.Summary(), v.Authenticated(), v.Temporary(), v.Enforced(), tc.spf, tc.dmarc, tc.policy, tc.auth, tc.temp, tc.enforced)
			}
		})
	}
}

// TestCheckDuringOutage: a DNS server that answers SERVFAIL gives
// temperror, never a pass, and never a failure that would quarantine.
func TestCheckDuringOutage(t *testing.T) {
	w := newWorld(t)
	w.dns.Outage(true)
	raw := sign(t, message("mod@staff.example", "status: completed\r\n"), "staff.example", "s1", w.staff)
	v := w.checker.Check(context.Background(), raw,
		mailauth.Envelope{IP: net.ParseIP("127.0.0.10"), Helo: "mx.staff.example", MailFrom: "mod@staff.example"}, "mod@staff.example")
	if v.SPF.Result != mailauth.TempError || v.DKIM[0].Result != mailauth.TempError || v.DMARC.Result != mailauth.TempError ||
		v.Authenticated() || !v.Temporary() || v.Enforced() != "" {
		t.Errorf("verdict during an outage %s", v.Summary())
	}
	w.dns.Outage(false)
	v = w.checker.Check(context.Background(), raw,
		mailauth.Envelope{IP: net.ParseIP("127.0.0.10"), Helo: "mx.staff.example", MailFrom: "mod@staff.example"}, "mod@staff.example")
	if !v.Authenticated() {
		t.Errorf("verdict after the outage %s", v.Summary())
	}
}

// TestResolverCache: the same questions within their TTL are asked once;
// after the TTL they are asked again.
func TestResolverCache(t *testing.T) {
	d := dnstest.Start(t)
	d.TTL = 60
	d.SPF("open.example", "v=spf1 ip4:127.0.0.10 -all")
	now := time.Now()
	r, err := mailauth.NewResolver(mailauth.ResolverOptions{Server: d.Addr, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 3 {
		txt, err := r.LookupTXT(ctx, "open.example")
		if err != nil || len(txt) != 1 {
			t.Fatalf("TXT %v %v", txt, err)
		}
		if _, err := r.LookupTXT(ctx, "_dmarc.open.example"); err == nil {
			t.Fatal("a missing record was found")
		}
	}
	if n := d.Queries(); n != 2 {
		t.Errorf("%d questions asked for 2 names within their TTL", n)
	}
	now = now.Add(61 * time.Second)
	if _, err := r.LookupTXT(ctx, "open.example"); err != nil {
		t.Fatal(err)
	}
	if n := d.Queries(); n != 3 {
		t.Errorf("%d questions after the TTL, want 3", n)
	}
}

func TestStamp(t *testing.T) {
	raw := []byte("Authentication-Results: MX.ticketd.test; dmarc=pass\r\n header.from=staff.example\r\n" +
		"From: mod@staff.example\r\n" +
		"Authentication-Results: other.example; dmarc=fail\r\n" +
		"Authentication-Results: (forged) mx.ticketd.test; spf=pass\r\n" +
		"Subject: hi\r\n\r\nAuthentication-Results: mx.ticketd.test; in the body stays\r\n")
	v := mailauth.Verdict{AuthservID: "mx.ticketd.test", SPF: mailauth.SPF{Result: mailauth.Fail, Domain: "evil.example", Identity: "mailfrom"},
		DMARC: mailauth.DMARC{Result: mailauth.Fail, From: "staff.example", Policy: "reject"}}
	got := string(mailauth.Stamp(raw, v))
	want := "Authentication-Results: mx.ticketd.test;\r\n\tspf=fail smtp.mailfrom=evil.example;\r\n\tdkim=none;\r\n\t" +
		"dmarc=fail header.from=staff.example policy.published-domain-policy=reject\r\n" +
		"From: mod@staff.example\r\n" +
		"Authentication-Results: other.example; dmarc=fail\r\n" +
		"Subject: hi\r\n\r\nAuthentication-Results: mx.ticketd.test; in the body stays\r\n"
	if got != want {
		t.Errorf("stamped:\n%s\nwant:\n%s", got, want)
	}
	if clean := []byte("From: a@b.example\r\n\r\nbody"); !bytes.Equal(mailauth.WithoutOwnResults(clean, "mx.ticketd.test"), clean) ||
		!strings.HasPrefix(string(mailauth.Stamp(clean, v)), "Authentication-Results: mx.ticketd.test;") {
		t.Error("a mail without our fields changed")
	}
}

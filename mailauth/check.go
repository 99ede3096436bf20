package mailauth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/mail"
	"strings"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
)

// Envelope is what the SMTP session tells about a mail's sender.
type Envelope struct {
	IP       net.IP
	Helo     string
	MailFrom string // "" for the null sender
}

// Checker runs the checks of a mail through a Resolver.
type Checker struct {
	r          *Resolver
	authservID string
	timeout    time.Duration
}

// NewChecker returns a Checker that asks r and names itself authservID in
// the Authentication-Results it writes. timeout bounds all the checks of
// one mail (default 20s); what DNS has not answered by then is a
// temperror.
func NewChecker(r *Resolver, authservID string, timeout time.Duration) *Checker {
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	return &Checker{r: r, authservID: strings.ToLower(authservID), timeout: timeout}
}

// AuthservID is the id the Checker writes into Authentication-Results.
func (c *Checker) AuthservID() string { return c.authservID }

// maxSignatures bounds the DKIM signatures verified in one mail: each costs
// a DNS question and a public-key operation.
const maxSignatures = 5

// Check verifies raw, received from env. from is the address ticketd takes
// as the mail's author (its From field); the DMARC check is of its domain.
func (c *Checker) Check(ctx context.Context, raw []byte, env Envelope, from string) Verdict {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	v := Verdict{AuthservID: c.authservID}
	v.SPF = c.spf(ctx, env)
	v.DKIM = c.dkim(ctx, raw)
	v.DMARC = c.dmarc(ctx, raw, from, v.SPF, v.DKIM)
	return v
}

// spf checks the envelope sender's domain, or for the null sender the HELO
// name (RFC 7208 2.3, 2.4). More than 10 lookups are a permerror (4.6.4).
func (c *Checker) spf(ctx context.Context, env Envelope) SPF {
	s := SPF{Identity: "mailfrom"}
	sender := strings.Trim(env.MailFrom, "<>")
	_, domain, ok := strings.Cut(sender, "@")
	if !ok || domain == "" {
		s.Identity, domain = "helo", strings.Trim(env.Helo, "[]")
		sender = "postmaster@" + domain
	}
	s.Domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if env.IP == nil || s.Domain == "" || net.ParseIP(s.Domain) != nil {
		s.Result = None
		s.Reason = "no domain to check"
		return s
	}
	res, err := spf.CheckHostWithSender(env.IP, env.Helo, sender, spf.WithResolver(c.r), spf.WithContext(ctx))
	s.Result = Result(res)
	if err != nil && res != spf.Pass {
		s.Reason = err.Error()
	}
	return s
}

// dkim verifies up to maxSignatures signatures. go-msgauth refuses a
// signature that does not cover From, or that signs only part of the body
// (l=, RFC 6376 8.2).
func (c *Checker) dkim(ctx context.Context, raw []byte) []DKIM {
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		MaxVerifications: maxSignatures,
		LookupTXT:        func(name string) ([]string, error) { return c.r.LookupTXT(ctx, name) },
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		return []DKIM{{Result: PermError, Reason: err.Error()}}
	}
	var out []DKIM
	for _, vf := range verifs {
		d := DKIM{Result: Pass, Domain: strings.ToLower(vf.Domain)}
		switch {
		case vf.Err == nil:
		case dkim.IsTempFail(vf.Err):
			d.Result, d.Reason = TempError, vf.Err.Error()
		case dkim.IsPermFail(vf.Err):
			d.Result, d.Reason = PermError, vf.Err.Error()
		default:
			d.Result, d.Reason = Fail, vf.Err.Error()
		}
		out = append(out, d)
	}
	return out
}

// dmarc checks the From domain (RFC 7489 6.6): its policy record, or its
// organizational domain's, and whether a passing SPF or DKIM identity
// aligns with it.
func (c *Checker) dmarc(ctx context.Context, raw []byte, from string, s SPF, sigs []DKIM) DMARC {
	d := DMARC{Result: None}
	// RFC 7489 6.6.1: the From field must name exactly one author.
	if n := fromAuthors(raw); n != 1 {
		d.Result = PermError
		d.Reason = "the mail names no single From address"
		if n > 1 {
			d.Reason, d.MultipleFrom = "the mail has more than one From address", true
		}
		return d
	}
	_, domain, ok := strings.Cut(from, "@")
	if !ok || domain == "" {
		d.Result, d.Reason = PermError, "the From address has no domain"
		return d
	}
	d.From = strings.ToLower(strings.TrimSuffix(domain, "."))
	rec, err := c.lookupPolicy(ctx, d.From)
	strictDKIM := rec != nil && rec.DKIMAlignment == dmarc.AlignmentStrict
	strictSPF := rec != nil && rec.SPFAlignment == dmarc.AlignmentStrict
	for _, sig := range sigs {
		if sig.Result == Pass && Aligned(sig.Domain, d.From, strictDKIM) {
			d.DKIMAligned = true
		}
	}
	d.SPFAligned = s.Result == Pass && Aligned(s.Domain, d.From, strictSPF)
	switch {
	case err != nil && dmarc.IsTempFail(err):
		d.Result, d.Reason = TempError, err.Error()
		return d
	case rec == nil:
		return d // no record: None, and the alignment says the rest
	}
	d.Policy = string(rec.Policy)
	// RFC 7489 6.3: sp= is the policy of the organization's subdomains.
	if rec.SubdomainPolicy != "" && rec.fromOrg {
		d.Policy = string(rec.SubdomainPolicy)
	}
	switch {
	case d.DKIMAligned || d.SPFAligned:
		d.Result = Pass
	case s.Result == TempError || hasTempError(sigs):
		// A check that could not finish might have passed.
		d.Result, d.Reason = TempError, "an SPF or DKIM check could not finish"
	default:
		d.Result, d.Reason = Fail, "no SPF or DKIM pass aligned with the From domain"
	}
	return d
}

func hasTempError(sigs []DKIM) bool {
	for _, s := range sigs {
		if s.Result == TempError {
			return true
		}
	}
	return false
}

// policy is a DMARC record and where it was found.
type policy struct {
	*dmarc.Record
	fromOrg bool // found at the organizational domain, not the From domain
}

// lookupPolicy finds the DMARC record of domain, else of its
// organizational domain (RFC 7489 6.6.3). It returns nil without error
// when neither publishes one; a record that cannot be read counts as none.
func (c *Checker) lookupPolicy(ctx context.Context, domain string) (*policy, error) {
	lookup := &dmarc.LookupOptions{LookupTXT: func(name string) ([]string, error) { return c.r.LookupTXT(ctx, name) }}
	rec, err := dmarc.LookupWithOptions(domain, lookup)
	if err == nil {
		return &policy{Record: rec}, nil
	}
	if dmarc.IsTempFail(err) {
		return nil, err
	}
	if org := Organization(domain); org != domain {
		rec, err := dmarc.LookupWithOptions(org, lookup)
		if err == nil {
			return &policy{Record: rec, fromOrg: true}, nil
		}
		if dmarc.IsTempFail(err) {
			return nil, err
		}
	}
	return nil, nil
}

// fromAuthors counts the mailboxes of the From fields in raw's header
// (RFC 5322 3.6.2: one field; more than one mailbox needs a Sender).
func fromAuthors(raw []byte) int {
	var fields []*strings.Builder
	var cur *strings.Builder
	r := bufio.NewReader(bytes.NewReader(raw))
	for {
		line, err := r.ReadString('\n')
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" {
			break // the end of the header, or of the mail
		}
		if trimmed[0] == ' ' || trimmed[0] == '\t' {
			if cur != nil {
				cur.WriteString(trimmed)
			}
		} else if name, value, ok := strings.Cut(trimmed, ":"); ok && strings.EqualFold(strings.TrimSpace(name), "from") {
			cur = &strings.Builder{}
			cur.WriteString(value)
			fields = append(fields, cur)
		} else {
			cur = nil
		}
		if err != nil {
			break
		}
	}
	n := 0
	for _, f := range fields {
		list, err := mail.ParseAddressList(f.String())
		if err != nil {
			// Unreadable to the strict grammar: count the addresses
			// a lenient reader would find.
			n += max(1, strings.Count(f.String(), "@"))
			continue
		}
		n += len(list)
	}
	return n
}

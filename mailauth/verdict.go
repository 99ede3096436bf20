// Package mailauth checks who sent a mail, at ticketd's own MX: SPF (RFC
// 7208) for the client's address and envelope sender, DKIM (RFC 6376) for
// the signatures in the message, and DMARC (RFC 7489) for the From domain,
// with alignment through the organizational domain. The Verdict says what
// each check found, is written into the stored mail as an
// Authentication-Results field (RFC 8601), and tells intake whether the
// From address is authenticated.
package mailauth

import (
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Result is the outcome of one check (RFC 8601 2.7).
type Result string

const (
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	Neutral   Result = "neutral"
	None      Result = "none"
	TempError Result = "temperror" // DNS did not answer; another try may
	PermError Result = "permerror" // the records or the mail cannot be read
)

// Verdict is what the checks of one mail found.
type Verdict struct {
	// AuthservID names who reached it: ticketd itself, or the trusted
	// server whose Authentication-Results a mail taken by IMAP carried.
	AuthservID string `json:"authserv_id"`
	SPF        SPF    `json:"spf"`
	DKIM       []DKIM `json:"dkim,omitempty"`
	DMARC      DMARC  `json:"dmarc"`
}

// SPF is the check of the client's address against the envelope sender's
// domain, or the HELO name for the null sender (RFC 7208 2.3, 2.4).
type SPF struct {
	Result   Result `json:"result"`
	Domain   string `json:"domain,omitempty"`
	Identity string `json:"identity,omitempty"` // mailfrom or helo
	Reason   string `json:"reason,omitempty"`
}

// DKIM is the check of one signature.
type DKIM struct {
	Result   Result `json:"result"`
	Domain   string `json:"domain,omitempty"` // d=
	Selector string `json:"selector,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// DMARC is the check of the From domain (RFC 7489 6.6).
type DMARC struct {
	Result Result `json:"result"`
	From   string `json:"from,omitempty"` // the From domain
	// Policy is what the domain asks of mail that fails: none,
	// quarantine or reject; "" when it publishes no DMARC record.
	Policy string `json:"policy,omitempty"`
	// DKIMAligned and SPFAligned: a passing DKIM signature or SPF check
	// is for the From domain's organization (relaxed alignment, RFC 7489
	// 3.1), or for the domain itself where the record asks for strict.
	DKIMAligned bool `json:"dkim_aligned,omitempty"`
	SPFAligned  bool `json:"spf_aligned,omitempty"`
	// MultipleFrom: the mail names more than one author (RFC 7489 6.6.1),
	// so whose mail it is cannot be told.
	MultipleFrom bool   `json:"multiple_from,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// Authenticated reports whether the From address is the sender's: DMARC
// passes, or the domain publishes no DMARC record and a DKIM signature or
// the SPF check passes for it (aligned).
func (v *Verdict) Authenticated() bool {
	if v == nil {
		return false
	}
	switch v.DMARC.Result {
	case Pass:
		return true
	case None:
		return v.DMARC.Policy == "" && (v.DMARC.DKIMAligned || v.DMARC.SPFAligned)
	}
	return false
}

// Temporary reports whether the From address is not authenticated only
// because DNS did not answer: the same mail checked again later may pass.
func (v *Verdict) Temporary() bool {
	if v == nil || v.Authenticated() {
		return false
	}
	switch v.DMARC.Result {
	case TempError:
		return true
	case None:
		return v.SPF.Result == TempError || slices.ContainsFunc(v.DKIM, func(d DKIM) bool { return d.Result == TempError })
	}
	return false
}

// Enforced returns the policy, quarantine or reject, of a From domain that
// the mail fails DMARC for; "" when it passes, or the domain asks nothing.
func (v *Verdict) Enforced() string {
	if v == nil || v.DMARC.Result != Fail {
		return ""
	}
	switch v.DMARC.Policy {
	case "quarantine", "reject":
		return v.DMARC.Policy
	}
	return ""
}

// Failed reports a DMARC failure under any policy: the From address is
// likely forged.
func (v *Verdict) Failed() bool { return v != nil && v.DMARC.Result == Fail }

// Summary is the verdict in one line, for traces and pages:
// "spf=pass (example.com) dkim=pass (example.com) dmarc=pass (example.com, p=reject)".
func (v *Verdict) Summary() string {
	if v == nil {
		return "not checked"
	}
	var b strings.Builder
	b.WriteString("spf=" + string(v.SPF.Result))
	if v.SPF.Domain != "" {
		b.WriteString(" (" + v.SPF.Domain + ")")
	}
	if len(v.DKIM) == 0 {
		b.WriteString(" dkim=none")
	}
	for _, d := range v.DKIM {
		b.WriteString(" dkim=" + string(d.Result))
		if d.Domain != "" {
			b.WriteString(" (" + d.Domain + ")")
		}
	}
	b.WriteString(" dmarc=" + string(v.DMARC.Result))
	var about []string
	if v.DMARC.From != "" {
		about = append(about, v.DMARC.From)
	}
	if v.DMARC.Policy != "" {
		about = append(about, "p="+v.DMARC.Policy)
	}
	if len(about) > 0 {
		b.WriteString(" (" + strings.Join(about, ", ") + ")")
	}
	if v.DMARC.Reason != "" {
		b.WriteString(": " + v.DMARC.Reason)
	}
	return b.String()
}

// Field is the value of the Authentication-Results field that records v
// (RFC 8601 2.2), with v.AuthservID as the authserv-id.
func (v *Verdict) Field() string {
	var b strings.Builder
	b.WriteString(v.AuthservID)
	res := func(method string, r Result, reason string, props ...string) {
		b.WriteString(";\r\n\t" + method + "=" + string(r))
		if reason != "" {
			b.WriteString(" reason=" + quote(reason))
		}
		for i := 0; i+1 < len(props); i += 2 {
			if props[i+1] != "" {
				b.WriteString(" " + props[i] + "=" + quote(props[i+1]))
			}
		}
	}
	// RFC 8601 2.7.2: smtp.mailfrom, or smtp.helo for the null sender.
	spfProp := "smtp.mailfrom"
	if v.SPF.Identity == "helo" {
		spfProp = "smtp.helo"
	}
	res("spf", v.SPF.Result, v.SPF.Reason, spfProp, v.SPF.Domain)
	if len(v.DKIM) == 0 {
		res("dkim", None, "")
	}
	for _, d := range v.DKIM {
		res("dkim", d.Result, d.Reason, "header.d", d.Domain, "header.s", d.Selector)
	}
	// RFC 8601 2.7.1 and the IANA registry: header.from, and the
	// published policy.
	res("dmarc", v.DMARC.Result, v.DMARC.Reason, "header.from", v.DMARC.From, "policy.published-domain-policy", v.DMARC.Policy)
	return b.String()
}

// quote writes a value as an RFC 2045 token, or a quoted-string when it
// holds anything else.
func quote(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if s != "" && !strings.ContainsAny(s, " ()<>@,;:\\\"/[]?=") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// Organization is a domain's organizational domain (RFC 7489 3.2): the
// public suffix and one label more.
func Organization(domain string) string {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// Aligned reports whether an authenticated domain aligns with the From
// domain (RFC 7489 3.1): the same domain when strict, the same
// organizational domain when relaxed.
func Aligned(domain, from string, strict bool) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	from = strings.ToLower(strings.TrimSuffix(from, "."))
	if domain == "" || from == "" {
		return false
	}
	if strict {
		return domain == from
	}
	return Organization(domain) == Organization(from)
}

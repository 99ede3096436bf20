package inbound

import (
	"regexp"
	"strings"

	"ticketd/mailauth"
)

// trustedVerdict is the verdict of a mail taken by IMAP: what its
// Authentication-Results fields (RFC 8601) from the trusted authentication
// servers report about from's domain; nil when none of them wrote one.
// Fields of other servers are ignored: anybody can write one (RFC 8601 5:
// a receiver trusts only the authserv-ids it knows, because the border MTA
// removes copies carrying its own id from arriving mail). A trusted field
// that reports a pass cannot cancel one that reports a failure.
func trustedVerdict(fields []string, trusted []string, from string) *mailauth.Verdict {
	if len(trusted) == 0 {
		return nil
	}
	fromDomain := strings.ToLower(strings.TrimSuffix(domainOf(from), "."))
	var v *mailauth.Verdict
	for _, f := range fields {
		id, results := parseAuthResults(f)
		if id == "" || !containsFold(trusted, id) {
			continue
		}
		if v == nil {
			v = &mailauth.Verdict{AuthservID: id, SPF: mailauth.SPF{Result: mailauth.None},
				DMARC: mailauth.DMARC{Result: mailauth.None, From: fromDomain}}
		}
		for _, r := range results {
			res := mailauth.Result(r.result)
			switch r.method {
			case "spf":
				// RFC 8601 2.7.2: smtp.mailfrom, or smtp.helo.
				s := mailauth.SPF{Result: res, Domain: domainOf(r.props["smtp.mailfrom"]), Identity: "mailfrom"}
				if s.Domain == "" {
					s.Domain, s.Identity = strings.ToLower(r.props["smtp.helo"]), "helo"
				}
				if rank(res) > rank(v.SPF.Result) {
					v.SPF = s
				}
			case "dkim":
				// RFC 8601 2.7.1: header.d is the signing domain,
				// header.i the agent or user identifier.
				d := strings.ToLower(r.props["header.d"])
				if d == "" {
					d = domainOf(r.props["header.i"])
				}
				v.DKIM = append(v.DKIM, mailauth.DKIM{Result: res, Domain: d, Reason: r.props["reason"]})
			case "dmarc":
				// RFC 7489 11.2: DMARC reports header.from, the From
				// domain it evaluated; a result for another
				// organization's domain is not about this mail's From.
				if d := r.props["header.from"]; d != "" && !mailauth.Aligned(d, fromDomain, false) {
					continue
				}
				if rank(res) > rank(v.DMARC.Result) {
					v.DMARC.Result = res
				}
				if p := r.props["policy.published-domain-policy"]; p != "" {
					v.DMARC.Policy = strings.ToLower(p)
				} else if p := r.policy; p != "" && v.DMARC.Policy == "" {
					v.DMARC.Policy = p
				}
			}
		}
	}
	if v == nil {
		return nil
	}
	for _, d := range v.DKIM {
		if d.Result == mailauth.Pass && mailauth.Aligned(d.Domain, fromDomain, false) {
			v.DMARC.DKIMAligned = true
		}
	}
	v.DMARC.SPFAligned = v.SPF.Result == mailauth.Pass && mailauth.Aligned(v.SPF.Domain, fromDomain, false)
	if v.DMARC.Result == mailauth.Fail && v.DMARC.Policy == "" {
		v.DMARC.Policy = "none" // a failure implies a record, whatever it asks
	}
	return v
}

// rank orders results so that the worse of two reports stands.
func rank(r mailauth.Result) int {
	switch r {
	case mailauth.Fail:
		return 6
	case mailauth.PermError:
		return 5
	case mailauth.TempError:
		return 4
	case mailauth.SoftFail, mailauth.Neutral:
		return 3
	case mailauth.Pass:
		return 2
	case mailauth.None:
		return 1
	}
	return 0
}

// authFailure reports a DMARC failure, or a DKIM failure of a signature
// for the From domain's organization, as "dmarc=fail for example.com
// (reported by mx.example.com)"; "" when there is none. It is what refuses
// mailed commands where authentication is not required
// (COMMANDS_REQUIRE_AUTH=false). A failure that names no domain is taken
// to be about the From domain: refusing is the safe side.
func authFailure(v *mailauth.Verdict) string {
	if v == nil {
		return ""
	}
	by := " (reported by " + v.AuthservID + ")"
	if v.DMARC.Result == mailauth.Fail {
		return "dmarc=fail for " + v.DMARC.From + by
	}
	for _, d := range v.DKIM {
		if d.Result != mailauth.Fail {
			continue
		}
		if d.Domain == "" {
			return "dkim=fail" + by
		}
		if mailauth.Aligned(d.Domain, v.DMARC.From, false) {
			return "dkim=fail for " + d.Domain + by
		}
	}
	return ""
}

// domainOf is the domain of an address (or of "@domain"), lower case; ""
// when it has none.
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(strings.TrimSpace(v), s) {
			return true
		}
	}
	return false
}

type authResult struct {
	method string            // lower case: dkim, spf, dmarc, ...
	result string            // lower case: pass, fail, none, ...
	props  map[string]string // "header.from" -> "example.com", keys lower case
	policy string            // dmarc: the p= a comment names, "(p=reject dis=none)", as many servers write it
}

// commentPolicy finds the policy in a DMARC result's comment.
var commentPolicy = regexp.MustCompile(`(?i)\(\s*p=(none|quarantine|reject)\b`)

// authPair matches "name = value" inside one resinfo; names may carry a
// version (RFC 8601 2.2: method [ "/" method-version ]) or be ptype.property.
var authPair = regexp.MustCompile(`([A-Za-z0-9_.-]+(?:\s*/\s*[0-9]+)?)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]+)`)

// parseAuthResults splits one Authentication-Results field value into its
// authserv-id and results. RFC 8601 2.2:
//
//	authres-header = "Authentication-Results:" [CFWS] authserv-id
//	                 [ CFWS authres-version ] ( no-result / 1*resinfo ) [CFWS] CRLF
//	resinfo        = [CFWS] ";" methodspec [ CFWS reasonspec ] [ CFWS 1*propspec ]
func parseAuthResults(v string) (authservID string, results []authResult) {
	policies := map[int]string{}
	for i, part := range splitUnquoted(v, ';') {
		if m := commentPolicy.FindStringSubmatch(part); m != nil {
			policies[i] = strings.ToLower(m[1])
		}
	}
	parts := splitUnquoted(stripComments(v), ';')
	if len(parts) == 0 {
		return "", nil
	}
	head := strings.Fields(parts[0])
	if len(head) == 0 {
		return "", nil
	}
	authservID = strings.ToLower(strings.Trim(head[0], `"`))
	for i, p := range parts[1:] {
		pairs := authPair.FindAllStringSubmatch(p, -1)
		if len(pairs) == 0 {
			continue // "none": no result
		}
		method := strings.ToLower(strings.Join(strings.Fields(pairs[0][1]), ""))
		if i := strings.IndexByte(method, '/'); i >= 0 {
			method = method[:i]
		}
		r := authResult{method: method, result: strings.ToLower(unquote(pairs[0][2])), props: map[string]string{}, policy: policies[i+1]}
		for _, kv := range pairs[1:] {
			k := strings.ToLower(kv[1])
			if _, ok := r.props[k]; !ok {
				r.props[k] = unquote(kv[2])
			}
		}
		results = append(results, r)
	}
	return authservID, results
}

// stripComments removes RFC 5322 3.2.2 comments, which nest, outside
// quoted strings.
func stripComments(s string) string {
	var b strings.Builder
	depth, quoted, escaped := 0, false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
			if depth == 0 {
				b.WriteRune(r)
			}
			continue
		case r == '\\' && (quoted || depth > 0):
			escaped = true
			if depth == 0 {
				b.WriteRune(r)
			}
			continue
		case quoted:
			if r == '"' {
				quoted = false
			}
			b.WriteRune(r)
			continue
		case r == '(':
			depth++
			continue
		case r == ')' && depth > 0:
			depth--
			continue
		case depth > 0:
			continue
		case r == '"':
			quoted = true
		}
		b.WriteRune(r)
	}
	return b.String()
}

// splitUnquoted splits s at sep outside quoted strings.
func splitUnquoted(s string, sep rune) []string {
	var out []string
	start, quoted, escaped := 0, false, false
	for i, r := range s {
		switch {
		case escaped:
			escaped = false
		case r == '\\' && quoted:
			escaped = true
		case r == '"':
			quoted = !quoted
		case r == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
		s = strings.ReplaceAll(s, `\"`, `"`)
		s = strings.ReplaceAll(s, `\\`, `\`)
	}
	return s
}

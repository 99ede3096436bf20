package inbound

import (
	"regexp"
	"slices"
	"strings"
)

// authFailure reads Authentication-Results header fields (RFC 8601) and
// reports the first DMARC or DKIM failure for fromDomain stated by one of
// the trusted authentication servers, as "dmarc=fail (header.from=...)".
// Fields from other servers are ignored: anybody can write one (RFC 8601
// 5: a receiver trusts only the authserv-ids it knows, because the border
// MTA removes copies carrying its own id from arriving mail). A trusted
// field that reports a pass cannot cancel one that reports a failure.
func authFailure(fields []string, trusted []string, fromDomain string) string {
	return failureOf(fields, trusted, fromDomain, "dmarc", "dkim")
}

// dmarcFailure is authFailure for DMARC alone: the verdict that the From
// address was forged. (A DKIM signature broken on the way, by a mailing
// list say, is common in mail that is genuine.)
func dmarcFailure(fields []string, trusted []string, fromDomain string) string {
	return failureOf(fields, trusted, fromDomain, "dmarc")
}

// failureOf reports the first failure by one of methods, as authFailure.
func failureOf(fields []string, trusted []string, fromDomain string, methods ...string) string {
	if len(trusted) == 0 {
		return ""
	}
	fromDomain = strings.ToLower(strings.TrimSuffix(fromDomain, "."))
	for _, f := range fields {
		id, results := parseAuthResults(f)
		if id == "" || !containsFold(trusted, id) {
			continue
		}
		for _, r := range results {
			if r.result != "fail" || !slices.Contains(methods, r.method) {
				continue
			}
			var domain string
			switch r.method {
			case "dmarc":
				// RFC 7489 11.2: DMARC reports header.from, the From
				// domain it evaluated.
				domain = r.props["header.from"]
			case "dkim":
				// RFC 8601 2.7.1: header.d is the signing domain,
				// header.i the agent or user identifier.
				domain = r.props["header.d"]
				if domain == "" {
					if i := r.props["header.i"]; strings.Contains(i, "@") {
						domain = i[strings.LastIndexByte(i, '@')+1:]
					}
				}
			default:
				continue
			}
			// A failure that names no domain is taken to be about the
			// From domain: refusing is the safe side.
			if domain == "" || sameOrganization(domain, fromDomain) {
				s := r.method + "=fail"
				if domain != "" {
					s += " for " + strings.ToLower(domain)
				}
				return s + " (reported by " + id + ")"
			}
		}
	}
	return ""
}

// sameOrganization reports whether a and b are the same domain or one is
// a subdomain of the other (RFC 7489 3.1.1 relaxed alignment, without the
// public suffix list).
func sameOrganization(a, b string) bool {
	a = strings.ToLower(strings.TrimSuffix(a, "."))
	b = strings.ToLower(strings.TrimSuffix(b, "."))
	if a == "" || b == "" {
		return false
	}
	return a == b || strings.HasSuffix(a, "."+b) || strings.HasSuffix(b, "."+a)
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
}

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
	parts := splitUnquoted(stripComments(v), ';')
	if len(parts) == 0 {
		return "", nil
	}
	head := strings.Fields(parts[0])
	if len(head) == 0 {
		return "", nil
	}
	authservID = strings.ToLower(strings.Trim(head[0], `"`))
	for _, p := range parts[1:] {
		pairs := authPair.FindAllStringSubmatch(p, -1)
		if len(pairs) == 0 {
			continue // "none": no result
		}
		method := strings.ToLower(strings.Join(strings.Fields(pairs[0][1]), ""))
		if i := strings.IndexByte(method, '/'); i >= 0 {
			method = method[:i]
		}
		r := authResult{method: method, result: strings.ToLower(unquote(pairs[0][2])), props: map[string]string{}}
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

package mailauth

import (
	"bytes"
	"strings"
)

// Stamp returns raw with the Authentication-Results field of v on top, and
// without any field that arrived claiming v's authserv-id: RFC 8601 5
// requires a border MTA to remove those, since only it may write them and
// anyone could have before. raw is not changed.
func Stamp(raw []byte, v Verdict) []byte {
	kept := WithoutOwnResults(raw, v.AuthservID)
	field := "Authentication-Results: " + v.Field() + "\r\n"
	out := make([]byte, 0, len(field)+len(kept))
	return append(append(out, field...), kept...)
}

// WithoutOwnResults returns raw without the Authentication-Results fields
// of its header whose authserv-id is authservID (compared without case).
// It returns raw itself when there are none.
func WithoutOwnResults(raw []byte, authservID string) []byte {
	end := headerEnd(raw)
	var out []byte
	changed := false
	drop := false // inside a field being removed, with its folded lines
	last := 0     // raw[:last] is decided
	for pos := 0; pos < end; {
		next := bytes.IndexByte(raw[pos:end], '\n')
		if next < 0 {
			next = end
		} else {
			next += pos + 1
		}
		line := raw[pos:next]
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			// A continuation belongs to the field before it.
		} else {
			own := ownResults(line, authservID)
			if own && !drop {
				out = append(out, raw[last:pos]...)
				changed = true
			}
			if !own && drop {
				last = pos
			}
			drop = own
		}
		pos = next
	}
	if !changed {
		return raw
	}
	if drop {
		last = end
	}
	return append(out, raw[last:]...)
}

// ownResults reports whether a header line starts an
// Authentication-Results field for authservID.
func ownResults(line []byte, authservID string) bool {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || !strings.EqualFold(strings.TrimSpace(string(name)), "authentication-results") {
		return false
	}
	// RFC 8601 2.2: the authserv-id comes first, after optional CFWS.
	id := strings.TrimSpace(stripComments(string(value)))
	if i := strings.IndexAny(id, "; \t\r\n"); i >= 0 {
		id = id[:i]
	}
	return strings.EqualFold(strings.Trim(id, `"`), authservID)
}

// headerEnd is the offset of the line that ends the header (the empty
// line), or len(raw) when there is none.
func headerEnd(raw []byte) int {
	for pos := 0; pos < len(raw); {
		next := bytes.IndexByte(raw[pos:], '\n')
		line := raw[pos:]
		if next >= 0 {
			line = raw[pos : pos+next+1]
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return pos
		}
		if next < 0 {
			return len(raw)
		}
		pos += next + 1
	}
	return len(raw)
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
		case r == '\\':
			escaped = true
		case quoted:
			quoted = r != '"'
		case r == '(':
			depth++
			continue
		case r == ')' && depth > 0:
			depth--
			continue
		case depth == 0 && r == '"':
			quoted = true
		}
		if depth == 0 {
			b.WriteRune(r)
		}
	}
	return b.String()
}

package mailparse

import (
	"sort"
	"strconv"
	"strings"
)

// parseParams reads a Content-Type or Content-Disposition value: a value
// and parameters (RFC 2045 5.1, RFC 2183 2), leniently: unquoted values
// with spaces, missing semicolons, stray quotes and duplicate names are
// read as mailers meant them. RFC 2231 continuations (name*0, name*1) and
// charset-tagged values (name*=charset'lang'%xx) are joined and decoded;
// RFC 2047 encoded words in quoted values, which RFC 2047 5 forbids but
// many mailers write, are decoded as well.
func parseParams(v string, m *Message) (string, map[string]string) {
	v = strings.TrimSpace(v)
	if !validUTF8(v) {
		v = toUTF8([]byte(v), "")
	}
	value := v
	rest := ""
	if i := strings.IndexByte(v, ';'); i >= 0 {
		value, rest = v[:i], v[i+1:]
	}
	value = strings.ToLower(strings.TrimSpace(value))
	// "text/plain charset=us-ascii" without the semicolon.
	if i := strings.IndexAny(value, " \t"); i >= 0 && strings.Contains(value[i:], "=") {
		rest = value[i:] + ";" + rest
		value = value[:i]
	}
	value = strings.Trim(value, `"'`)

	type piece struct {
		idx   int
		ext   bool
		value string
	}
	plain := map[string]string{}
	pieces := map[string][]piece{}
	s := rest
	for len(s) > 0 {
		s = strings.TrimLeft(s, " \t;")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		semi := strings.IndexByte(s, ';')
		if eq < 0 || (semi >= 0 && semi < eq) {
			// A parameter without a value: skip it.
			if semi < 0 {
				break
			}
			s = s[semi+1:]
			continue
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if s[i] == '"' {
					break
				}
				b.WriteByte(s[i])
			}
			val = b.String()
			if i >= len(s) {
				s = ""
			} else {
				s = s[i+1:]
			}
			// Anything up to the next ';' after a closing quote is junk.
			if j := strings.IndexByte(s, ';'); j >= 0 {
				s = s[j:]
			} else {
				s = ""
			}
		} else {
			end := strings.IndexByte(s, ';')
			if end < 0 {
				end = len(s)
			}
			// A token ends at white space followed by another key=.
			tok := s[:end]
			if j := nextKeyStart(tok); j > 0 {
				end = j
				tok = s[:end]
			}
			val = strings.Trim(strings.TrimSpace(tok), `"'`)
			s = s[end:]
		}
		if key == "" {
			continue
		}
		// RFC 2231 3 and 4: name*N, name*N*, name*.
		if star := strings.IndexByte(key, '*'); star >= 0 {
			base, suffix := key[:star], key[star+1:]
			p := piece{value: val}
			switch {
			case suffix == "":
				p.ext = true
			default:
				p.ext = strings.HasSuffix(suffix, "*")
				n, err := strconv.Atoi(strings.TrimSuffix(suffix, "*"))
				if err != nil {
					continue
				}
				p.idx = n
			}
			pieces[base] = append(pieces[base], p)
			continue
		}
		if _, dup := plain[key]; !dup {
			plain[key] = val
		}
	}
	params := make(map[string]string, len(plain)+len(pieces))
	for k, val := range plain {
		if strings.Contains(val, "=?") {
			val = decodeWords(val, m)
		}
		params[k] = cleanControl(val)
	}
	for base, ps := range pieces {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].idx < ps[j].idx })
		cs := ""
		var raw []byte
		for i, p := range ps {
			val := p.value
			if p.ext {
				if i == 0 {
					// charset'language'value
					if a := strings.IndexByte(val, '\''); a >= 0 {
						if b := strings.IndexByte(val[a+1:], '\''); b >= 0 {
							cs = val[:a]
							val = val[a+1+b+1:]
						}
					}
				}
				raw = append(raw, percentDecode(val)...)
			} else {
				raw = append(raw, val...)
			}
		}
		val := charsetText(raw, cs, m)
		if strings.Contains(val, "=?") {
			val = decodeWords(val, m)
		}
		// RFC 2231 wins over a plain parameter of the same name.
		params[base] = cleanControl(val)
	}
	return value, params
}

// nextKeyStart finds " key=" inside an unquoted token, where a semicolon
// between parameters was forgotten.
func nextKeyStart(tok string) int {
	for i := 1; i < len(tok); i++ {
		if tok[i] != ' ' && tok[i] != '\t' {
			continue
		}
		rest := strings.TrimLeft(tok[i:], " \t")
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return -1
		}
		key := rest[:eq]
		if !strings.ContainsAny(key, " \t\"") {
			return i
		}
	}
	return -1
}

func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

func validUTF8(s string) bool {
	return strings.ToValidUTF8(s, "") == s
}

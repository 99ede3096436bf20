package mailparse

import (
	"bytes"
	"encoding/base64"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// field is one header field, unfolded, its value still raw (not decoded).
type field struct {
	Name  string
	Value string
}

// header is the fields of a message or part, in order.
type header []field

func (h header) get(name string) string {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

func (h header) has(name string) bool {
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

func (h header) values(name string) []string {
	var vs []string
	for _, f := range h {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// splitHeader separates the header section from the body at the first
// empty line (RFC 5322 2.1). The input has LF line endings.
func splitHeader(b []byte) (head, body []byte) {
	if len(b) > 0 && b[0] == '\n' {
		return nil, b[1:]
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		return b[:i+1], b[i+2:]
	}
	return b, nil
}

// isFieldName reports whether s is an RFC 5322 2.2 field name: printable
// US-ASCII except colon. A space before the colon is tolerated (obs-
// syntax, RFC 5322 4.5).
func fieldNameEnd(line []byte) int {
	for i, c := range line {
		if c == ':' {
			if i == 0 {
				return -1
			}
			return i
		}
		if c <= ' ' || c > '~' {
			// "Subject : x" is obsolete syntax but seen.
			if c == ' ' || c == '\t' {
				rest := bytes.TrimLeft(line[i:], " \t")
				if len(rest) > 0 && rest[0] == ':' && i > 0 {
					return i + (len(line[i:]) - len(rest))
				}
			}
			return -1
		}
	}
	return -1
}

// parseHeader reads header fields leniently. Lines that are neither a field
// nor a continuation are joined to the previous field, as most readers do.
func parseHeader(head []byte, m *Message, where string) header {
	var h header
	var cont [][]string // continuation lines of each field, joined at the end
	appendTo := func(line []byte) {
		cont[len(h)-1] = append(cont[len(h)-1], strings.TrimSpace(string(line)))
	}
	lines := bytes.Split(head, []byte("\n"))
	for i, line := range lines {
		if len(line) == 0 {
			continue
		}
		if i == 0 && bytes.HasPrefix(line, []byte("From ")) {
			continue // mbox separator line
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 5322 2.2.3: unfolding removes the CRLF before WSP.
			if len(h) == 0 {
				// A continuation without a field: the first field was
				// indented by mistake.
				trimmed := bytes.TrimLeft(line, " \t")
				if n := fieldNameEnd(trimmed); n > 0 {
					m.problem("%s: header starts with white space; read as a field", where)
					h = append(h, field{Name: strings.TrimSpace(string(trimmed[:n])), Value: strings.TrimSpace(string(trimmed[n+1:]))})
					cont = append(cont, nil)
				}
				continue
			}
			appendTo(line)
			continue
		}
		n := fieldNameEnd(line)
		if n <= 0 {
			if len(h) > 0 {
				m.problem("%s: header line without a field name; joined to %s", where, h[len(h)-1].Name)
				appendTo(line)
			} else {
				m.problem("%s: header line without a field name dropped", where)
			}
			continue
		}
		h = append(h, field{Name: strings.TrimSpace(string(line[:n])), Value: strings.TrimSpace(string(line[n+1:]))})
		cont = append(cont, nil)
	}
	for i, c := range cont {
		if len(c) > 0 {
			h[i].Value = strings.TrimSpace(h[i].Value + " " + strings.Join(c, " "))
		}
	}
	return h
}

// looksLikeHeader reports whether b starts with a header field, so that a
// part or message that starts with its body can be told apart.
func looksLikeHeader(b []byte) bool {
	line := b
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line = b[:i]
	}
	if bytes.HasPrefix(line, []byte("From ")) {
		return true
	}
	line = bytes.TrimLeft(line, " \t")
	n := fieldNameEnd(line)
	return n > 0
}

// headerText decodes a raw header value to UTF-8: 8-bit bytes are read in
// the fallback charset (RFC 6532 allows UTF-8; anything else is a legacy
// mailer), then RFC 2047 encoded words are decoded.
func headerText(v, fallback string, m *Message) string {
	if !utf8.ValidString(v) {
		if m != nil {
			m.problem("8-bit bytes in a header read as %s", fallbackName(fallback))
		}
		v = toUTF8([]byte(v), fallback)
	}
	if strings.Contains(v, "=?") {
		v = decodeWords(v, m)
	}
	return cleanControl(v)
}

func fallbackName(cs string) string {
	if cs == "" {
		return "windows-1252"
	}
	return cs
}

// cleanControl drops control characters other than tab from a header value.
func cleanControl(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// encodedWord matches an RFC 2047 encoded word. The text part is allowed to
// hold spaces and '?' between '=' hex pairs is not checked: real mailers
// break the grammar in both ways. RFC 2231 5 adds an optional *language.
var encodedWord = regexp.MustCompile(`=\?([^?\s]{1,60})\?([bBqQ])\?(.*?)\?=`)

// unterminatedWord matches an encoded word whose "?=" is missing at the end.
var unterminatedWord = regexp.MustCompile(`=\?([^?\s]{1,60})\?([bBqQ])\?([^\s]*)$`)

// decodeWords decodes RFC 2047 encoded words in a header value. Adjacent
// encoded words are joined without the white space between them (RFC 2047
// 6.2), and their bytes are joined before charset decoding, because
// mailers split multi-byte characters across words.
func decodeWords(v string, m *Message) string {
	locs := encodedWord.FindAllStringSubmatchIndex(v, -1)
	if len(locs) == 0 {
		if loc := unterminatedWord.FindStringSubmatchIndex(v); loc != nil {
			if m != nil {
				m.problem("encoded word without its closing ?=")
			}
			locs = [][]int{loc}
		} else {
			return v
		}
	}
	var b strings.Builder
	last := 0
	var pendCharset string
	var pend []byte
	flush := func() {
		if pend != nil {
			b.WriteString(charsetText(pend, pendCharset, m))
			pend = nil
		}
	}
	for _, loc := range locs {
		between := v[last:loc[0]]
		switch {
		case pend == nil:
			b.WriteString(between)
		case strings.TrimSpace(between) == "":
			// RFC 2047 6.2: white space between adjacent encoded words
			// is not displayed.
		default:
			flush()
			b.WriteString(between)
		}
		cs := v[loc[2]:loc[3]]
		if i := strings.IndexByte(cs, '*'); i >= 0 {
			cs = cs[:i] // RFC 2231 5: charset*language
		}
		enc := v[loc[4]:loc[5]]
		text := v[loc[6]:loc[7]]
		var raw []byte
		if enc == "b" || enc == "B" {
			raw = decodeBase64Lenient([]byte(text))
		} else {
			raw = decodeQWord(text)
		}
		if pend != nil && !strings.EqualFold(cs, pendCharset) {
			flush()
		}
		pendCharset = cs
		pend = append(pend, raw...)
		if pend == nil {
			pend = []byte{}
		}
		last = loc[1]
	}
	flush()
	tail := v[last:]
	if loc := unterminatedWord.FindStringSubmatchIndex(tail); loc != nil && last > 0 {
		if m != nil {
			m.problem("encoded word without its closing ?=")
		}
		b.WriteString(decodeWords(tail, m))
		return b.String()
	}
	b.WriteString(tail)
	return b.String()
}

// decodeQWord decodes the RFC 2047 4.2 "Q" encoding.
func decodeQWord(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_':
			out = append(out, ' ')
		case c == '=' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0
}

// decodeBase64Lenient decodes base64 and ignores what does not belong:
// line breaks, stray characters, missing or misplaced padding. A run of
// padding in the middle ends one chunk and starts the next, as when
// mailers concatenate encoded pieces.
func decodeBase64Lenient(b []byte) []byte {
	out, _ := decodeBase64(b)
	return out
}

// decodeBase64 is decodeBase64Lenient, reporting also whether b held only
// base64 characters, padding and white space. It decodes as
// it reads, four characters at a time, so a large attachment costs one
// buffer of its decoded size.
func decodeBase64(b []byte) (out []byte, clean bool) {
	out = make([]byte, 0, len(b)*3/4+3)
	clean = true
	var q [4]byte
	n := 0
	// The end of a chunk: a lone character is dropped, two or three
	// give what they hold (their extra bits are ignored).
	flush := func() {
		switch n {
		case 2:
			out = append(out, q[0]<<2|q[1]>>4)
		case 3:
			out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2)
		}
		n = 0
	}
	for _, c := range b {
		v := base64Digit[c]
		if v < 0 {
			switch c {
			case '=':
				flush()
			case '\n', '\r', ' ', '\t':
			default:
				clean = false
			}
			continue
		}
		if c == '-' || c == '_' {
			clean = false
		}
		q[n] = byte(v)
		if n++; n == 4 {
			out = append(out, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2, q[2]<<6|q[3])
			n = 0
		}
	}
	flush()
	return out, clean
}

// base64Digit is the value of a base64 character (RFC 4648 4), with the
// base64url ones (RFC 4648 5) seen in the wild read the same; -1 for any
// other byte.
var base64Digit = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range len(alphabet) {
		t[alphabet[i]] = int8(i)
	}
	t['-'], t['_'] = 62, 63
	return t
}()

// parseAddressList parses an address-list (RFC 5322 3.4) with encoded-word
// display names (RFC 2047 5), falling back to a lenient reading when the
// strict grammar fails.
func parseAddressList(v, fallback string, m *Message) []Address {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	if !utf8.ValidString(v) {
		v = toUTF8([]byte(v), fallback)
	}
	p := mail.AddressParser{WordDecoder: wordDecoder}
	if list, err := p.ParseList(mergeWords(v)); err == nil {
		out := make([]Address, 0, len(list))
		for _, a := range list {
			name := a.Name
			if strings.Contains(name, "=?") {
				name = decodeWords(name, m)
			}
			if !utf8.ValidString(name) {
				// An encoded word that says UTF-8 and is not (RFC 2047
				// 6.3 leaves it to the reader): byte by byte, as bodies.
				name = mixedUTF8([]byte(name))
			}
			out = append(out, Address{Name: cleanControl(strings.TrimSpace(name)), Address: normAddr(a.Address)})
		}
		return out
	}
	if m != nil {
		m.problem("address list %.60q does not follow RFC 5322; read leniently", v)
	}
	return lenientAddresses(v, m)
}

// lenientAddresses reads an address list that the strict RFC 5322 grammar
// refused, the way mail readers do: items end at commas or semicolons
// outside quotes, comments and angle brackets; quoted strings may hold
// encoded words; a backslash outside quotes escapes the next character;
// comments (RFC 5322 3.2.2) are dropped from addresses and give the name
// when no display name does; a group's name is dropped.
func lenientAddresses(v string, m *Message) []Address {
	var out []Address
	for _, item := range splitAddressItems(v) {
		a := lenientMailbox(item)
		if strings.Contains(a.Name, "=?") {
			a.Name = decodeWords(a.Name, m)
		}
		a.Name = cleanControl(a.Name)
		a.Address = normAddr(a.Address)
		if a.Address == "" && a.Name == "" {
			continue
		}
		out = append(out, a)
	}
	return out
}

// splitAddressItems cuts an address list at the commas and semicolons
// that separate its items.
func splitAddressItems(v string) []string {
	var items []string
	inQuote, comment, angle, start := false, 0, 0, 0
	closed := false // an angle-addr ended this item
	for i := 0; i < len(v); i++ {
		c := v[i]
		if closed && comment == 0 && !inQuote && c != ' ' && c != '\t' && c != '(' && c != ',' && c != ';' {
			// "A <a@b> B <c@d>": a mailbox after a complete one, the
			// comma forgotten.
			items = append(items, v[start:i])
			start = i
			closed = false
		}
		switch {
		case c == '\\':
			i++
		case inQuote:
			if c == '"' {
				inQuote = false
			}
		case c == '(':
			comment++
		case c == ')' && comment > 0:
			comment--
		case comment > 0:
		case c == '"':
			inQuote = true
		case c == '<':
			angle++
		case c == '>' && angle > 0:
			angle--
			closed = angle == 0
		case (c == ',' || c == ';') && angle == 0:
			items = append(items, v[start:i])
			start = i + 1
			closed = false
		}
	}
	return append(items, v[start:])
}

// lenientMailbox reads one item of an address list: "phrase <addr>" or a
// bare addr-spec, with comments and quoted strings anywhere.
func lenientMailbox(item string) Address {
	var (
		phrase   []string // display-name words, in order
		comments []string
		addr     strings.Builder // inside angle brackets
		word     strings.Builder
		inAngle  bool
		sawAngle bool
	)
	endWord := func() {
		if word.Len() > 0 {
			phrase = append(phrase, word.String())
			word.Reset()
		}
	}
	for i := 0; i < len(item); i++ {
		c := item[i]
		switch {
		case c == '"':
			j := i + 1
			var q strings.Builder
			for ; j < len(item) && item[j] != '"'; j++ {
				if item[j] == '\\' && j+1 < len(item) {
					j++
				}
				q.WriteByte(item[j])
			}
			if inAngle {
				addr.WriteString(`"` + q.String() + `"`) // a quoted local part
			} else {
				word.WriteString(q.String())
			}
			i = j
		case c == '(':
			depth, j := 1, i+1
			var cm strings.Builder
			for ; j < len(item) && depth > 0; j++ {
				switch item[j] {
				case '\\':
					if j+1 < len(item) {
						j++
						cm.WriteByte(item[j])
					}
					continue
				case '(':
					depth++
				case ')':
					depth--
					if depth == 0 {
						continue
					}
				}
				cm.WriteByte(item[j])
			}
			if t := strings.TrimSpace(cm.String()); t != "" {
				comments = append(comments, t)
			}
			i = j - 1
		case c == '\\' && i+1 < len(item):
			i++
			if inAngle {
				addr.WriteByte(item[i])
			} else {
				word.WriteByte(item[i])
			}
		case c == '<':
			endWord()
			inAngle, sawAngle = true, true
		case c == '>' && inAngle:
			inAngle = false
		case inAngle:
			if c != ' ' && c != '\t' {
				addr.WriteByte(c)
			}
		case c == ' ' || c == '\t':
			endWord()
		case c == ':' && !sawAngle && !strings.Contains(word.String(), "@"):
			// "Group name: a@b" (RFC 5322 3.4): the group's name is not
			// the mailbox's.
			word.Reset()
			phrase = phrase[:0]
			comments = comments[:0]
		default:
			word.WriteByte(c)
		}
	}
	endWord()
	var a Address
	if sawAngle {
		a.Address = addr.String()
		if i := strings.LastIndexByte(a.Address, ':'); i >= 0 {
			a.Address = a.Address[i+1:] // obsolete source route "@a,@b:user@c"
		}
		a.Name = strings.Join(phrase, " ")
	} else {
		var name []string
		for _, w := range phrase {
			if a.Address == "" && strings.Contains(w, "@") {
				a.Address = strings.Trim(w, "[]'")
				continue
			}
			name = append(name, w)
		}
		a.Name = strings.Join(name, " ")
		if a.Address == "" && len(phrase) > 0 && !strings.Contains(a.Name, "=?") {
			a.Name = strings.Join(phrase, " ")
		}
	}
	if strings.TrimSpace(a.Name) == "" && len(comments) > 0 {
		a.Name = comments[0]
	}
	a.Name = strings.TrimSpace(a.Name)
	return a
}

// normAddr lower-cases the domain of an addr-spec.
func normAddr(a string) string {
	a = strings.TrimSpace(a)
	a = strings.TrimPrefix(a, "mailto:")
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[:i+1] + strings.ToLower(a[i+1:])
	}
	return a
}

var msgIDRe = regexp.MustCompile(`<([^<>\s]+)>`)

// parseMsgIDs returns the msg-ids of an In-Reply-To or References field
// (RFC 5322 3.6.4) without angle brackets. Ids without brackets are taken
// as white-space separated words.
func parseMsgIDs(v string) []string {
	var ids []string
	for _, mm := range msgIDRe.FindAllStringSubmatch(v, -1) {
		ids = append(ids, mm[1])
	}
	if len(ids) == 0 {
		for _, w := range strings.Fields(v) {
			w = strings.Trim(w, "<>,")
			if strings.Contains(w, "@") {
				ids = append(ids, w)
			}
		}
	}
	return ids
}

func parseMsgID(v string) string {
	ids := parseMsgIDs(v)
	if len(ids) > 0 {
		return ids[0]
	}
	return strings.Trim(strings.TrimSpace(v), "<>")
}

var (
	dateComment = regexp.MustCompile(`\([^)]*\)`)
	dateSpaces  = regexp.MustCompile(`\s+`)
)

var dateLayouts = []string{
	"2 Jan 2006 15:04:05 -0700",
	"2 Jan 2006 15:04 -0700",
	"2 Jan 2006 15:04:05 MST",
	"2 Jan 2006 15:04:05",
	"2 Jan 06 15:04:05 -0700",
	"2 Jan 06 15:04:05 MST",
	"Jan 2 2006 15:04:05 -0700",
	"Jan 2 15:04:05 2006",
	"Jan 2 15:04:05 MST 2006",
	"2 January 2006 15:04:05 -0700",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2 Jan 2006 15:04:05 -07",
	"2 Jan 2006 15:04:05 -0700 MST",
	"2 Jan 2006 15.04.05 -0700",
	"2-Jan-2006 15:04:05 -0700",
	"2 Jan 2006",
}

// parseDate reads an RFC 5322 3.3 date-time, and the obsolete and broken
// forms that mailers write, leniently.
func parseDate(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, false
	}
	// The form most mailers write first: net/mail tries its layouts one
	// after another, and each miss allocates an error.
	if t, err := time.Parse(time.RFC1123Z, v); err == nil {
		return t, true
	}
	if t, err := mail.ParseDate(v); err == nil {
		return t, true
	}
	s := dateComment.ReplaceAllString(v, " ")
	s = strings.ReplaceAll(s, ",", " ")
	s = dateSpaces.ReplaceAllString(strings.TrimSpace(s), " ")
	// Drop a leading day name.
	if i := strings.IndexByte(s, ' '); i > 0 && len(s) > 0 && (s[0] < '0' || s[0] > '9') {
		day := strings.ToLower(strings.TrimSuffix(s[:i], "."))
		if len(day) >= 3 && strings.Contains("monday tuesday wednesday thursday friday saturday sunday", day) {
			s = s[i+1:]
		}
	}
	// "+0000 GMT" after a numeric zone, or "GMT+0100".
	s = strings.Replace(s, "GMT+", "+", 1)
	s = strings.Replace(s, "UTC+", "+", 1)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	// Keep only the first five fields: "2 Jan 2006 15:04:05 -0700 junk".
	if f := strings.Fields(s); len(f) > 5 {
		s = strings.Join(f[:5], " ")
		for _, l := range dateLayouts {
			if t, err := time.Parse(l, s); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// adjacentWords matches two or more encoded words separated by white space only.
var adjacentWords = regexp.MustCompile(`=\?[^?\s]{1,60}\?[bBqQ]\?[^?\s]*\?=(?:[ \t]+=\?[^?\s]{1,60}\?[bBqQ]\?[^?\s]*\?=)+`)

// mergeWords joins each run of adjacent encoded words of one charset into
// a single B word, so that a character split across words (RFC 2047 5
// forbids it, mailers do it) decodes whole where net/mail decodes word by word.
func mergeWords(v string) string {
	return adjacentWords.ReplaceAllStringFunc(v, func(run string) string {
		locs := encodedWord.FindAllStringSubmatch(run, -1)
		cs := strings.ToLower(locs[0][1])
		var raw []byte
		for _, w := range locs {
			if strings.ToLower(w[1]) != cs {
				return run
			}
			if w[2] == "b" || w[2] == "B" {
				raw = append(raw, decodeBase64Lenient([]byte(w[3]))...)
			} else {
				raw = append(raw, decodeQWord(w[3])...)
			}
		}
		return "=?" + cs + "?B?" + base64.StdEncoding.EncodeToString(raw) + "?="
	})
}

package mailparse

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/charmap"
)

// wordDecoder decodes RFC 2047 words inside address display names with
// every charset go-message knows; an unknown charset reads as Latin-1.
var wordDecoder = &mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return strings.NewReader(charsetText(b, cs, nil)), nil
}}

// normCharset cleans a charset label as mailers write it.
func normCharset(cs string) string {
	cs = strings.ToLower(strings.Trim(strings.TrimSpace(cs), `"'`))
	switch cs {
	case "", "us-ascii", "ascii", "us_ascii", "ansi_x3.4-1968", "iso646-us", "7bit", "8bit", "none", "unknown", "default", "x-unknown", "unknown-8bit", "x-user-defined":
		return ""
	case "utf8", "utf-8", "x-utf8", "unicode-1-1-utf-8", "utf_8", "utf-8-sig":
		return "utf-8"
	case "latin1", "latin-1", "iso8859-1", "iso_8859-1", "iso-8859-1", "8859-1", "iso8859_1", "iso-latin-1":
		return "windows-1252" // WHATWG: the labels mean windows-1252
	case "ks_c_5601-1987", "ks_c_5601", "ksc5601", "ks_c_5601-1989":
		return "euc-kr"
	case "gb2312", "gb_2312-80", "x-gbk", "cp936":
		return "gbk"
	case "cp1252", "x-cp1252", "win-1252":
		return "windows-1252"
	case "cp1251", "x-cp1251", "win-1251":
		return "windows-1251"
	case "cp1250", "win-1250":
		return "windows-1250"
	case "shift-jis", "sjis", "x-sjis", "ms_kanji", "cp932", "windows-31j":
		return "shift_jis"
	case "x-mac-roman", "mac", "macintosh":
		return "macintosh"
	case "utf7", "utf-7", "unicode-1-1-utf-7", "csunicode11utf7", "x-unicode-2-0-utf-7":
		return "utf-7"
	}
	return cs
}

// charsetText decodes b from charset cs to valid UTF-8. Without a declared
// charset (RFC 2045 5.2 defaults to US-ASCII) or with US-ASCII declared,
// 8-bit bytes are read as UTF-8 when they are valid UTF-8, else as
// windows-1252. An unknown charset falls back the same way, noted in
// Problems.
func charsetText(b []byte, cs string, m *Message) string {
	if textAsIs(b, cs) {
		return string(b)
	}
	cs = normCharset(cs)
	if cs == "" || cs == "utf-8" {
		// Invalid UTF-8.
		if cs == "utf-8" && m != nil {
			m.problem("invalid UTF-8 read byte by byte as windows-1252")
		}
		return mixedUTF8(b)
	}
	if cs == "utf-7" {
		return decodeUTF7(b)
	}
	if (cs == "windows-1252" || cs == "iso-8859-15") && !isASCII(b) && utf8.Valid(b) {
		// Mailers label UTF-8 as Latin-1 often enough; Latin-1 text that
		// happens to be valid UTF-8 ("Ã©" pairs throughout) hardly exists.
		if m != nil {
			m.problem("%s declared but the text is UTF-8: read as UTF-8", cs)
		}
		return string(b)
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err == nil {
		out, err := io.ReadAll(r)
		if err == nil {
			return strings.ToValidUTF8(string(out), "\uFFFD")
		}
	}
	if m != nil {
		m.problem("unknown charset %q: read as UTF-8 or windows-1252", cs)
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return mixedUTF8(b)
}

// textAsIs reports whether text of charset cs reads as its own bytes: UTF-8
// (or no charset) that is valid, or ASCII in a charset that extends it.
func textAsIs(b []byte, cs string) bool {
	cs = normCharset(cs)
	if cs == "" || cs == "utf-8" {
		return utf8.Valid(b)
	}
	return isASCII(b) && !strings.Contains(cs, "utf-16") && !strings.Contains(cs, "utf-32") &&
		!strings.Contains(cs, "2022") && !strings.Contains(cs, "utf-7") && cs != "hz-gb-2312"
}

// toUTF8 is charsetText without a message to note problems in.
func toUTF8(b []byte, cs string) string {
	return charsetText(b, cs, nil)
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// mixedUTF8 keeps the valid UTF-8 sequences of b and reads every other
// byte as windows-1252, so a mail mixing both loses nothing readable.
func mixedUTF8(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/4)
	dec := charmap.Windows1252
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			sb.WriteRune(dec.DecodeByte(b[0]))
			b = b[1:]
			continue
		}
		sb.Write(b[:n])
		b = b[n:]
	}
	return sb.String()
}

// normalizeNewlines turns CRLF and lone CR line endings into LF.
func normalizeNewlines(s string) string {
	if !strings.Contains(s, "\r") {
		return s
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// normalizeRaw gives a raw message LF line endings. Mail stored with CR
// alone (old Macintosh files) is recognised by its first line break.
func normalizeRaw(raw []byte, m *Message) []byte {
	if bytes.IndexByte(raw, '\r') < 0 {
		return raw
	}
	crOnly := false
	if i := bytes.IndexAny(raw, "\r\n"); i >= 0 && raw[i] == '\r' && (i+1 >= len(raw) || raw[i+1] != '\n') {
		crOnly = true
	}
	out := bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	if crOnly {
		m.problem("lines end with CR alone; read as line breaks")
		out = bytes.ReplaceAll(out, []byte("\r"), []byte("\n"))
	}
	return out
}

// decodeUTF7 decodes UTF-7 (RFC 2152), which golang.org/x/text does not
// know: "+" starts a run of modified base64 holding UTF-16 code units, the
// first character outside the base64 alphabet ends it, and a "-" ending it
// is dropped; "+-" is a plus sign. Broken runs keep their bytes.
func decodeUTF7(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '+' {
			if c < 0x80 {
				sb.WriteByte(c)
			} else {
				sb.WriteRune(utf8.RuneError)
			}
			continue
		}
		j := i + 1
		if j < len(b) && b[j] == '-' {
			sb.WriteByte('+')
			i = j
			continue
		}
		var units []uint16
		var acc uint32
		bits := 0
		for ; j < len(b); j++ {
			v := base64Value(b[j])
			if v < 0 {
				break
			}
			acc = acc<<6 | uint32(v)
			bits += 6
			if bits >= 16 {
				bits -= 16
				units = append(units, uint16(acc>>uint(bits)))
				acc &= 1<<uint(bits) - 1
			}
		}
		if len(units) == 0 {
			sb.WriteByte('+') // not a shifted run: keep the plus sign
			continue
		}
		sb.WriteString(string(utf16.Decode(units)))
		if j < len(b) && b[j] == '-' {
			j++
		}
		i = j - 1
	}
	return sb.String()
}

func base64Value(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}

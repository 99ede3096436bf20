package mailparse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MS-OXRTFCP 2.1.3.1.1: the dictionary of compressed RTF starts with this
// text, and writing continues after it.
const rtfPrebuilt = "{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript " +
	"\\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0\r\n\\par " +
	"\\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx"

// MS-OXRTFCP 2.1.3.1: COMPTYPE of compressed and of uncompressed RTF.
const (
	rtfCompressed   = 0x75465A4C // "LZFu"
	rtfUncompressed = 0x414C454D // "MELA"
)

// maxRTFBytes bounds the RTF the compressed bodies of one mail may expand
// to.
const maxRTFBytes = 16 << 20

var errRTF = errors.New("not compressed RTF")

// decompressRTF undoes the compression of PidTagRtfCompressed (MS-OXRTFCP
// 2.2): a header of sizes, type and CRC, then runs of a control byte whose
// bits, least significant first, say whether each token is a literal byte
// or a 12-bit offset and 4-bit length into a 4096-byte dictionary. A
// stream cut short yields what was decompressed; at most limit bytes are.
func decompressRTF(b []byte, limit int) ([]byte, error) {
	if len(b) < 16 {
		return nil, errRTF
	}
	compSize := binary.LittleEndian.Uint32(b)
	rawSize := binary.LittleEndian.Uint32(b[4:])
	compType := binary.LittleEndian.Uint32(b[8:])
	data := b[16:]
	if uint64(compSize) >= 12 && uint64(compSize)-12 < uint64(len(data)) {
		data = data[:compSize-12]
	}
	switch compType {
	case rtfUncompressed:
		if uint64(rawSize) < uint64(len(data)) {
			data = data[:rawSize]
		}
		if len(data) > limit {
			data = data[:max(limit, 0)]
		}
		return bytes.Clone(data), nil
	case rtfCompressed:
	default:
		return nil, errRTF
	}
	if uint64(rawSize) < uint64(limit) {
		limit = int(rawSize)
	}
	var dict [4096]byte
	copy(dict[:], rtfPrebuilt)
	w := len(rtfPrebuilt)
	out := make([]byte, 0, min(limit, 1<<16))
	put := func(c byte) {
		out = append(out, c)
		dict[w] = c
		w = (w + 1) & 4095
	}
	i := 0
	for i < len(data) && len(out) < limit {
		control := data[i]
		i++
		for bit := 0; bit < 8 && len(out) < limit; bit++ {
			if control&(1<<bit) == 0 {
				if i >= len(data) {
					return out, nil
				}
				put(data[i])
				i++
				continue
			}
			if i+1 >= len(data) {
				return out, nil
			}
			ref := int(data[i])<<8 | int(data[i+1])
			i += 2
			off, n := ref>>4, ref&0xF+2
			if off == w {
				return out, nil // MS-OXRTFCP 2.2.1.2: the end of the stream
			}
			for k := 0; k < n && len(out) < limit; k++ {
				put(dict[(off+k)&4095])
			}
		}
	}
	return out, nil
}

// rtfText makes RTF readable (the Rich Text Format 1.9.1 specification):
// text and paragraph breaks, with font tables, pictures, fields' code and
// the other destinations left out. RTF that encapsulates HTML (MS-OXRTFEX
// \fromhtml1) yields that HTML instead, with isHTML set.
func rtfText(rtf []byte) (text string, isHTML bool) {
	r := rtfReader{src: rtf, codepage: 1252, st: rtfState{uc: 1}}
	r.run()
	r.flush()
	return r.out.String(), r.html
}

// rtfState is what an RTF group ({...}) keeps: a nested group starts with
// a copy of its parent's and the parent's comes back at its end.
type rtfState struct {
	skip    bool // in a destination whose text is not shown
	htmlTag bool // in \*\htmltag: encapsulated HTML source
	htmlRTF bool // between \htmlrtf and \htmlrtf0: RTF-only text
	uc      int  // bytes to skip after \uN
}

type rtfReader struct {
	src      []byte
	pos      int
	codepage uint32
	html     bool // \fromhtml1
	st       rtfState
	stack    []rtfState
	pending  []byte // text bytes in the code page, not yet decoded
	out      strings.Builder
	skipNext int  // characters still to skip after \uN
	starred  bool // the group began with \*: an ignorable destination
}

// rtfDestinations are destinations whose text is not the body's.
var rtfDestinations = map[string]bool{
	"fonttbl": true, "colortbl": true, "stylesheet": true, "info": true, "pict": true, "object": true,
	"header": true, "headerl": true, "headerr": true, "headerf": true, "footer": true, "footerl": true,
	"footerr": true, "footerf": true, "footnote": true, "listtable": true, "listoverridetable": true,
	"rsidtbl": true, "generator": true, "xmlnstbl": true, "themedata": true, "colorschememapping": true,
	"datastore": true, "latentstyles": true, "pgdsctbl": true, "filetbl": true, "revtbl": true,
	"fldinst": true, "bkmkstart": true, "bkmkend": true, "mmathPr": true, "pntext": true,
	"pntxta": true, "pntxtb": true, "annotation": true, "atnid": true, "atnauthor": true, "template": true,
	"objdata": true, "shppict": true, "nonshppict": true, "mhtmltag": true, "author": true, "operator": true,
	"title": true, "subject": true, "keywords": true, "comment": true, "doccomm": true, "company": true,
}

// maxRTFGroups bounds group nesting: deeper groups are read as their parent.
const maxRTFGroups = 256

func (r *rtfReader) run() {
	for r.pos < len(r.src) {
		c := r.src[r.pos]
		switch c {
		case '{':
			r.pos++
			if len(r.stack) < maxRTFGroups {
				r.stack = append(r.stack, r.st)
			}
			r.starred = false
		case '}':
			r.pos++
			r.flush() // decoded in the state it was written in
			if n := len(r.stack); n > 0 {
				r.st = r.stack[n-1]
				r.stack = r.stack[:n-1]
			}
			r.starred = false
		case '\\':
			r.control()
		case '\r', '\n':
			r.pos++
		default:
			r.pos++
			r.char(c)
		}
	}
}

// visible reports whether text in the current state is output.
func (r *rtfReader) visible() bool {
	if r.st.skip {
		return false
	}
	if r.html {
		return r.st.htmlTag || !r.st.htmlRTF
	}
	return true
}

// char handles one text byte of the code page.
func (r *rtfReader) char(c byte) {
	if r.skipNext > 0 {
		r.skipNext--
		return
	}
	if r.visible() {
		r.pending = append(r.pending, c)
	}
}

// emit writes decoded text.
func (r *rtfReader) emit(s string) {
	if r.visible() {
		r.flush()
		r.out.WriteString(s)
	}
}

func (r *rtfReader) flush() {
	if len(r.pending) > 0 {
		r.out.WriteString(codepageText(r.pending, r.codepage))
		r.pending = r.pending[:0]
	}
}

// control reads a control word or symbol at r.pos, which is a backslash.
func (r *rtfReader) control() {
	r.pos++
	if r.pos >= len(r.src) {
		return
	}
	c := r.src[r.pos]
	if !isASCIILetter(c) {
		r.pos++
		switch c {
		case '\'':
			// \'hh: a byte of the code page.
			if r.pos+2 <= len(r.src) && isHex(r.src[r.pos]) && isHex(r.src[r.pos+1]) {
				b := unhex(r.src[r.pos])<<4 | unhex(r.src[r.pos+1])
				r.pos += 2
				r.char(b)
			}
		case '*':
			r.starred = true
		case '~':
			r.symbol("\u00a0")
		case '_':
			r.symbol("\u2011")
		case '-':
			r.symbol("")
		case '\\', '{', '}':
			r.symbol(string(c))
		case '\r', '\n':
			r.symbol("\n") // a backslash before a line break is \par
		default:
			r.symbol("")
		}
		return
	}
	start := r.pos
	for r.pos < len(r.src) && isASCIILetter(r.src[r.pos]) && r.pos-start < 32 {
		r.pos++
	}
	word := string(r.src[start:r.pos])
	param, hasParam := 0, false
	pstart := r.pos
	if r.pos < len(r.src) && r.src[r.pos] == '-' {
		r.pos++
	}
	for r.pos < len(r.src) && r.src[r.pos] >= '0' && r.src[r.pos] <= '9' && r.pos-pstart < 11 {
		r.pos++
	}
	if r.pos > pstart {
		if n, err := strconv.Atoi(string(r.src[pstart:r.pos])); err == nil {
			param, hasParam = n, true
		}
	}
	if r.pos < len(r.src) && r.src[r.pos] == ' ' {
		r.pos++ // the delimiter belongs to the control word
	}
	r.word(word, param, hasParam)
}

// symbol is a control symbol that stands for text: skipped after \uN like
// one character.
func (r *rtfReader) symbol(s string) {
	if r.skipNext > 0 {
		r.skipNext--
		return
	}
	r.emit(s)
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func (r *rtfReader) word(w string, param int, hasParam bool) {
	starred := r.starred
	r.starred = false
	switch w {
	case "fromhtml":
		r.html = true
		return
	case "ansicpg":
		if hasParam && param > 0 {
			r.flush()
			r.codepage = uint32(param)
		}
		return
	case "uc":
		if hasParam && param >= 0 && param < 10 {
			r.st.uc = param
		}
		return
	case "u":
		if !hasParam {
			return
		}
		if param < 0 {
			param += 65536
		}
		s := string(rune(param))
		if !utf8.ValidString(s) || param == 0 {
			s = "\uFFFD"
		}
		r.emit(s)
		r.skipNext = r.st.uc // the stand-ins for readers without Unicode
		return
	case "htmlrtf":
		r.flush()
		r.st.htmlRTF = !hasParam || param != 0
		return
	case "htmltag":
		if starred {
			r.flush()
			r.st.htmlTag = true
			r.st.htmlRTF = false
		}
		return
	}
	if rtfDestinations[w] || (starred && w != "htmltag") {
		r.flush()
		r.st.skip = true
		return
	}
	if r.html && !r.st.htmlTag && r.st.htmlRTF {
		return
	}
	switch w {
	case "par", "line", "sect", "page", "row":
		r.emit("\n")
	case "tab":
		r.emit("\t")
	case "cell":
		r.emit(" ")
	case "emdash":
		r.emit("—")
	case "endash":
		r.emit("–")
	case "bullet":
		r.emit("•")
	case "lquote":
		r.emit("‘")
	case "rquote":
		r.emit("’")
	case "ldblquote":
		r.emit("“")
	case "rdblquote":
		r.emit("”")
	case "emspace", "enspace", "qmspace":
		r.emit(" ")
	}
}

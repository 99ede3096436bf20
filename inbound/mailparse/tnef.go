package mailparse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf16"
)

// Outlook sends a mail's rich text and files as one TNEF stream, the
// winmail.dat part (MS-OXTNEF). tnefMessage is what ticketd reads of it:
// the body in its three forms, and the files attached.
type tnefMessage struct {
	Body        string // plain text: attBody or PidTagBody
	HTML        string // PidTagBodyHtml
	RTF         []byte // PidTagRtfCompressed as sent (MS-OXRTFCP)
	Attachments []tnefAttachment
	Problems    []string
}

// tnefAttachment is one attachment of a TNEF stream.
type tnefAttachment struct {
	Title     string // attAttachTitle: often an 8.3 name
	LongName  string // PidTagAttachLongFilename
	ShortName string // PidTagAttachFilename
	Display   string // PidTagDisplayName
	MIMEType  string // PidTagAttachMimeTag
	ContentID string // PidTagAttachContentId
	Method    uint32 // PidTagAttachMethod
	Hidden    bool   // PidTagAttachmentHidden: shown in the body, not as a file
	Data      []byte // attAttachData, or PidTagAttachDataBinary/Object
	Embedded  bool   // Data is an attached message, itself a TNEF stream
}

// filename is the best name the attachment carries.
func (a tnefAttachment) filename() string {
	for _, n := range []string{a.LongName, a.ShortName, a.Title, a.Display} {
		if n = strings.TrimSpace(n); n != "" {
			return n
		}
	}
	return ""
}

// MS-OXTNEF 2.1.3.1: the stream starts with TNEF_SIGNATURE, then the
// 16-bit legacy key.
const tnefSignature = 0x223E9F78

// Attribute ids (MS-OXTNEF 2.1.3.3): the attribute's type in the high
// word, its id in the low word, as they stand in the stream.
const (
	attBody                   = 0x0002800C
	attAttachData             = 0x0006800F
	attAttachTitle            = 0x00018010
	attAttachRenddata         = 0x00069002
	attMsgProps               = 0x00069003
	attAttachment             = 0x00069005
	attOemCodepage            = 0x00069007
	attAttachTransportFilenam = 0x00069001
)

// Attribute levels (MS-OXTNEF 2.1.3.2).
const (
	levelMessage    = 0x01
	levelAttachment = 0x02
)

// MAPI property ids and types that ticketd reads (MS-OXPROPS).
const (
	pidBody            = 0x1000
	pidRtfCompressed   = 0x1009
	pidBodyHTML        = 0x1013
	pidDisplayName     = 0x3001
	pidAttachData      = 0x3701
	pidAttachFilename  = 0x3704
	pidAttachMethod    = 0x3705
	pidAttachLongName  = 0x3707
	pidAttachMIMETag   = 0x370E
	pidAttachContentID = 0x3712
	pidAttachHidden    = 0x7FFE

	attachEmbeddedMsg = 5 // PidTagAttachMethod: an attached message

	ptString8 = 0x001E
	ptUnicode = 0x001F
	ptBinary  = 0x0102
	ptObject  = 0x000D
	ptMulti   = 0x1000
)

// maxTNEFAttachments bounds the attachments one stream may declare.
const maxTNEFAttachments = 1000

var errNotTNEF = errors.New("not a TNEF stream")

// readTNEF reads a TNEF stream. It never panics; a stream cut short or
// malformed keeps what was read before the fault, with a problem noted.
// Only a stream without the TNEF signature is an error.
func readTNEF(b []byte) (*tnefMessage, error) {
	if len(b) < 6 || binary.LittleEndian.Uint32(b) != tnefSignature {
		return nil, errNotTNEF
	}
	t := &tnefMessage{}
	codepage := uint32(1252)
	var cur *tnefAttachment
	attachment := func() *tnefAttachment {
		if cur == nil {
			if len(t.Attachments) >= maxTNEFAttachments {
				return &tnefAttachment{} // read, not kept
			}
			t.Attachments = append(t.Attachments, tnefAttachment{})
			cur = &t.Attachments[len(t.Attachments)-1]
		}
		return cur
	}
	pos := 6
	for pos < len(b) {
		// MS-OXTNEF 2.1.3.1: attribute level, id, length, data, and a
		// 16-bit checksum of the data.
		if len(b)-pos < 9 {
			t.problem("TNEF: %d bytes left after the last attribute", len(b)-pos)
			break
		}
		level := b[pos]
		id := binary.LittleEndian.Uint32(b[pos+1:])
		n := binary.LittleEndian.Uint32(b[pos+5:])
		pos += 9
		if uint64(n) > uint64(len(b)-pos) {
			t.problem("TNEF: attribute %#08x longer than the stream: cut short", id)
			n = uint32(len(b) - pos)
		}
		data := b[pos : pos+int(n)]
		pos += int(n)
		if len(b)-pos >= 2 {
			if got, want := binary.LittleEndian.Uint16(b[pos:]), tnefChecksum(data); got != want {
				t.problem("TNEF: attribute %#08x checksum %#04x, want %#04x", id, got, want)
			}
			pos += 2
		}
		switch level {
		case levelMessage:
			switch id {
			case attOemCodepage:
				if len(data) >= 4 {
					codepage = binary.LittleEndian.Uint32(data)
				}
			case attBody:
				t.Body = codepageText(trimNUL(data), codepage)
			case attMsgProps:
				t.messageProps(data, codepage)
			}
		case levelAttachment:
			switch id {
			case attAttachRenddata:
				// MS-OXTNEF 2.1.3.3: each attachment starts with its
				// rendering data.
				cur = nil
				attachment()
			case attAttachTitle:
				attachment().Title = codepageText(trimNUL(data), codepage)
			case attAttachTransportFilenam:
				if a := attachment(); a.Title == "" {
					a.Title = codepageText(trimNUL(data), codepage)
				}
			case attAttachData:
				attachment().Data = data
			case attAttachment:
				attachment().props(t, data, codepage)
			}
		default:
			t.problem("TNEF: attribute %#08x of unknown level %d", id, level)
		}
	}
	return t, nil
}

func (t *tnefMessage) problem(format string, args ...any) {
	if len(t.Problems) < 10 {
		t.Problems = append(t.Problems, fmt.Sprintf(format, args...))
	}
}

// tnefChecksum is the sum of the data's bytes, modulo 65536 (MS-OXTNEF
// 2.1.3.1).
func tnefChecksum(data []byte) uint16 {
	var s uint16
	for _, c := range data {
		s += uint16(c)
	}
	return s
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// codepageText decodes text of a Windows code page (attOemCodepage).
func codepageText(b []byte, codepage uint32) string {
	var cs string
	switch {
	case codepage == 65001:
		cs = "utf-8"
	case codepage == 874 || (codepage >= 1250 && codepage <= 1258):
		cs = fmt.Sprintf("windows-%d", codepage)
	case codepage == 932:
		cs = "shift_jis"
	case codepage == 936:
		cs = "gbk"
	case codepage == 949:
		cs = "euc-kr"
	case codepage == 950:
		cs = "big5"
	case codepage == 866:
		cs = "ibm866"
	case codepage == 20866:
		cs = "koi8-r"
	case codepage >= 28591 && codepage <= 28599:
		cs = fmt.Sprintf("iso-8859-%d", codepage-28590)
	default:
		cs = "windows-1252"
	}
	return charsetText(b, cs, nil)
}

// utf16Text decodes PtypString: UTF-16LE, NUL-terminated.
func utf16Text(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// mapiProp is one property of a MAPI property list: its id, its type
// without the multi-valued flag, and its values.
type mapiProp struct {
	id, typ uint16
	values  [][]byte
}

// text is a string property's first value.
func (p mapiProp) text(codepage uint32) string {
	if len(p.values) == 0 {
		return ""
	}
	switch p.typ {
	case ptUnicode:
		return utf16Text(p.values[0])
	case ptString8, ptBinary:
		return codepageText(trimNUL(p.values[0]), codepage)
	}
	return ""
}

func (p mapiProp) uint32() uint32 {
	if len(p.values) == 0 || len(p.values[0]) < 4 {
		return 0
	}
	return binary.LittleEndian.Uint32(p.values[0])
}

// fixedSize is the size in the stream of a value of a fixed-length
// property type (MS-OXTNEF 2.1.3.4, MS-OXCDATA 2.11.1): values shorter
// than 4 bytes are padded to 4. 0 for variable-length and unknown types.
func fixedSize(typ uint16) int {
	switch typ {
	case 0x0001, 0x0002, 0x0003, 0x0004, 0x000A, 0x000B: // null, int16, int32, float32, error, boolean
		return 4
	case 0x0005, 0x0006, 0x0007, 0x0014, 0x0040: // float64, currency, floating time, int64, time
		return 8
	case 0x0048: // GUID
		return 16
	}
	return 0
}

func variableSize(typ uint16) bool {
	switch typ {
	case ptString8, ptUnicode, ptBinary, ptObject, 0x00FB, 0x00FD, 0x00FE: // and server id, restriction, rule action
		return true
	}
	return false
}

// readProps reads a MAPI property list (MS-OXTNEF 2.1.3.4): a count, then
// each property's type, id, name when it is a named property, and
// values, each padded to 4 bytes. It stops at the first property it
// cannot read, returning what came before.
func readProps(b []byte) ([]mapiProp, error) {
	r := tnefReader{b: b}
	count := r.u32()
	var out []mapiProp
	for i := uint32(0); i < count && r.err == nil; i++ {
		typ := r.u16()
		id := r.u16()
		if id >= 0x8000 {
			// A named property: a GUID, then an id or a name.
			r.skip(16)
			if kind := r.u32(); kind == 0 {
				r.skip(4)
			} else {
				r.skip(pad4(r.u32()))
			}
		}
		multi := typ&ptMulti != 0
		base := typ &^ ptMulti
		n := uint32(1)
		if multi || variableSize(base) {
			n = r.u32()
		}
		p := mapiProp{id: id, typ: base}
		for v := uint32(0); v < n && r.err == nil; v++ {
			switch {
			case variableSize(base):
				size := r.u32()
				val := r.bytes(size)
				r.skip(pad4(size) - size)
				p.values = append(p.values, val)
			case fixedSize(base) > 0:
				p.values = append(p.values, r.bytes(uint32(fixedSize(base))))
			default:
				r.err = fmt.Errorf("property %#04x of unknown type %#04x", id, typ)
			}
		}
		if r.err == nil {
			out = append(out, p)
		}
	}
	return out, r.err
}

func pad4(n uint32) uint32 {
	if n > 1<<31 {
		return n // past any stream: the read fails
	}
	return (n + 3) &^ 3
}

// tnefReader reads little-endian values and remembers the first error.
type tnefReader struct {
	b   []byte
	pos int
	err error
}

func (r *tnefReader) bytes(n uint32) []byte {
	if r.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(r.b)-r.pos) {
		r.err = errors.New("property list cut short")
		return nil
	}
	v := r.b[r.pos : r.pos+int(n)]
	r.pos += int(n)
	return v
}

func (r *tnefReader) skip(n uint32) { r.bytes(n) }

func (r *tnefReader) u32() uint32 {
	if v := r.bytes(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *tnefReader) u16() uint16 {
	if v := r.bytes(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

// messageProps reads attMsgProps: the bodies.
func (t *tnefMessage) messageProps(data []byte, codepage uint32) {
	props, err := readProps(data)
	if err != nil {
		t.problem("TNEF: message properties: %v", err)
	}
	for _, p := range props {
		switch p.id {
		case pidBody:
			if t.Body == "" {
				t.Body = p.text(codepage)
			}
		case pidBodyHTML:
			t.HTML = p.text(codepage)
		case pidRtfCompressed:
			if len(p.values) > 0 {
				t.RTF = p.values[0]
			}
		}
	}
}

// props reads attAttachment: the attachment's names, type and data.
func (a *tnefAttachment) props(t *tnefMessage, data []byte, codepage uint32) {
	props, err := readProps(data)
	if err != nil {
		t.problem("TNEF: attachment properties: %v", err)
	}
	for _, p := range props {
		switch p.id {
		case pidDisplayName:
			a.Display = p.text(codepage)
		case pidAttachFilename:
			a.ShortName = p.text(codepage)
		case pidAttachLongName:
			a.LongName = p.text(codepage)
		case pidAttachMIMETag:
			a.MIMEType = strings.ToLower(strings.TrimSpace(p.text(codepage)))
		case pidAttachContentID:
			a.ContentID = strings.Trim(strings.TrimSpace(p.text(codepage)), "<>")
		case pidAttachMethod:
			a.Method = p.uint32()
		case pidAttachHidden:
			a.Hidden = p.uint32()&0xFFFF != 0
		case pidAttachData:
			if len(p.values) == 0 || len(a.Data) > 0 {
				continue
			}
			v := p.values[0]
			if p.typ == ptObject {
				// MS-OXTNEF 2.1.3.4: an object value starts with the
				// interface id of the object.
				if len(v) < 16 {
					continue
				}
				v = v[16:]
			}
			a.Data = v
		}
	}
	if a.Method == attachEmbeddedMsg {
		a.Embedded = true
	}
}

// tnefTypes gives the content type of files inside TNEF by extension,
// when the stream does not name it.
var tnefTypes = map[string]string{
	".pdf": "application/pdf", ".txt": "text/plain", ".log": "text/plain", ".csv": "text/csv",
	".htm": "text/html", ".html": "text/html", ".xml": "application/xml", ".json": "application/json",
	".rtf": "application/rtf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
	".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff",
	".zip": "application/zip", ".eml": "message/rfc822", ".msg": "application/vnd.ms-outlook",
	".doc": "application/msword", ".xls": "application/vnd.ms-excel", ".ppt": "application/vnd.ms-powerpoint",
	".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}

// contentType is the attachment's MIME type: as the stream names it, else
// by the file name's extension.
func (a tnefAttachment) contentType() string {
	if a.Embedded {
		return "application/vnd.ms-tnef"
	}
	if a.MIMEType != "" && strings.Contains(a.MIMEType, "/") {
		return a.MIMEType
	}
	if ct, ok := tnefTypes[strings.ToLower(path.Ext(a.filename()))]; ok {
		return ct
	}
	return "application/octet-stream"
}

// isTNEF reports whether a MIME part is a TNEF stream: by its type
// (application/ms-tnef, application/vnd.ms-tnef) or, as some servers
// label it application/octet-stream, by the name Outlook gives it.
func isTNEF(ct, filename string) bool {
	switch ct {
	case "application/ms-tnef", "application/vnd.ms-tnef", "application/x-tnef":
		return true
	}
	return strings.EqualFold(strings.TrimSpace(filename), "winmail.dat")
}

package mailparse

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// tnefWriter writes TNEF streams as Outlook does (MS-OXTNEF 2.1.3), for
// the tests.
type tnefWriter struct{ bytes.Buffer }

func newTNEFWriter() *tnefWriter {
	w := &tnefWriter{}
	w.u32(tnefSignature)
	w.u16(0x0102)                                        // legacy key
	w.attr(levelMessage, 0x00089006, []byte{0, 0, 1, 0}) // attTnefVersion
	return w
}

func (w *tnefWriter) u16(v uint16) { _ = binary.Write(w, binary.LittleEndian, v) }
func (w *tnefWriter) u32(v uint32) { _ = binary.Write(w, binary.LittleEndian, v) }

func (w *tnefWriter) attr(level byte, id uint32, data []byte) {
	w.WriteByte(level)
	w.u32(id)
	w.u32(uint32(len(data)))
	w.Write(data)
	w.u16(tnefChecksum(data))
}

// propWriter writes a MAPI property list (MS-OXTNEF 2.1.3.4).
type propWriter struct {
	bytes.Buffer
	n uint32
}

func (p *propWriter) head(typ, id uint16) {
	p.n++
	_ = binary.Write(p, binary.LittleEndian, typ)
	_ = binary.Write(p, binary.LittleEndian, id)
}

func (p *propWriter) padded(b []byte) {
	_ = binary.Write(p, binary.LittleEndian, uint32(len(b)))
	p.Write(b)
	p.Write(make([]byte, int(pad4(uint32(len(b))))-len(b)))
}

func (p *propWriter) long(id uint16, v uint32) {
	p.head(0x0003, id)
	_ = binary.Write(p, binary.LittleEndian, v)
}

func (p *propWriter) boolean(id uint16, v bool) {
	p.head(0x000B, id)
	b := uint32(0)
	if v {
		b = 1
	}
	_ = binary.Write(p, binary.LittleEndian, b)
}

func (p *propWriter) string8(id uint16, s string) {
	p.head(ptString8, id)
	_ = binary.Write(p, binary.LittleEndian, uint32(1))
	p.padded(append([]byte(s), 0))
}

func (p *propWriter) unicode(id uint16, s string) {
	p.head(ptUnicode, id)
	_ = binary.Write(p, binary.LittleEndian, uint32(1))
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	p.padded(append(b, 0, 0))
}

func (p *propWriter) binary(id uint16, v []byte) {
	p.head(ptBinary, id)
	_ = binary.Write(p, binary.LittleEndian, uint32(1))
	p.padded(v)
}

// named writes a named property (a GUID and a name) of type int32, which
// readers skip.
func (p *propWriter) named(name string) {
	p.head(0x0003, 0x8005)
	p.Write(bytes.Repeat([]byte{0xAB}, 16))
	_ = binary.Write(p, binary.LittleEndian, uint32(1)) // MNID_STRING
	var b []byte
	for _, c := range utf16.Encode([]rune(name)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	b = append(b, 0, 0)
	p.padded(b)
	_ = binary.Write(p, binary.LittleEndian, uint32(7))
}

func (p *propWriter) bytes() []byte {
	return append(binary.LittleEndian.AppendUint32(nil, p.n), p.Buffer.Bytes()...)
}

// compressRTF compresses RTF as MS-OXRTFCP 2.2.2 describes, with the
// longest match in the dictionary that does not overlap the bytes being
// written.
func compressRTF(raw []byte) []byte {
	var dict [4096]byte
	copy(dict[:], rtfPrebuilt)
	w := len(rtfPrebuilt)
	var out []byte
	i := 0
	for {
		ctrlAt := len(out)
		out = append(out, 0)
		for bit := 0; bit < 8; bit++ {
			if i >= len(raw) {
				out[ctrlAt] |= 1 << bit
				out = append(out, byte(w>>4), byte(w<<4))
				h := binary.LittleEndian.AppendUint32(nil, uint32(len(out)+12))
				h = binary.LittleEndian.AppendUint32(h, uint32(len(raw)))
				h = binary.LittleEndian.AppendUint32(h, rtfCompressed)
				h = binary.LittleEndian.AppendUint32(h, 0)
				return append(h, out...)
			}
			best, bestOff := 0, 0
			for off := 0; off < 4096; off++ {
				n := 0
				for n < 17 && i+n < len(raw) && (w-off)&4095 > n && dict[(off+n)&4095] == raw[i+n] {
					n++
				}
				if n > best {
					best, bestOff = n, off
				}
			}
			if best >= 2 {
				out[ctrlAt] |= 1 << bit
				ref := bestOff<<4 | (best - 2)
				out = append(out, byte(ref>>8), byte(ref))
			} else {
				best = 1
				out = append(out, raw[i])
			}
			for k := 0; k < best; k++ {
				dict[w] = raw[i+k]
				w = (w + 1) & 4095
			}
			i += best
		}
	}
}

// outlookTNEF is a winmail.dat as Outlook writes it for a rich-text mail
// with a PDF, a spreadsheet named in Unicode, and an image shown in the
// body.
func outlookTNEF(rtf string) []byte {
	w := newTNEFWriter()
	w.attr(levelMessage, attOemCodepage, []byte{0xE4, 0x04, 0, 0, 0, 0, 0, 0}) // 1252
	w.attr(levelMessage, 0x00078008, []byte("IPM.Microsoft Mail.Note\x00"))    // attMessageClass
	var mp propWriter
	mp.named("Keywords")
	mp.long(0x0E07, 1) // PidTagMessageFlags
	mp.binary(pidRtfCompressed, compressRTF([]byte(rtf)))
	w.attr(levelMessage, attMsgProps, mp.bytes())

	w.attr(levelAttachment, attAttachRenddata, make([]byte, 14))
	w.attr(levelAttachment, attAttachTitle, []byte("INVOIC~1.PDF\x00"))
	w.attr(levelAttachment, attAttachData, []byte("%PDF-1.4 invoice"))
	var ap propWriter
	ap.string8(pidAttachLongName, "Invoice 2025-03.pdf")
	ap.long(pidAttachMethod, 1)
	w.attr(levelAttachment, attAttachment, ap.bytes())

	w.attr(levelAttachment, attAttachRenddata, make([]byte, 14))
	w.attr(levelAttachment, attAttachTitle, []byte("ABRECH~1.XLS\x00"))
	w.attr(levelAttachment, attAttachData, []byte("PK\x03\x04 sheet"))
	var sp propWriter
	sp.unicode(pidAttachLongName, "Abrechnung März.xlsx")
	w.attr(levelAttachment, attAttachment, sp.bytes())

	w.attr(levelAttachment, attAttachRenddata, make([]byte, 14))
	w.attr(levelAttachment, attAttachData, []byte("\x89PNG\r\n\x1a\n"))
	var ip propWriter
	ip.string8(pidAttachLongName, "image001.png")
	ip.string8(pidAttachMIMETag, "image/png")
	ip.string8(pidAttachContentID, "image001.png@01DB8A2F.5E3C1D40")
	ip.boolean(pidAttachHidden, true)
	w.attr(levelAttachment, attAttachment, ip.bytes())
	return w.Bytes()
}

const outlookRTF = "{\\rtf1\\ansi\\ansicpg1252\\fromtext \\fbidis \\deff0{\\fonttbl\n{\\f0\\fswiss Arial;}\n{\\f1\\fmodern Courier New;}}\n" +
	"{\\colortbl\\red0\\green0\\blue0;\\red0\\green0\\blue255;}\n{\\*\\generator Riched20 16.0.1;}\n" +
	"\\uc1\\pard\\plain\\deftab360 \\f0\\fs20 Hallo,\\par\n\\par\nanbei die Rechnung f\\'fcr M\\'e4rz und die Abrechnung \\u8364?\\~120.\\par\n" +
	"\\par\nViele Gr\\'fc\\'dfe\\par\nJana\\par\n}"

func TestReadTNEF(t *testing.T) {
	tn, err := readTNEF(outlookTNEF(outlookRTF))
	if err != nil {
		t.Fatal(err)
	}
	if len(tn.Problems) > 0 {
		t.Errorf("problems %q", tn.Problems)
	}
	type file struct {
		Name, Type, CID string
		Hidden          bool
		Data            string
	}
	var got []file
	for _, a := range tn.Attachments {
		got = append(got, file{a.filename(), a.contentType(), a.ContentID, a.Hidden, string(a.Data)})
	}
	want := []file{
		{"Invoice 2025-03.pdf", "application/pdf", "", false, "%PDF-1.4 invoice"},
		{"Abrechnung März.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "", false, "PK\x03\x04 sheet"},
		{"image001.png", "image/png", "image001.png@01DB8A2F.5E3C1D40", true, "\x89PNG\r\n\x1a\n"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("attachments (-want +got):\n%s", diff)
	}
	rtf, err := decompressRTF(tn.RTF, maxRTFBytes)
	if err != nil || string(rtf) != outlookRTF {
		t.Fatalf("decompressed RTF %q, %v", rtf, err)
	}
	text, isHTML := rtfText(rtf)
	if want := "Hallo,\n\nanbei die Rechnung für März und die Abrechnung €\u00a0120.\n\nViele Grüße\nJana\n"; text != want || isHTML {
		t.Errorf("RTF text %q (html %v), want %q", text, isHTML, want)
	}
}

// TestDecompressRTF checks the example of MS-OXRTFCP 3.1.1, a stream
// stored uncompressed, and streams cut short.
func TestDecompressRTF(t *testing.T) {
	spec, _ := hex.DecodeString("2d0000002b0000004c5a4675f1c5c7a703000a00726370673132354232" +
		"0af32068656c0900206277" + "05b06c647d0a800fa0")
	for _, tc := range []struct {
		name string
		in   []byte
		want string
		err  bool
	}{
		{name: "the specification's example", in: spec, want: "{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"},
		{name: "uncompressed", in: append([]byte{11 + 12, 0, 0, 0, 11, 0, 0, 0, 'M', 'E', 'L', 'A', 0, 0, 0, 0}, "{\\rtf1 hi}\n"...), want: "{\\rtf1 hi}\n"},
		{name: "cut short keeps what was read", in: spec[:26], want: "{\\rtf1\\ansi\\ansicpg12"},
		{name: "unknown type", in: append([]byte{4, 0, 0, 0, 4, 0, 0, 0, 'X', 'X', 'X', 'X', 0, 0, 0, 0}, "abcd"...), err: true},
		{name: "too short", in: []byte("LZFu"), err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decompressRTF(tc.in, maxRTFBytes)
			if (err != nil) != tc.err || string(got) != tc.want {
				t.Errorf("got %q, %v", got, err)
			}
		})
	}
	// The writer of these tests and the reader agree on longer text,
	// which wraps around the dictionary.
	long := strings.Repeat("{\\pard Der Drucker druckt nicht. \\par}", 300)
	if got, err := decompressRTF(compressRTF([]byte(long)), maxRTFBytes); err != nil || string(got) != long {
		t.Errorf("round trip of %d bytes: %d bytes, %v", len(long), len(got), err)
	}
	// A mail's rich text expands to a bounded size, whatever its header
	// claims.
	if got, _ := decompressRTF(compressRTF([]byte(long)), 100); string(got) != long[:100] {
		t.Errorf("limited to 100 bytes: %d bytes", len(got))
	}
}

func TestRTFText(t *testing.T) {
	for _, tc := range []struct {
		name, rtf, want string
		html            bool
	}{
		{
			name: "destinations, fields and Unicode",
			rtf: "{\\rtf1\\ansi\\ansicpg1251{\\fonttbl{\\f0 Arial;}}{\\info{\\author Kim}}\\uc2 " +
				"\\'cf\\'f0\\'e8\\'ec\\'e5\\'f0 {\\field{\\*\\fldinst HYPERLINK \"https://x.example\"}{\\fldrslt Link}}\\par\\u1046\\'3f\\'3f.\\tab end}",
			want: "Пример Link\nЖ.\tend",
		},
		{
			name: "escaped braces and backslashes",
			rtf:  "{\\rtf1 a \\{b\\} c\\\\d\\line e}",
			want: "a {b} c\\d\ne",
		},
		{
			// MS-OXRTFEX: HTML encapsulated in RTF comes back as HTML;
			// what is between \htmlrtf and \htmlrtf0 is RTF only.
			name: "encapsulated HTML",
			rtf: "{\\rtf1\\ansi\\ansicpg1252\\fromhtml1 \\deff0{\\fonttbl{\\f0\\fswiss Arial;}}" +
				"{\\*\\htmltag19 <html>}{\\*\\htmltag34 <head>}{\\*\\htmltag50 <style>p\\{margin:0\\}</style>}{\\*\\htmltag41 </head>}" +
				"{\\*\\htmltag50 <body>}\\htmlrtf {\\htmlrtf0 {\\*\\htmltag64 <p>}\\htmlrtf {\\htmlrtf0 Gr\\'fc\\'dfe aus \\htmlrtf\\par\\htmlrtf0 Wien" +
				"{\\*\\mhtmltag84 <img src=\"cid:x\">}{\\*\\htmltag84 <br>}\\htmlrtf\\line\\htmlrtf0 Jana{\\*\\htmltag72 </p>}\\htmlrtf }\\htmlrtf0 \\htmlrtf }\\htmlrtf0 " +
				"{\\*\\htmltag58 </body>}{\\*\\htmltag27 </html>}}",
			want: "<html><head><style>p{margin:0}</style></head><body><p>Grüße aus Wien<br>Jana</p></body></html>",
			html: true,
		},
		{name: "unbalanced groups", rtf: "{\\rtf1 {{{ text }", want: " text "},
		{name: "not RTF at all", rtf: "plain words", want: "plain words"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, html := rtfText([]byte(tc.rtf))
			if got != tc.want || html != tc.html {
				t.Errorf("rtfText = %q (html %v), want %q (html %v)", got, html, tc.want, tc.html)
			}
		})
	}
}

// tnefMail wraps a winmail.dat in a mail as Exchange sends it.
func tnefMail(text string, tnef []byte, ct string) []byte {
	b64 := base64.StdEncoding.EncodeToString(tnef)
	var lines []string
	for len(b64) > 76 {
		lines = append(lines, b64[:76])
		b64 = b64[76:]
	}
	lines = append(lines, b64)
	return []byte("From: Jana Berg <jana@example.de>\r\nTo: support@ticketd.test\r\nSubject: Rechnung\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"_000_\"\r\n\r\n" +
		"--_000_\r\nContent-Type: text/plain; charset=\"iso-8859-1\"\r\n\r\n" + text + "\r\n" +
		"--_000_\r\nContent-Type: " + ct + "; name=\"winmail.dat\"\r\nContent-Disposition: attachment; filename=\"winmail.dat\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + strings.Join(lines, "\r\n") + "\r\n--_000_--\r\n")
}

// TestTNEFMail: the files inside winmail.dat are the mail's attachments,
// and its rich-text body is the text when the mail has no other.
func TestTNEFMail(t *testing.T) {
	type att struct {
		Name, Type string
		Inline     bool
	}
	files := []att{
		{"Invoice 2025-03.pdf", "application/pdf", false},
		{"Abrechnung März.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", false},
		{"image001.png", "image/png", true},
	}
	for _, tc := range []struct {
		name, text, ct string
		tnef           []byte
		wantText       string
		want           []att
	}{
		{name: "no other text", ct: "application/ms-tnef", tnef: outlookTNEF(outlookRTF),
			wantText: "Hallo,\n\nanbei die Rechnung für März und die Abrechnung € 120.\n\nViele Grüße\nJana", want: files},
		{name: "its own text stays", ct: "application/vnd.ms-tnef", text: "Siehe Anhang.", tnef: outlookTNEF(outlookRTF),
			wantText: "Siehe Anhang.", want: files},
		{name: "labelled octet-stream", ct: "application/octet-stream", tnef: outlookTNEF(outlookRTF),
			wantText: "Hallo,\n\nanbei die Rechnung für März und die Abrechnung € 120.\n\nViele Grüße\nJana", want: files},
		{name: "not TNEF: kept as the file it is", ct: "application/ms-tnef", text: "Anbei.", tnef: []byte("MZ not tnef"),
			wantText: "Anbei.", want: []att{{"winmail.dat", "application/ms-tnef", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Parse(tnefMail(tc.text, tc.tnef, tc.ct), Options{})
			checkMessage(t, m)
			var got []att
			for _, a := range m.Summary().Attachments {
				got = append(got, att{a.Filename, a.ContentType, a.Inline})
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("attachments (-want +got):\n%s", diff)
			}
			if m.Text != tc.wantText || m.Reply != tc.wantText {
				t.Errorf("text %q, reply %q, want %q", m.Text, m.Reply, tc.wantText)
			}
			for _, p := range m.Problems {
				if strings.Contains(p, "winmail.dat") {
					t.Errorf("problem %q", p)
				}
			}
		})
	}
}

// TestTNEFBodies: a plain-text body in the stream wins over its RTF, and
// RTF that encapsulates HTML gives the mail its HTML.
func TestTNEFBodies(t *testing.T) {
	w := newTNEFWriter()
	w.attr(levelMessage, attBody, []byte("Der Drucker ist kaputt.\r\n\x00"))
	var mp propWriter
	mp.binary(pidRtfCompressed, compressRTF([]byte("{\\rtf1 other}")))
	w.attr(levelMessage, attMsgProps, mp.bytes())
	// Without files in it, winmail.dat stays listed.
	m := Parse(tnefMail("", w.Bytes(), "application/ms-tnef"), Options{})
	if m.Text != "Der Drucker ist kaputt." || len(m.Attachments) != 1 || m.Attachments[0].Filename != "winmail.dat" {
		t.Errorf("attBody: text %q, attachments %+v", m.Text, m.Attachments)
	}

	w = newTNEFWriter()
	mp = propWriter{}
	mp.binary(pidRtfCompressed, compressRTF([]byte("{\\rtf1\\ansi\\fromhtml1 {\\*\\htmltag <p>}Hello{\\*\\htmltag </p>}}")))
	w.attr(levelMessage, attMsgProps, mp.bytes())
	m = Parse(tnefMail("", w.Bytes(), "application/ms-tnef"), Options{})
	if m.Text != "Hello" || m.HTML != "<p>Hello</p>" {
		t.Errorf("encapsulated HTML: text %q, html %q", m.Text, m.HTML)
	}
}

// TestTNEFDamaged: a stream cut short or with wrong checksums keeps what
// was read, and says so; counts and lengths past the end read nothing
// beyond it.
func TestTNEFDamaged(t *testing.T) {
	full := outlookTNEF(outlookRTF)
	cut := full[:len(full)-40]
	tn, err := readTNEF(cut)
	if err != nil {
		t.Fatal(err)
	}
	if len(tn.Attachments) != 3 || string(tn.Attachments[1].Data) != "PK\x03\x04 sheet" || len(tn.Problems) == 0 {
		t.Errorf("cut stream: %d attachments, problems %q", len(tn.Attachments), tn.Problems)
	}

	bad := bytes.Clone(full)
	bad[len(bad)-1] ^= 0xFF // the last checksum
	if tn, _ := readTNEF(bad); len(tn.Problems) != 1 || !strings.Contains(tn.Problems[0], "checksum") {
		t.Errorf("checksum: problems %q", tn.Problems)
	}

	// A property list that claims a billion properties, and a string
	// longer than the list.
	w := newTNEFWriter()
	w.attr(levelMessage, attMsgProps, []byte{0, 0xCA, 0x9A, 0x3B, 0x1E, 0, 0, 0x10, 1, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x7F})
	w.attr(levelAttachment, attAttachRenddata, nil)
	w.attr(levelAttachment, attAttachData, []byte("data"))
	tn, err = readTNEF(w.Bytes())
	if err != nil || len(tn.Attachments) != 1 || string(tn.Attachments[0].Data) != "data" || tn.Body != "" {
		t.Errorf("huge counts: %+v, %v", tn, err)
	}
}

// FuzzTNEF reads arbitrary TNEF streams, alone and as a mail's
// winmail.dat: no panic, nothing read from beyond the stream, valid text.
func FuzzTNEF(f *testing.F) {
	f.Add(outlookTNEF(outlookRTF))
	f.Add(outlookTNEF("{\\rtf1\\fromhtml1 {\\*\\htmltag <b>}x}"))
	f.Add([]byte{0x78, 0x9F, 0x3E, 0x22, 0, 0})
	w := newTNEFWriter()
	w.attr(levelMessage, attMsgProps, []byte{1, 0, 0, 0, 0x02, 0x01, 0x09, 0x10, 1, 0, 0, 0, 0xF0, 0xFF, 0xFF, 0xFF})
	f.Add(w.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		tn, err := readTNEF(b)
		if err != nil {
			return
		}
		for _, a := range tn.Attachments {
			if len(a.Data) > len(b) {
				t.Fatalf("attachment of %d bytes from a stream of %d", len(a.Data), len(b))
			}
			if !utf8.ValidString(a.filename()) || !strings.Contains(a.contentType(), "/") {
				t.Fatalf("attachment name %q type %q", a.filename(), a.contentType())
			}
		}
		if !utf8.ValidString(tn.Body) || !utf8.ValidString(tn.HTML) {
			t.Fatalf("invalid UTF-8 body")
		}
		if len(tn.Attachments) > maxTNEFAttachments {
			t.Fatalf("%d attachments", len(tn.Attachments))
		}
		m := Parse(tnefMail("", b, "application/ms-tnef"), Options{MaxAttachments: 5})
		checkMessage(t, m)
	})
}

// FuzzRTF decompresses and reads arbitrary compressed RTF.
func FuzzRTF(f *testing.F) {
	f.Add(compressRTF([]byte(outlookRTF)))
	f.Add(compressRTF([]byte("{\\rtf1\\fromhtml1 {\\*\\htmltag64 <p>}\\htmlrtf x\\htmlrtf0 y\\u-4000?}")))
	f.Add(append([]byte{20, 0, 0, 0, 8, 0, 0, 0, 'M', 'E', 'L', 'A', 0, 0, 0, 0}, "{\\rtf1 \\'e4}"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		rtf, err := decompressRTF(b, maxRTFBytes)
		if err != nil {
			rtf = b // read as RTF as it is
		}
		if len(rtf) > maxRTFBytes {
			t.Fatalf("%d bytes of RTF", len(rtf))
		}
		text, _ := rtfText(rtf)
		if !utf8.ValidString(text) {
			t.Fatalf("invalid UTF-8 %q", text)
		}
	})
}

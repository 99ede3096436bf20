package mailparse

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func readMail(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "mail", name))
	if err != nil {
		t.Fatalf("read sample: %v", err)
	}
	return b
}

// view is the part of a Message a test row checks.
type view struct {
	Subject     string
	From        Address
	Text        string
	Reply       string
	Signature   string
	Kind        Kind
	Recipients  []string
	Attachments []attView
	Commands    []Command
	Body        string
}

type attView struct {
	Filename, ContentType string
	Inline                bool
	Size                  int64
	HasData               bool
}

func viewOf(m *Message) view {
	v := view{
		Subject: m.Subject, From: m.From, Text: m.Text, Reply: m.Reply, Signature: m.Signature,
		Kind: m.Auto.Kind, Recipients: m.Auto.Recipients, Commands: m.Commands, Body: m.Body,
	}
	for _, a := range m.Attachments {
		v.Attachments = append(v.Attachments, attView{a.Filename, a.ContentType, a.Inline, a.Size, a.Data != nil})
	}
	return v
}

func TestParseSamples(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		want     view
		fields   []string // view fields compared; all when empty
		problems []string // substrings expected among Problems
	}{
		{
			name: "latin-1 quoted-printable with encoded subject and name",
			file: "latin1-qp.eml",
			want: view{
				Subject: "Café crème est froid",
				From:    Address{Name: "Renée Dupré", Address: "renee@example.fr"},
				Text:    "Bonjour,\n\nLe café crème de la machine est froid depuis lundi. Pouvez-vous vérifier ?\n\nRenée",
				Reply:   "Bonjour,\n\nLe café crème de la machine est froid depuis lundi. Pouvez-vous vérifier ?\n\nRenée",
				Body:    "Bonjour,\n\nLe café crème de la machine est froid depuis lundi. Pouvez-vous vérifier ?\n\nRenée",
				Kind:    KindNone,
			},
		},
		{
			name:     "unknown charset falls back with a problem",
			file:     "unknown-charset.eml",
			want:     view{Text: "Grüße aus dem Norden: the printer ate my form."},
			fields:   []string{"Text"},
			problems: []string{`unknown charset "x-martian-7"`},
		},
		{
			name:     "encoded words split mid-character, folded, and unterminated",
			file:     "encoded-words.eml",
			want:     view{Subject: "💪 The gate is stück and broken word", From: Address{Name: "Jörg Müller", Address: "jorg@example.de"}},
			fields:   []string{"Subject", "From"},
			problems: []string{"without its closing ?="},
		},
		{
			name:   "RFC 2231 continued, charset-tagged file name",
			file:   "rfc2231.eml",
			want:   view{Text: "Please find the invoice attached.", Attachments: []attView{{"請求書 March.pdf", "application/pdf", false, 26, true}}},
			fields: []string{"Text", "Attachments"},
		},
		{
			name: "attached message is one attachment and not the text",
			file: "nested-rfc822.eml",
			want: view{Text: "See the attached mail from Alice.", Attachments: []attView{
				{"The original problem.eml", "message/rfc822", false, 199, true},
			}},
			fields: []string{"Text", "Attachments"},
		},
		{
			name:   "a mail that is only a forwarded message reads the forwarded text",
			file:   "forward-only.eml",
			want:   view{Text: "The VPN drops every ten minutes."},
			fields: []string{"Text"},
		},
		{
			name:   "alternative prefers text/plain",
			file:   "alternative.eml",
			want:   view{Text: "The printer on floor 3 jams on every page.\n\nOn Mon, 3 Mar 2025 at 10:00, Support <support@ticketd.test> wrote:\n> Which printer?", Reply: "The printer on floor 3 jams on every page."},
			fields: []string{"Text", "Reply"},
		},
		{
			name: "HTML only: readable text, links keep their text, script and style dropped, gmail quote removed",
			file: "html-only.eml",
			want: view{
				Text:  "Thanks, the laptop works again.\n\nSee the log.\n- one\n- two\nOn Tue, Mar 4, 2025 Support <support@ticketd.test> wrote:\n> Please restart it.",
				Reply: "Thanks, the laptop works again.\n\nSee the log.\n- one\n- two",
			},
			fields: []string{"Text", "Reply"},
		},
		{
			name: "inline image in related and a file with a path in its name",
			file: "attachments.eml",
			want: view{Text: "Here is the error:", Attachments: []attView{
				{"shot.png", "image/png", true, 70, true},
				{"data.csv", "text/csv", false, 7, true},
			}},
			fields: []string{"Text", "Attachments"},
		},
		{
			name: "bad base64, missing close boundary, header line without colon",
			file: "broken.eml",
			want: view{Subject: "Broken mail", Text: "Hello, the server is down.", Attachments: []attView{
				{"x.bin", "application/octet-stream", false, 6, true},
			}},
			fields:   []string{"Subject", "Text", "Attachments"},
			problems: []string{"invalid characters in base64", "closing boundary missing", "without a field name", "unreadable Date"},
		},
		{
			name:     "multipart without boundary parameter",
			file:     "no-boundary.eml",
			want:     view{Text: "Text found despite the missing boundary."},
			fields:   []string{"Text"},
			problems: []string{"boundary"},
		},
		{
			name:     "CR-only line endings",
			file:     "cr-only.eml",
			want:     view{Subject: "Old Mac", Text: "Line one.\nLine two."},
			fields:   []string{"Subject", "Text"},
			problems: []string{"CR alone"},
		},
		{
			name:   "CRLF line endings",
			file:   "crlf.eml",
			want:   view{Subject: "Windows", Text: "Line one.\nLine two."},
			fields: []string{"Subject", "Text"},
		},
		{
			name:     "no header at all",
			file:     "no-header.eml",
			want:     view{Text: "Just some text pasted into a file,\nwithout any header at all."},
			fields:   []string{"Text"},
			problems: []string{"no header"},
		},
		{
			name:     "8-bit header bytes",
			file:     "eight-bit-header.eml",
			want:     view{Subject: "Grüße", From: Address{Name: "Jürgen", Address: "juergen@example.de"}, Text: "Grüße!"},
			fields:   []string{"Subject", "From", "Text"},
			problems: []string{"8-bit bytes in a header"},
		},
		{
			name:   "format=flowed is unwrapped",
			file:   "flowed.eml",
			want:   view{Reply: "This line is long and the client wrapped it at the soft break."},
			fields: []string{"Reply"},
		},
		{
			name: "commands, signature and quote in a moderator's reply",
			file: "commands.eml",
			want: view{
				Reply:     "status: completed\n#priority high\nAssign: kim@example.com\n\nFixed by restarting the concentrator.",
				Signature: "--\nMod Team",
				Commands: []Command{
					{Name: "status", Value: "completed", Line: "status: completed"},
					{Name: "priority", Value: "high", Line: "#priority high"},
					{Name: "assign", Value: "kim@example.com", Line: "Assign: kim@example.com"},
				},
				Body: "Fixed by restarting the concentrator.",
			},
			fields: []string{"Reply", "Signature", "Commands", "Body"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Parse(readMail(t, tt.file), Options{})
			got := viewOf(m)
			opts := []cmp.Option{cmpopts.EquateEmpty()}
			if len(tt.fields) > 0 {
				keep := map[string]bool{}
				for _, f := range tt.fields {
					keep[f] = true
				}
				opts = append(opts, cmp.FilterPath(func(p cmp.Path) bool {
					if len(p) < 2 {
						return false
					}
					sf, ok := p[1].(cmp.StructField)
					return ok && !keep[sf.Name()]
				}, cmp.Ignore()))
			}
			if diff := cmp.Diff(tt.want, got, opts...); diff != "" {
				t.Errorf("Parse(%s) mismatch (-want +got):\n%s\nproblems: %q", tt.file, diff, m.Problems)
			}
			for _, p := range tt.problems {
				found := false
				for _, got := range m.Problems {
					if strings.Contains(got, p) {
						found = true
					}
				}
				if !found {
					t.Errorf("Parse(%s): no problem containing %q in %q", tt.file, p, m.Problems)
				}
			}
		})
	}
}

func TestParseHeaders(t *testing.T) {
	m := Parse(readMail(t, "encoded-words.eml"), Options{})
	want := struct {
		To         []Address
		Date       time.Time
		MessageID  string
		InReplyTo  string
		References []string
	}{
		To:         []Address{{Name: "Support, Team", Address: "support@ticketd.test"}, {Name: "Zoë", Address: "zoe@example.com"}},
		Date:       time.Date(2025, 3, 5, 10, 0, 0, 0, time.FixedZone("", 0)),
		MessageID:  "words.1@example.de",
		InReplyTo:  "prev.1@ticketd.test",
		References: []string{"first.1@ticketd.test", "prev.1@ticketd.test"},
	}
	got := want
	got.To, got.Date, got.MessageID, got.InReplyTo, got.References = m.To, m.Date, m.MessageID, m.InReplyTo, m.References
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("headers mismatch (-want +got):\n%s", diff)
	}
}

// TestAddressesLenient checks From headers that the strict RFC 5322
// grammar refuses, in testdata/address: the name and address must be what
// a mail reader shows.
func TestAddressesLenient(t *testing.T) {
	tests := []struct {
		file string
		from Address
	}{
		// A backslash outside a quoted string escapes the quote mark.
		{"escaped-quotes.eml", Address{Name: `"Mira Stone"`, Address: "mira@example.com"}},
		// RFC 5322 3.2.2: comments are not part of the name or address.
		{"comments-everywhere.eml", Address{Name: "Mira", Address: "mira@example.com"}},
		// RFC 5322 3.4: a group's name is not the mailbox's.
		{"group-name.eml", Address{Name: "Mira Stone", Address: "mira@example.com"}},
		// Two mailboxes with the comma forgotten: the first is the sender.
		{"missing-comma.eml", Address{Name: "Mira Stone", Address: "mira@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "address", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			m := Parse(raw, Options{})
			if diff := cmp.Diff(tt.from, m.From); diff != "" {
				t.Errorf("From mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAttachmentLimits(t *testing.T) {
	raw := readMail(t, "attachments.eml")
	tests := []struct {
		name     string
		opt      Options
		want     []attView
		problems []string
	}{
		{
			name: "content over the size limit is not kept",
			opt:  Options{MaxAttachmentBytes: 10},
			want: []attView{{"shot.png", "image/png", true, 70, false}, {"data.csv", "text/csv", false, 7, true}},
			problems: []string{
				`attachment "shot.png" is 70 bytes, over the limit of 10: content not kept`,
			},
		},
		{
			name:     "attachments over the count are dropped",
			opt:      Options{MaxAttachments: 1},
			want:     []attView{{"shot.png", "image/png", true, 70, true}},
			problems: []string{"more than 1 attachments: the rest not recorded"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Parse(raw, tt.opt)
			if diff := cmp.Diff(tt.want, viewOf(m).Attachments); diff != "" {
				t.Errorf("attachments mismatch (-want +got):\n%s", diff)
			}
			for _, a := range m.Attachments {
				if len(a.SHA256) != 64 {
					t.Errorf("attachment %q: SHA256 %q is not hex of 32 bytes", a.Filename, a.SHA256)
				}
			}
			if diff := cmp.Diff(tt.problems, m.Problems, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKind(t *testing.T) {
	tests := []struct {
		kind        Kind
		opens, answ bool
	}{
		{KindNone, true, true},
		{KindAutoReply, false, false},
		{KindBounce, false, false},
		{KindDeliveryStatus, false, false},
		{KindComplaint, false, false},
		{KindMDN, false, false},
		{KindAutoGenerated, true, false},
		{KindBulk, true, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			if got := tt.kind.OpensTicket(); got != tt.opens {
				t.Errorf("OpensTicket() = %v, want %v", got, tt.opens)
			}
			if got := tt.kind.MayAnswer(); got != tt.answ {
				t.Errorf("MayAnswer() = %v, want %v", got, tt.answ)
			}
		})
	}
}

func TestParseBody(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		isHTML bool
		want   view
	}{
		{
			name: "plain top-posted reply with command",
			body: "\n\nstatus: waiting\nWe ordered the part.\n\nOn Mon, Mar 3, 2025 at 9:00 AM Lee <lee@example.com> wrote:\n> It broke.\n",
			want: view{
				Text:     "status: waiting\nWe ordered the part.\n\nOn Mon, Mar 3, 2025 at 9:00 AM Lee <lee@example.com> wrote:\n> It broke.",
				Reply:    "status: waiting\nWe ordered the part.",
				Commands: []Command{{Name: "status", Value: "waiting", Line: "status: waiting"}},
				Body:     "We ordered the part.",
				Kind:     KindNone,
			},
		},
		{
			name:   "HTML reply with Thunderbird quote",
			body:   `<p>Works now.</p><div class="moz-cite-prefix">On 03.03.2025 10:00, Support wrote:</div><blockquote type="cite">Try again?</blockquote>`,
			isHTML: true,
			want: view{
				Text:  "Works now.\n\nOn 03.03.2025 10:00, Support wrote:\n> Try again?",
				Reply: "Works now.",
				Body:  "Works now.",
				Kind:  KindNone,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := viewOf(ParseBody(tt.body, tt.isHTML))
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseBody mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAttachmentList checks, on the samples in testdata/parts, which parts
// are attachments (RFC 8621 4.1.4), which of them are shown in the body
// where they stand (listed with inline set, so that staff can download a
// pasted screenshot), and the text.
func TestAttachmentList(t *testing.T) {
	tests := []struct {
		file   string
		listed []string // content type and "inline" of Summary().Attachments
		text   string
	}{
		// An image in a mixed multipart is shown where it stands.
		{file: "mixed-inline-image.eml", listed: []string{"image/png inline"}, text: "The error looks like this:\n\nIt appears after login."},
		// In multipart/related only the root is body; the image it
		// refers to by Content-ID is shown by the HTML.
		{file: "related-cid-image.eml", listed: []string{"image/png inline"}, text: "The chart is below."},
		// A named text part after the first is a file, even marked inline.
		{file: "mixed-named-text-inline.eml", listed: []string{"text/plain inline"}, text: "The log is attached."},
		// Media inside an alternative is offered as an attachment; this
		// one is marked inline.
		{file: "alternative-image.eml", listed: []string{"image/jpeg inline"}, text: "A photo of the broken cable."},
		// The first text part is the body even with a name.
		{file: "first-text-with-name.eml", listed: []string{"application/pdf"}, text: "My notes on the outage."},
		// An attached message is an attachment, inline or not.
		{file: "inline-message.eml", listed: []string{"message/rfc822"}, text: "See the vendor's mail below."},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "parts", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			m := Parse(raw, Options{})
			var listed []string
			for _, a := range m.Summary().Attachments {
				s := a.ContentType
				if a.Inline {
					s += " inline"
				}
				listed = append(listed, s)
			}
			if len(m.Summary().Attachments) != len(m.Attachments) {
				t.Errorf("%d attachments listed of %d", len(m.Summary().Attachments), len(m.Attachments))
			}
			got := []any{listed, m.Text}
			want := []any{tt.listed, tt.text}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("[listed text] mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUTF7 checks RFC 2152 UTF-7, which some old clients used for bodies
// and encoded words.
func TestUTF7(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "parts", "utf7.eml"))
	if err != nil {
		t.Fatal(err)
	}
	m := Parse(raw, Options{})
	got := []string{m.From.Name, m.Subject, m.Text}
	want := []string{"Jürgen", "Drucker im Büro", `Der Drucker im Büro druckt nur "Fehler 42". 1+1=2.`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("[from subject text] mismatch (-want +got):\n%s", diff)
	}
	for in, want := range map[string]string{
		"Hi Mom -+Jjo--!":  "Hi Mom -☺-!",
		"+ZeVnLIqe-":       "日本語",
		"A+ImIDkQ.":        "A≢Α.",
		"+2D3cAA-":         "\U0001F400",
		"plus +- and + so": "plus + and + so",
	} {
		if got := decodeUTF7([]byte(in)); got != want {
			t.Errorf("decodeUTF7(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestUTF8LabelledLatin1 checks a body declared ISO-8859-1 whose bytes
// are UTF-8, as mislabelling mailers send it.
func TestUTF8LabelledLatin1(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "parts", "utf8-labelled-latin1.eml"))
	if err != nil {
		t.Fatal(err)
	}
	m := Parse(raw, Options{})
	got := []string{m.Subject, m.Text}
	want := []string{"Café printer", "The printer in the café prints “error 42”."}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("[subject text] mismatch (-want +got):\n%s", diff)
	}
	// Real Latin-1 still reads as Latin-1.
	if got := charsetText([]byte("caf\xe9"), "iso-8859-1", nil); got != "café" {
		t.Errorf("charsetText(latin-1) = %q, want %q", got, "café")
	}
}

// A Shift_JIS display name split across two encoded words in the middle of
// a character decodes as the subject does (bytes joined before decoding).
func TestDisplayNameSplitMultibyte(t *testing.T) {
	sj := []byte{0x8e, 0x52, 0x93, 0x63, 0x91, 0xbe, 0x98, 0x59} // 山田太郎 in Shift_JIS
	w1 := base64.StdEncoding.EncodeToString(sj[:3])
	w2 := base64.StdEncoding.EncodeToString(sj[3:])
	words := "=?shift_jis?B?" + w1 + "?= =?shift_jis?B?" + w2 + "?="
	raw := "From: " + words + " <t@example.jp>\nSubject: " + words + "\n\nhi\n"
	m := Parse([]byte(raw), Options{})
	if m.Subject != "山田太郎" {
		t.Fatalf("subject %q", m.Subject)
	}
	if m.From.Name != "山田太郎" {
		t.Errorf("From name %q, want %q (subject decodes right)", m.From.Name, "山田太郎")
	}
}

// HTML nested deeper than x/net/html accepts (512 open elements, e.g.
// unclosed <font> tags) must still be read as text, not shown as markup.
func TestDeepHTMLReadAsText(t *testing.T) {
	src := "<html><body>" + strings.Repeat("<font color=red>word ", 600) + "</body></html>"
	m := ParseBody(src, true)
	if strings.Contains(m.Text, "<font") || strings.Count(m.Text, "word") != 600 {
		t.Errorf("deep HTML read as %.80q", m.Text)
	}
	// Deeper than the parser goes, with other elements: the text, a line
	// per block.
	m = ParseBody("<html><body>"+strings.Repeat("<div>", 600)+"deep <b>text</b><p>next</p><script>x()</script>", true)
	if want := "deep text\nnext"; m.Text != want {
		t.Errorf("too deep to parse, read as %q, want %q", m.Text, want)
	}
}

// A 40 KB HTML body must not take gigabytes: the parser copies unclosed
// formatting elements with distinct attributes into every paragraph, so
// their tags are dropped first. Allocation is the measure here, not time.
func TestHTMLFormattingElementsStayCheap(t *testing.T) {
	var b strings.Builder
	b.WriteString("<p>")
	for k := 0; k < 400; k++ {
		b.WriteString("<b class=c")
		b.WriteString(strings.Repeat("x", k%7))
		b.WriteString(string(rune('a'+k%26)) + string(rune('a'+k/26)) + ">")
	}
	b.WriteString(strings.Repeat("<p>x", 8000))
	src := b.String()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ParseBody(src, true)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if alloc > 200<<20 {
		t.Errorf("%d bytes of HTML allocated %d MB", len(src), alloc>>20)
	}
}

// TestNestedBoundaryStartingWithOuter: RFC 2046 5.1.1 lets a nested
// multipart's boundary begin with the outer one's text. Its delimiter
// lines ("--outer--inner", "--outer-2") are not the outer close
// delimiter, which is "--outer--" followed only by white space: the outer
// parts after the nested multipart are still read.
func TestNestedBoundaryStartingWithOuter(t *testing.T) {
	for _, inner := range []string{"==b--alt", "==b-2", "==b_alt"} {
		t.Run(inner, func(t *testing.T) {
			raw := "From: Kim <kim@example.com>\nTo: support@ticketd.test\nSubject: Logs\nMIME-Version: 1.0\n" +
				"Content-Type: multipart/mixed; boundary=\"==b\"\n\n" +
				"--==b\nContent-Type: multipart/alternative; boundary=\"" + inner + "\"\n\n" +
				"--" + inner + "\nContent-Type: text/plain\n\nThe logs are attached.\n" +
				"--" + inner + "\nContent-Type: text/html\n\n<p>The logs are attached.</p>\n" +
				"--" + inner + "--\n" +
				"--==b\nContent-Type: text/plain; name=app.log\nContent-Disposition: attachment; filename=app.log\n\nerror 42\n" +
				"--==b--  \n"
			m := Parse([]byte(raw), Options{})
			if m.Text != "The logs are attached." {
				t.Errorf("text %q", m.Text)
			}
			if len(m.Attachments) != 1 || m.Attachments[0].Filename != "app.log" || string(m.Attachments[0].Data) != "error 42" {
				t.Errorf("attachments %+v", m.Attachments)
			}
			for _, p := range m.Problems {
				if strings.Contains(p, "closing boundary missing") {
					t.Errorf("problem %q", p)
				}
			}
		})
	}
}

// A display name in an encoded word that says UTF-8 but holds other bytes
// is still valid UTF-8: its bytes read as windows-1252, as bodies are.
func TestDisplayNameInvalidUTF8Word(t *testing.T) {
	m := Parse([]byte("From: =?UTF-8?B?"+base64.StdEncoding.EncodeToString([]byte("J\xfcrgen"))+"?= <j@example.de>\nSubject: x\n\nhi\n"), Options{})
	if m.From.Name != "Jürgen" || m.From.Address != "j@example.de" {
		t.Errorf("From %+v", m.From)
	}
}

package mailparse

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExtractReply(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		reply     string
		signature string
	}{
		{
			name:  "gmail top-post",
			text:  "Sounds good, thanks.\n\nOn Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\n\n> Your laptop is ready.\n>\n",
			reply: "Sounds good, thanks.",
		},
		{
			name:  "gmail attribution split over two lines",
			text:  "Done.\n\nOn Tue, Mar 4, 2025 at 3:12 PM Support Desk <\nsupport@ticketd.test> wrote:\n\n> Please confirm.\n",
			reply: "Done.",
		},
		{
			name:  "attribution split with wrote on its own line",
			text:  "Yes.\n\nOn Tue, Mar 4, 2025 at 3:12 PM, Support Desk\n<support@ticketd.test>\nwrote:\n\n> Still broken?\n",
			reply: "Yes.",
		},
		{
			name:  "unquoted history after an attribution",
			text:  "Agreed.\n\nOn Wed, Mar 5, 2025 at 8:00 AM Kim <kim@example.com>\nwrote:\n\nThe old text, not quoted by the client.\n",
			reply: "Agreed.",
		},
		{
			name:  "apple mail",
			text:  "Will do.\n\n> On 4 Mar 2025, at 15:12, Support Desk <support@ticketd.test> wrote:\n>\n> Please reboot.\n",
			reply: "Will do.",
		},
		{
			name:  "thunderbird bottom-post",
			text:  "On 04/03/2025 15:12, Support Desk wrote:\n> Please reboot.\n\nRebooted, it works.\n",
			reply: "Rebooted, it works.",
		},
		{
			// The answers need the questions: quotes answered in between
			// stay, their attribution goes.
			name:  "inline answers between quotes",
			text:  "On Tue, Mar 4, 2025 at 3:12 PM Support <support@ticketd.test> wrote:\n> Which model?\n\nThinkPad X1.\n\n> Which year?\n\n2023.\n",
			reply: "> Which model?\n\nThinkPad X1.\n\n> Which year?\n\n2023.",
		},
		{
			name:  "french",
			text:  "Merci beaucoup.\n\nLe mar. 4 mars 2025 à 15:12, Support <support@ticketd.test> a écrit :\n> Bonjour\n",
			reply: "Merci beaucoup.",
		},
		{
			name:  "german",
			text:  "Danke, erledigt.\n\nAm 04.03.2025 um 15:12 schrieb Support <support@ticketd.test>:\n> Hallo\n",
			reply: "Danke, erledigt.",
		},
		{
			name:  "spanish",
			text:  "Gracias.\n\nEl mar, 4 mar 2025 a las 15:12, Soporte (<support@ticketd.test>) escribió:\n> Hola\n",
			reply: "Gracias.",
		},
		{
			name:  "dutch",
			text:  "Bedankt.\n\nOp di 4 mrt 2025 om 15:12 schreef Support <support@ticketd.test>:\n> Hallo\n",
			reply: "Bedankt.",
		},
		{
			name:  "italian",
			text:  "Grazie.\n\nIl giorno mar 4 mar 2025 alle ore 15:12 Support <support@ticketd.test> ha scritto:\n> Ciao\n",
			reply: "Grazie.",
		},
		{
			name:  "polish attribution with napisał(a)",
			text:  "Dziękuję.\n\nDnia 4 mar 2025 o godz. 15:12 Support <support@ticketd.test> napisał(a):\n\nProszę o restart.\n",
			reply: "Dziękuję.",
		},
		{
			name:  "polish attribution with pisze",
			text:  "Dziękuję.\n\nW dniu 2025-03-04 o 15:12, Support pisze:\n\nProszę o restart.\n",
			reply: "Dziękuję.",
		},
		{
			name:  "yandex attribution ending in a colon",
			text:  "Thanks\n\n04.03.2025, 15:12, \"Support\" <support@ticketd.test>:\n> Hello\n",
			reply: "Thanks",
		},
		{
			name:  "outlook original message separator",
			text:  "See attached.\n\n-----Original Message-----\nFrom: Support <support@ticketd.test>\nSent: Tuesday, March 4, 2025 3:12 PM\nTo: Kim\nSubject: Ticket\n\nPlease send the log.\n",
			reply: "See attached.",
		},
		{
			name:  "outlook underscore separator and header block",
			text:  "Fixed.\n\n________________________________\nFrom: Support <support@ticketd.test>\nSent: Tuesday, March 4, 2025 3:12 PM\nTo: Kim\nSubject: Ticket\n\nPlease try again.\n",
			reply: "Fixed.",
		},
		{
			name:  "outlook bold header block without separator",
			text:  "Fixed.\n\n*From:* Support [mailto:support@ticketd.test]\n*Sent:* Tuesday, March 4, 2025 3:12 PM\n*To:* Kim\n*Subject:* Ticket\n\nPlease try again.\n",
			reply: "Fixed.",
		},
		{
			name:  "german outlook header block",
			text:  "Erledigt.\n\nVon: Support <support@ticketd.test>\nGesendet: Dienstag, 4. März 2025 15:12\nAn: Kim\nBetreff: Ticket\n\nBitte neu starten.\n",
			reply: "Erledigt.",
		},
		{
			name:  "french outlook header block",
			text:  "C'est fait.\n\nDe : Support <support@ticketd.test>\nEnvoyé : mardi 4 mars 2025 15:12\nÀ : Kim\nObjet : Ticket\n\nMerci de redémarrer.\n",
			reply: "C'est fait.",
		},
		{
			name:  "spanish outlook header block",
			text:  "Listo.\n\nDe: Support <support@ticketd.test>\nEnviado: martes, 4 de marzo de 2025 15:12\nPara: Kim\nAsunto: Ticket\n\nReinicie.\n",
			reply: "Listo.",
		},
		{
			name:      "iphone signature",
			text:      "On my way.\n\nSent from my iPhone\n\n> On 4 Mar 2025, at 15:12, Support <support@ticketd.test> wrote:\n> Hi\n",
			reply:     "On my way.",
			signature: "Sent from my iPhone",
		},
		{
			name:      "outlook mobile signature",
			text:      "Ok\n\nGet Outlook for Android\n",
			reply:     "Ok",
			signature: "Get Outlook for Android",
		},
		{
			name:      "german mobile signature",
			text:      "Passt.\n\nVon meinem iPhone gesendet\n",
			reply:     "Passt.",
			signature: "Von meinem iPhone gesendet",
		},
		{
			name:  "a sentence that starts like a mobile signature is kept",
			text:  "Here it is.\n\nSent from my desk, where the wifi works.\n",
			reply: "Here it is.\n\nSent from my desk, where the wifi works.",
		},
		{
			name:      "RFC 3676 signature delimiter",
			text:      "The fan is loud.\n\n-- \nKim Lee\nIT, floor 2\n",
			reply:     "The fan is loud.",
			signature: "--\nKim Lee\nIT, floor 2",
		},
		{
			name:  "double dash inside a line is not a delimiter",
			text:  "Fixed it -- the cable was loose.\n\nThanks",
			reply: "Fixed it -- the cable was loose.\n\nThanks",
		},
		{
			name:      "name and contact block",
			text:      "The fan is loud again.\n\nKim Lee\nkim@example.com\n+1 555 010 0199\n",
			reply:     "The fan is loud again.",
			signature: "Kim Lee\nkim@example.com\n+1 555 010 0199",
		},
		{
			name:  "sign-off with a name stays in the reply",
			text:  "The fan is loud again.\n\nThanks,\nKim",
			reply: "The fan is loud again.\n\nThanks,\nKim",
		},
		{
			name:  "forwarded message is kept",
			text:  "Please look at this.\n\n---------- Forwarded message ---------\nFrom: Vendor <v@example.com>\nDate: Tue, Mar 4, 2025\nSubject: Renewal\nTo: Kim <kim@example.com>\n\nYour licence expires.\n",
			reply: "Please look at this.\n\n---------- Forwarded message ---------\nFrom: Vendor <v@example.com>\nDate: Tue, Mar 4, 2025\nSubject: Renewal\nTo: Kim <kim@example.com>\n\nYour licence expires.",
		},
		{
			name:  "mailing list footer",
			text:  "Thanks for the hint.\n\n_______________________________________________\nusers mailing list\nusers@lists.example.org\nhttps://lists.example.org/listinfo/users\n",
			reply: "Thanks for the hint.",
		},
		{
			name:  "a line ending in wrote without date or address is text",
			text:  "Here is what the customer wrote:\nThe screen flickers.\n",
			reply: "Here is what the customer wrote:\nThe screen flickers.",
		},
		{
			name:  "only quoted text",
			text:  "> just a quote\n> nothing new\n",
			reply: "",
		},
		{
			name:  "CRLF input",
			text:  "Yes.\r\n\r\nOn Tue, Mar 4, 2025 at 3:12 PM Support <support@ticketd.test> wrote:\r\n> Ok?\r\n",
			reply: "Yes.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply, sig := ExtractReply(tt.text)
			if diff := cmp.Diff([2]string{tt.reply, tt.signature}, [2]string{reply, sig}); diff != "" {
				t.Errorf("ExtractReply mismatch [reply signature] (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExtractReplyHTML(t *testing.T) {
	tests := []struct {
		name  string
		html  string
		reply string
	}{
		{
			name:  "gmail quote container",
			html:  `<div dir="ltr">All good now.</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Tue, Mar 4, 2025 at 3:12 PM Support &lt;support@ticketd.test&gt; wrote:<br></div><blockquote class="gmail_quote">Is it fixed?</blockquote></div>`,
			reply: "All good now.",
		},
		{
			name:  "outlook web divRplyFwdMsg",
			html:  `<div>Thanks!</div><div id="appendonsend"></div><hr><div id="divRplyFwdMsg"><b>From:</b> Support<br><b>Sent:</b> Tuesday<br><b>To:</b> Kim<br><b>Subject:</b> Ticket</div><div>Old text</div>`,
			reply: "Thanks!",
		},
		{
			name:  "outlook desktop header block after a border div",
			html:  `<p class=MsoNormal>Done.<o:p></o:p></p><div style='border:none;border-top:solid #E1E1E1 1.0pt'><p class=MsoNormal><b>From:</b> Support<br><b>Sent:</b> Tuesday, March 4, 2025 3:12 PM<br><b>To:</b> Kim<br><b>Subject:</b> Ticket</p></div><p>Old text</p>`,
			reply: "Done.",
		},
		{
			name:  "apple mail blockquote type=cite",
			html:  `<div>Yes, please.</div><div><br><blockquote type="cite"><div>On 4 Mar 2025, at 15:12, Support &lt;support@ticketd.test&gt; wrote:</div><div>Shall we?</div></blockquote></div>`,
			reply: "Yes, please.",
		},
		{
			name:  "yahoo quoted",
			html:  `<div>Received, thanks.</div><div class="yahoo_quoted"><div>On Tuesday, March 4, 2025, 03:12:00 PM GMT, Support wrote:</div><div>Here it is.</div></div>`,
			reply: "Received, thanks.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := ParseBody(tt.html, true)
			if diff := cmp.Diff(tt.reply, m.Reply); diff != "" {
				t.Errorf("reply mismatch (-want +got):\n%s\ntext: %q", diff, m.Text)
			}
		})
	}
}

func TestHTMLToText(t *testing.T) {
	tests := []struct {
		name, html, want string
	}{
		{"paragraphs and breaks", "<p>One<br>Two</p><p>Three</p>", "One\nTwo\n\nThree"},
		{"script, style and head dropped", "<html><head><title>T</title><style>p{}</style></head><body><script>x()</script>Body</body></html>", "Body"},
		{"links keep their text", `Read <a href="https://example.com/doc">the doc</a> first.`, "Read the doc first."},
		{"lists", "<ol><li>first</li><li>second</li></ol><ul><li>dot</li></ul>", "1. first\n2. second\n- dot"},
		{"table cells", "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\nc"},
		{"pre keeps spaces", "<pre>x  =  1\n  y</pre>", "x  =  1\n  y"},
		{"entities and nbsp", "Fish&nbsp;&amp;&nbsp;chips &lt;3", "Fish & chips <3"},
		{"blockquote quoted", "Hi<blockquote>old<blockquote>older</blockquote></blockquote>", "Hi\n> old\n>> older"},
		{"hidden preheader dropped", `<div style="display: none">preview</div>Visible`, "Visible"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, htmlToText(tt.html, false)); diff != "" {
				t.Errorf("htmlToText mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseCommands(t *testing.T) {
	tests := []struct {
		name  string
		reply string
		cmds  []Command
		rest  string
	}{
		{
			name:  "colon form",
			reply: "status: completed\nThe disk was replaced.",
			cmds:  []Command{{Name: "status", Value: "completed", Line: "status: completed"}},
			rest:  "The disk was replaced.",
		},
		{
			name:  "hash form, any case, blank lines before and between",
			reply: "\n\n#Priority High\n\nSKILLS: networking, vpn\nnote: called the user\n\nAll set.",
			cmds: []Command{
				{Name: "priority", Value: "High", Line: "#Priority High"},
				{Name: "skills", Value: "networking, vpn", Line: "SKILLS: networking, vpn"},
				{Name: "note", Value: "called the user", Line: "note: called the user"},
			},
			rest: "All set.",
		},
		{
			name:  "unknown name ends the commands",
			reply: "assign: kim@example.com\nsubject: new\nstatus: completed",
			cmds:  []Command{{Name: "assign", Value: "kim@example.com", Line: "assign: kim@example.com"}},
			rest:  "subject: new\nstatus: completed",
		},
		{
			name:  "commands only at the very top",
			reply: "Hello,\nstatus: completed",
			rest:  "Hello,\nstatus: completed",
		},
		{
			name:  "a command needs a value",
			reply: "status:\nok",
			rest:  "status:\nok",
		},
		{
			name:  "hash form needs a space before the value",
			reply: "#statuscompleted",
			rest:  "#statuscompleted",
		},
		{
			name:  "hash form with colon",
			reply: "#assign: kim",
			cmds:  []Command{{Name: "assign", Value: "kim", Line: "#assign: kim"}},
		},
		{
			name: "empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds, rest := ParseCommands(tt.reply)
			if diff := cmp.Diff(tt.cmds, cmds); diff != "" {
				t.Errorf("commands mismatch (-want +got):\n%s", diff)
			}
			if rest != tt.rest {
				t.Errorf("rest = %q, want %q", rest, tt.rest)
			}
		})
	}
}

// TestExtractReplyFiles runs the reply rules on the hand-written bodies in
// testdata/reply, one rule per file.
func TestExtractReplyFiles(t *testing.T) {
	tests := []struct {
		file      string
		reply     string
		signature string
	}{
		{
			file:  "danish-original-message.txt",
			reply: "Hej Ole,\n\nThe printer on floor 3 works again.",
		},
		{
			file:  "unquoted-history-after-colon-attribution.txt",
			reply: "The VPN profile is installed.",
		},
		{
			file:  "verb-before-name-attribution.txt",
			reply: "Hallo,\n\ndas Headset ist angekommen.\n\nViele Grüße\nJana Berg",
		},
		{
			file:  "name-first-attribution-wrapped.txt",
			reply: "Hallo,\n\nJa, das passt.",
		},
		{
			file:  "attribution-date-on-line-above.txt",
			reply: "Thanks, that solved it.",
		},
		{
			file:  "dash-framed-attribution.txt",
			reply: "I will bring the badge tomorrow.",
		},
		{
			file:  "selected-quote-answered.txt",
			reply: "Hi,\n\n> Which laptop model do you have?\n\nA ThinkPad T14, bought in 2023.\n\nBest,\nMira",
		},
		{
			file:  "underscore-line-inside-answer.txt",
			reply: "Here is the first part of my answer.\n\n________________________________________\n\nAnd here is the second part, after a line I drew.\n\nKind regards,\nMira Stone",
		},
		{
			file:  "lone-em-dash.txt",
			reply: "Done 🎉\n\n—\nMira Stone\nOps at Example\n\n@mirastone",
		},
		{
			file:      "mobile-signature-with-link.txt",
			reply:     "The monitor arrived.",
			signature: "Sent from my Pixel <https://example.com/download/mail-app?ref=signature>",
		},
		{
			file:      "outlook-download-line.txt",
			reply:     "The monitor arrived.",
			signature: "Download Outlook for Android<https://example.com/get>",
		},
		{
			file:      "several-mobile-signatures.txt",
			reply:     "Confirmed, thank you.",
			signature: "Envoyé de mon iPhone\n\nVon meinem Tablet gesendet\nSent with Spark\nSent from my Pixel, please excuse typos.\n(sent from a phone)",
		},
		{
			file:      "sign-off-with-contact-block.txt",
			reply:     "Hi,\n\nThe badge still does not open door 4.",
			signature: "Regards,\n\nMira Stone\nFacilities @ Example Corp",
		},
		{
			file:      "contact-card.txt",
			reply:     "The report is attached.",
			signature: "M. Stone, PhD\nFacilities\nmira@example.com\nwww.example.com",
		},
		{
			file:  "link-list-is-text.txt",
			reply: "The report is attached.\n\nUseful links:\nhttps://wiki.example.com/printers\nhttps://status.example.com",
		},
		{
			file:  "sign-off-with-name-only.txt",
			reply: "Hi,\n\nThe badge still does not open door 4.\n\nRegards,\nMira Stone",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "reply", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			reply, sig := ExtractReply(string(b))
			if diff := cmp.Diff([2]string{tt.reply, tt.signature}, [2]string{reply, sig}); diff != "" {
				t.Errorf("ExtractReply mismatch [reply signature] (-want +got):\n%s", diff)
			}
		})
	}
}

// Trailing lines of ordinary data (order number, date, amount) are not a
// signature: the reply must keep them.
func TestReplyKeepsTrailingOrderDetails(t *testing.T) {
	m := ParseBody("Hello,\n\nmy package did not arrive.\n\nOrder number: 123456789\nOrder date: 2024-03-01\n", false)
	if !strings.Contains(m.Reply, "123456789") {
		t.Errorf("order details cut from the reply as a signature:\nreply %q\nsignature %q", m.Reply, m.Signature)
	}
}

// A list of names introduced by a colon is content, not a signature.
func TestReplyKeepsNameList(t *testing.T) {
	m := ParseBody("Hi,\n\nThese users cannot log in since this morning:\n\nAlice Smith\nBob Jones\n", false)
	if !strings.Contains(m.Reply, "Alice Smith") {
		t.Errorf("names after a colon cut as a signature:\nreply %q\nsignature %q", m.Reply, m.Signature)
	}
}

// "In/On ... wrote:" without any date, time or address is a sentence of the
// writer, not an attribution: nothing after it is history.
func TestReplyWroteSentenceIsNotAttribution(t *testing.T) {
	for _, text := range []string{
		"Hi,\n\nIn my previous mail I wrote:\n\nthe server crashes on startup.\n\nAny news?\n",
		"Hi,\n\nOn Friday my colleague wrote:\n\nthe server crashes on startup.\nIs there a fix?\n",
	} {
		m := ParseBody(text, false)
		if !strings.Contains(m.Reply, "crashes on startup") {
			t.Errorf("text after a sentence ending in wrote: cut as history:\nin %q\nreply %q", text, m.Reply)
		}
	}
}

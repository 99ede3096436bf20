package mailparse

import (
	"fmt"
	"strings"
	"testing"
)

// benchMail builds a reply of about size bytes: multipart/alternative
// with a quoted plain part, an HTML part and a small attachment.
func benchMail(size int) []byte {
	var plain, html strings.Builder
	plain.WriteString("status: waiting\nThe replacement part is ordered.\n\nOn Tue, Mar 4, 2025 at 3:12 PM Lee <lee@example.com> wrote:\n")
	html.WriteString("<div>The replacement part is ordered.</div><div class=\"gmail_quote\"><blockquote>")
	for i := 0; plain.Len()+html.Len() < size-900; i++ {
		line := fmt.Sprintf("line %d of the earlier message about the broken device", i)
		plain.WriteString("> " + line + "\n")
		html.WriteString("<p>" + line + "</p>")
	}
	html.WriteString("</blockquote></div>")
	return []byte("From: Kim <kim@example.com>\nTo: support@ticketd.test\nSubject: =?utf-8?q?Re:_Ger=C3=A4t?=\n" +
		"Date: Wed, 5 Mar 2025 10:00:00 +0100\nMessage-ID: <bench@example.com>\nMIME-Version: 1.0\n" +
		"Content-Type: multipart/mixed; boundary=m\n\n--m\nContent-Type: multipart/alternative; boundary=a\n\n" +
		"--a\nContent-Type: text/plain; charset=utf-8\n\n" + plain.String() +
		"--a\nContent-Type: text/html; charset=utf-8\n\n" + html.String() + "\n--a--\n" +
		"--m\nContent-Type: application/octet-stream; name=log.txt\nContent-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQK\n--m--\n")
}

func BenchmarkParse(b *testing.B) {
	for _, size := range []int{1 << 10, 100 << 10} {
		raw := benchMail(size)
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				m := Parse(raw, Options{})
				if m.Reply == "" {
					b.Fatal("no reply")
				}
			}
		})
	}
}

// BenchmarkParseLongSubject: a subject of 128 KB, which the patterns that
// look anywhere in a subject read only the start of.
func BenchmarkParseLongSubject(b *testing.B) {
	raw := []byte("From: Kim <kim@example.com>\nTo: support@ticketd.test\nSubject: " + strings.Repeat("word ", 128<<10/5) +
		"\n\nThe printer is on fire.\n")
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if m := Parse(raw, Options{}); m.Auto.Kind != KindNone {
			b.Fatal(m.Auto.Kind)
		}
	}
}

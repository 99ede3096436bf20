package mailparse

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// autoCase is a mail and the verdict on it.
type autoCase struct {
	name       string
	raw        string
	envelope   *string
	kind       Kind
	recipients []string
}

// mailOf writes a mail: From, To the support desk, Subject, more header
// lines, then the body.
func mailOf(from, subject string, header []string, body string) string {
	h := "From: " + from + "\nTo: support@ticketd.test\nSubject: " + subject + "\nDate: Tue, 04 Mar 2025 15:12:00 +0100\n" +
		"Message-ID: <" + strings.ReplaceAll(strings.Fields(subject + " x")[0], " ", "") + "@mx.example>\n"
	for _, l := range header {
		h += l + "\n"
	}
	return h + "\n" + body
}

func runAutoCases(t *testing.T, cases []autoCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			m := Parse([]byte(tt.raw), Options{EnvelopeFrom: tt.envelope})
			checkMessage(t, m)
			got := []any{m.Auto.Kind, m.Auto.Recipients}
			want := []any{tt.kind, tt.recipients}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("[kind recipients] mismatch (-want +got):\n%s\nreason: %q", diff, m.Auto.Reason)
			}
		})
	}
}

// A delivery report wrapped inside an attached message: the recipients
// come from the report, not from the wrapper's or the report's To.
func TestWrappedDeliveryReport(t *testing.T) {
	dsn := "From: MAILER-DAEMON@mx.example.net\nTo: bounces@relay.example\nSubject: Undelivered Mail Returned to Sender\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n" +
		"--r\nContent-Type: text/plain\n\nThis is the mail system at host mx.example.net.\n" +
		"--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n" +
		"Final-Recipient: rfc822; gone@example.net\nAction: failed\nStatus: 5.1.1\n" +
		"--r--\n"
	runAutoCases(t, []autoCase{
		{
			name: "forwarded by the relay",
			raw: mailOf("postmaster@relay.example", "Undeliverable: Ticket 4411",
				[]string{"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="w"`},
				"--w\nContent-Type: text/plain\n\nThe attached report concerns a message you sent.\n"+
					"--w\nContent-Type: message/rfc822\n\n"+dsn+"--w--\n"),
			kind: KindBounce, recipients: []string{"gone@example.net"},
		},
	})
}

// A folded continuation line of the returned message's header, repeated
// in the notice, names no failed recipient.
func TestBounceFoldedHeaderLine(t *testing.T) {
	runAutoCases(t, []autoCase{
		{
			name: "folded To",
			raw: mailOf("MAILER-DAEMON@mx.example (Mail Delivery System)", "Undelivered Mail Returned to Sender", nil,
				"The following message could not be delivered:\n\n  To: kim@example.net,\n      lee@example.net\n  Subject: Ticket 4411\n\n"+
					"Reason: 550 5.1.1 <kim@example.net>: user unknown\n"),
			kind: KindBounce, recipients: []string{"kim@example.net"},
		},
		{
			name: "folded Cc with a tab",
			raw: mailOf("MAILER-DAEMON@mx.example (Mail Delivery System)", "Undelivered Mail Returned to Sender", nil,
				"Delivery failed for:\n\n<ana@example.org>: mailbox unavailable\n\nCc: team@example.org,\n\tboss@example.org\n"),
			kind: KindBounce, recipients: []string{"ana@example.org"},
		},
	})
}

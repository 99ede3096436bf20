package mailparse

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// replyCase is a reply body and what ExtractReply must make of it.
type replyCase struct {
	name      string
	text      string
	reply     string
	signature string
}

func runReplyCases(t *testing.T, cases []replyCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			reply, sig := ExtractReply(tt.text)
			if diff := cmp.Diff([2]string{tt.reply, tt.signature}, [2]string{reply, sig}); diff != "" {
				t.Errorf("ExtractReply mismatch [reply signature] (-want +got):\n%s", diff)
			}
		})
	}
}

// Invisible tracking glyphs and zero-width characters at the end.
func TestReplyInvisibleTail(t *testing.T) {
	runReplyCases(t, []replyCase{
		{name: "zero-width space after the text", text: "Thanks!\u200b\u200b", reply: "Thanks!"},
		{name: "a line of joiners and marks", text: "Thanks!\n\n\u200c\u200d\u2060\ufeff\u034f\u034f\n\u00ad\n", reply: "Thanks!"},
		{name: "braille and hangul blanks", text: "Thanks!\n\n\u2800\u3164\n", reply: "Thanks!"},
		{name: "before the attribution", text: "Thanks!\n\u200b\nOn Tue, Mar 4, 2025 at 3:12 PM Support <support@ticketd.test> wrote:\n> ok?\n\u200b", reply: "Thanks!"},
		{name: "a joined emoji keeps its joiner", text: "Family trip 👨\u200d👩\u200d👧", reply: "Family trip 👨\u200d👩\u200d👧"},
	})
}

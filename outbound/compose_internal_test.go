package outbound

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/signing"
	"ticketd/tickets"
)

func TestBaseSubject(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "Printer on fire", "Printer on fire"},
		{"one reply prefix", "Re: Printer on fire", "Printer on fire"},
		{"stacked prefixes and tags", "RE: Re: [#42] Fwd: AW: Printer on fire", "Printer on fire"},
		{"our own subject again", "Re: [#42] Printer on fire", "Printer on fire"},
		{"numbered prefix", "Re[2]: Printer on fire", "Printer on fire"},
		{"localised prefixes", "SV: Antw: WG: Printer", "Printer"},
		{"full-width colon", "Re： Printer", "Printer"},
		{"a tag later in the subject stays", "Printer [#42] on fire", "Printer [#42] on fire"},
		{"a word that starts like a prefix", "Report: printer", "Report: printer"},
		{"extra white space", "  Re:   Printer \t on  fire ", "Printer on fire"},
		{"empty", "", "(no subject)"},
		{"only prefixes", "Re: Fwd: ", "(no subject)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := baseSubject(tc.in); got != tc.want {
				t.Errorf("baseSubject(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	if got := ticketSubject(&tickets.Ticket{ID: 42, Subject: "Re: [#42] Re: Printer on fire"}); got != "Re: [#42] Printer on fire" {
		t.Errorf("ticketSubject = %q", got)
	}
}

func TestChain(t *testing.T) {
	e := func(id string, opening, seen bool) tickets.ThreadEntry {
		return tickets.ThreadEntry{MessageID: id, Opening: opening, Seen: seen}
	}
	thread := []tickets.ThreadEntry{
		e("open@x", true, false), e("ack@d", false, true), e("assign@d", false, false),
		e("mod@m", false, false), e("reply@d", false, true), e("bad id@x", false, true),
		e("two@at@x", false, true), e("paren(1)@x", false, true), e("quote\"@x", false, true),
	}
	var long []tickets.ThreadEntry
	for i := range 30 {
		long = append(long, e(fmt.Sprintf("m%d@x", i), i == 0, true))
	}
	for _, tc := range []struct {
		name   string
		thread []tickets.ThreadEntry
		self   string
		parent string
		max    int
		want   []string
	}{
		{"the opening and what the recipient saw", thread, "new@d", "", 20, []string{"open@x", "ack@d", "reply@d"}},
		{"a parent ends the chain, after its ancestors", thread, "new@d", "mod@m", 20, []string{"open@x", "ack@d", "mod@m"}},
		{"a parent the thread does not know is appended", thread, "new@d", "elsewhere@y", 20, []string{"open@x", "ack@d", "reply@d", "elsewhere@y"}},
		{"a mail stored before it is sent is not its own ancestor", thread, "reply@d", "", 20, []string{"open@x", "ack@d"}},
		{"nor when it is in the middle", thread, "ack@d", "", 20, []string{"open@x", "reply@d"}},
		{"nothing seen yet: the opening", thread[:1], "new@d", "", 20, []string{"open@x"}},
		{"an empty thread", nil, "new@d", "", 20, nil},
		{"long chains keep the first and the newest", long, "new@d", "", 5, []string{"m0@x", "m26@x", "m27@x", "m28@x", "m29@x"}},
		{"a chain of one is the parent", thread, "new@d", "mod@m", 1, []string{"mod@m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, chain(tc.thread, tc.self, tc.parent, tc.max)); diff != "" {
				t.Errorf("chain (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOwnAndRobotAddresses(t *testing.T) {
	keys, err := signing.NewKeys("a test secret of enough length")
	if err != nil {
		t.Fatal(err)
	}
	n := NewNotifier(NotifierOptions{SupportAddress: "Support@Desk.example", Aliases: []string{"help@desk.example"}, Keys: keys})
	for _, tc := range []struct {
		addr       string
		own, robot bool
	}{
		{"support@desk.example", true, false},
		{"SUPPORT@desk.example", true, false},
		{"support+abc123@desk.example", true, false},
		{"help@desk.example", true, false},
		{"help+x@desk.example", true, false},
		{"support@other.example", false, false},
		{"supporter@desk.example", false, false},
		{"MAILER-DAEMON@mx.example", false, true},
		{"postmaster@customer.example", false, true},
		{"no-reply@shop.example", false, true},
		{"noreply+tag@shop.example", false, true},
		{"list-request@lists.example", false, true},
		{"owner-list@lists.example", false, true},
		{"bounces+123@mailer.example", false, true},
		{"ann@customer.example", false, false},
		{"replyall@customer.example", false, false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			if got := n.isOwn(tc.addr); got != tc.own {
				t.Errorf("isOwn = %v, want %v", got, tc.own)
			}
			if got := robot(tc.addr); got != tc.robot {
				t.Errorf("robot = %v, want %v", got, tc.robot)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	s := NewSender(SenderOptions{RetryMin: time.Minute, RetryMax: time.Hour})
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {7, 60 * time.Minute}, {50, time.Hour},
	} {
		t.Run(fmt.Sprint("attempt ", tc.attempt), func(t *testing.T) {
			for range 20 {
				got := s.backoff(tc.attempt)
				if lo, hi := tc.want*8/10, tc.want*12/10; got < lo || got > hi {
					t.Fatalf("backoff(%d) = %v, want %v ± 20%%", tc.attempt, got, tc.want)
				}
			}
		})
	}
}

func TestReceiptLineOutcome(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    ReceiptLine
		want string
	}{
		{"applied", ReceiptLine{Applied: true, Field: "status", Old: "In-Progress", New: "Completed"}, "status: In-Progress → Completed"},
		{"already so", ReceiptLine{Applied: true, Field: "priority", Old: "high", New: "high"}, "no change: priority was already high"},
		{"from nothing", ReceiptLine{Applied: true, Field: "assignee", New: "mo@desk.example"}, "assignee: (none) → mo@desk.example"},
		{"refused", ReceiptLine{Reason: "not allowed for your role"}, "refused: not allowed for your role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.outcome(); got != tc.want {
				t.Errorf("outcome = %q, want %q", got, tc.want)
			}
		})
	}
}

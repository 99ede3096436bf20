package e2e

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// copied is an opening mail from mallory copied to n addresses of domain.
func copied(subject, id, domain string, n int) string {
	var cc strings.Builder
	for i := range n {
		if i > 0 {
			cc.WriteString(",\n ")
		}
		fmt.Fprintf(&cc, "victim%05d@%s", i, domain)
	}
	return fmt.Sprintf("From: Mallory <mallory@evil.test>\nTo: support@example.com\nCc: %s\nSubject: %s\nMessage-ID: <%s>\n\nHello everyone, see below.\n",
		cc.String(), subject, id)
}

// TestAttackFanOut replays the amplification attacks against the whole
// stack. A 349 KB mail naming 20,000 addresses used to make 20,000 users;
// a staff reply on a ticket opened with 200 Cc used to queue 201 mails,
// each listing all 200 addresses. Now a ticket has at most
// MAX_PARTICIPANTS (20) people, and each gets a copy addressed to them
// alone.
func TestAttackFanOut(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.ticketd(adminPassword+"\n", "user", "add", "--email", "admin@example.com", "--role", "admin", "--name", "Ada Admin", "--password-stdin")

	users0 := s.count(`SELECT count(*) FROM users`)
	big := copied("Twenty thousand", "big-1@evil.test", "many.test", 20000)
	if len(big) < 340<<10 {
		t.Fatalf("the mail has %d bytes, want the report's 349 KB", len(big))
	}
	s.sendSMTP("mallory@evil.test", []string{supportAddr}, big)
	s.sendSMTP("mallory@evil.test", []string{supportAddr}, copied("Two hundred", "cc200-1@evil.test", "victims.test", 200))
	var bigTicket, ccTicket ticketRow
	s.eventually("both tickets triaged", 90*time.Second, func() error {
		var err error
		if bigTicket, err = s.ticketBySubject("Twenty thousand"); err != nil {
			return err
		}
		if ccTicket, err = s.ticketBySubject("Two hundred"); err != nil {
			return err
		}
		if bigTicket.Status != "in_progress" || ccTicket.Status != "in_progress" {
			return fmt.Errorf("not triaged: %+v %+v", bigTicket, ccTicket)
		}
		return nil
	})
	s.settle()
	// Mallory, and 19 + 19 people copied.
	if n := s.count(`SELECT count(*) FROM users`) - users0; n != 1+19+19 {
		t.Errorf("%d users made, want 39", n)
	}
	for _, tk := range []ticketRow{bigTicket, ccTicket} {
		if n := s.count(`SELECT count(*) FROM ticket_participants WHERE ticket_id = $1`, tk.ID); n != 19 {
			t.Errorf("ticket %q has %d people copied, want 19", tk.Subject, n)
		}
	}
	if n := s.count(`SELECT total FROM ticket_people_not_added WHERE ticket_id = $1`, bigTicket.ID); n != 20000-19 {
		t.Errorf("%d addresses listed as not added, want %d", n, 20000-19)
	}
	web := signInWeb(t, "http://"+s.httpAddr, "admin@example.com", adminPassword)
	path := "/tickets/" + strconv.FormatInt(ccTicket.ID, 10)
	page := web.get(t, path)
	if !strings.Contains(page, "181 more addresses of the opening mail") {
		t.Errorf("the ticket page does not list the people not added")
	}

	// One staff reply: 20 mails, each to one person, naming no other.
	before := len(s.sink.all())
	nonce := nonceRe.FindStringSubmatch(page)
	if nonce == nil {
		t.Fatal("no nonce on the ticket page")
	}
	web.post(t, path+"/reply", page, url.Values{"body": {"We are looking into it."}, "nonce": {nonce[1]}})
	s.eventually("the reply's copies at the relay", 60*time.Second, func() error {
		if n := len(s.sink.all()) - before; n < 20 {
			return fmt.Errorf("%d copies", n)
		}
		return nil
	})
	s.settle()
	copies := s.sink.all()[before:]
	if len(copies) != 20 {
		t.Fatalf("one reply queued %d mails, want 20", len(copies))
	}
	for _, m := range copies {
		if len(m.To) != 1 || m.Hdr.Get("Cc") != "" || addrOf(m.Hdr.Get("To")) != m.To[0] {
			t.Errorf("a copy to %v has To %q Cc %q", m.To, m.Hdr.Get("To"), m.Hdr.Get("Cc"))
		}
		if n := strings.Count(string(m.Data), "@victims.test"); n > 1 {
			t.Errorf("the copy to %v names %d people", m.To, n)
		}
	}
}

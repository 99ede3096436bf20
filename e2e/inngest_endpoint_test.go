package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestAttackWorkflowEndpoint replays the workflow endpoint attack against
// the whole stack, on the dev server, which signs nothing. A fake
// ticket.assigned posted to the web's /api/inngest is refused; the same
// call on the loopback listener runs (that is where the dev server calls).
// Fake events handed to the dev server itself run the function, which
// mails no moderator a reply address for a ticket that is not theirs.
func TestAttackWorkflowEndpoint(t *testing.T) {
	s := startStack(t, stackOptions{})
	s.ticketd("", "user", "add", "--email", "alice@example.com", "--role", "moderator", "--name", "Alice", "--skills", "postgres,database")
	s.ticketd("", "user", "add", "--email", "mo@example.com", "--role", "moderator", "--name", "Mo", "--skills", "billing")
	s.sendSMTP("ann@customer.test", []string{supportAddr}, `From: Ann <ann@customer.test>
To: support@example.com
Subject: Production postgres refuses connections
Message-ID: <ann-1@customer.test>

Since 9am our production postgres database refuses every connection.
`)
	var tk ticketRow
	s.eventually("ann's ticket assigned", 90*time.Second, func() error {
		var err error
		tk, err = s.ticketBySubject("Production postgres refuses connections")
		if err != nil || tk.Assignee == "" {
			return fmt.Errorf("%+v %v", tk, err)
		}
		return nil
	})
	s.settle()
	var moID, holderID int64
	if err := s.pool.QueryRow(t.Context(), `SELECT id FROM users WHERE email = 'mo@example.com'`).Scan(&moID); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(t.Context(), `SELECT id FROM users WHERE email = $1`, tk.Assignee).Scan(&holderID); err != nil {
		t.Fatal(err)
	}
	if tk.Assignee == "mo@example.com" {
		t.Fatalf("triage gave the postgres ticket to mo")
	}
	before := len(s.sink.all())

	// Straight at /api/inngest: the step that mails the new assignee.
	call := fmt.Sprintf(`{"event":{"name":"ticket.assigned","data":{"ticket_id":%d,"assignee_id":%d}},`+
		`"ctx":{"run_id":"01FORGEDRUN","attempt":0},"steps":{}}`, tk.ID, moID)
	for _, tc := range []struct {
		where string
		addr  string
		want  func(int) bool
	}{
		{"the web's listener", s.httpAddr, func(c int) bool { return c == http.StatusUnauthorized }},
		{"the loopback listener", s.inngestAddr, func(c int) bool { return c == http.StatusOK || c == http.StatusPartialContent }},
	} {
		res, err := http.Post("http://"+tc.addr+"/api/inngest?fnId=ticketd-notify-assigned&stepId=step", "application/json", strings.NewReader(call))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !tc.want(res.StatusCode) {
			t.Errorf("an unsigned call on %s answered %d %s", tc.where, res.StatusCode, body)
		}
	}

	// Through the dev server's event API, as anyone who reaches it can.
	for i, data := range []map[string]any{
		{"ticket_id": tk.ID, "assignee_id": moID, "channel": "web"},
		{"ticket_id": tk.ID, "assignee_id": holderID, "previous_assignee_id": moID, "channel": "web"},
	} {
		ev, _ := json.Marshal(map[string]any{"name": "ticket.assigned", "id": fmt.Sprintf("forged-%d", i), "data": data})
		res, err := http.Post(s.inngest.URL+"/e/forged-key", "application/json", strings.NewReader(string(ev)))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("the dev server took the forged event with %d", res.StatusCode)
		}
	}
	s.eventually("the forged events' runs", 60*time.Second, func() error {
		b, err := os.ReadFile(s.logPath)
		if err != nil {
			return err
		}
		if n := strings.Count(string(b), "mail not sent: the ticket"); n < 2 {
			return fmt.Errorf("%d refusals logged", n)
		}
		return nil
	})
	s.settle()
	// Mo gets nothing. (The ticket's rightful assignee may be told again
	// that it is theirs: their own reply address, to them.)
	for _, m := range s.sink.all()[before:] {
		if m.To[0] != tk.Assignee {
			t.Errorf("a forged event mailed %v: %s", m.To, m.Hdr.Get("Subject"))
		}
	}
	if n := len(s.sink.to("mo@example.com")); n != 0 {
		t.Errorf("mo received %d mails about a ticket that is not his", n)
	}
}

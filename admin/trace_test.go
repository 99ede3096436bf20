package admin_test

import (
	"context"
	"strings"
	"testing"

	"ticketd/inbound"
)

// TestTicketPageShowsTraces: staff see, under each mailed message, what
// intake did with it and what followed; the requester's portal never
// shows it.
func TestTicketPageShowsTraces(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	raw := "From: Rita Requester <req@example.com>\r\nTo: " + support + "\r\nSubject: Printer on fire\r\n" +
		"Message-ID: <traced@example.com>\r\nDate: Mon, 02 Mar 2026 10:00:00 +0100\r\n\r\nThe printer on floor 3 is on fire.\r\n"
	res, err := e.intake.Deliver(ctx, []byte(raw), inbound.Source{Kind: "smtp", RemoteAddr: "192.0.2.7:40000",
		ConnID: "c9-1", MailFrom: "req@example.com", RcptTo: []string{support}})
	if err != nil {
		t.Fatal(err)
	}

	staff := e.client()
	staff.signIn(e.admin)
	page := staff.get("/tickets/" + itoa(res.TicketID))
	if page.StatusCode != 200 {
		t.Fatalf("ticket page: %d", page.StatusCode)
	}
	for _, want := range []string{
		`<details class="trace">`,
		"by SMTP from 192.0.2.7:40000 (cid c9-1)",
		"no ticket matched: opened ticket #" + itoa(res.TicketID),
		`<dt>rule</dt><dd>new</dd>`,
		"event #",
		"ticket.created",
		"triage: no decision yet",
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the staff page lacks %q", want)
		}
	}

	req := e.client()
	req.signInLink(e.req, res.TicketID)
	portal := req.get("/portal/tickets/" + itoa(res.TicketID))
	if portal.StatusCode != 200 || !strings.Contains(portal.body, "The printer on floor 3 is on fire.") {
		t.Fatalf("portal page: %d", portal.StatusCode)
	}
	if strings.Contains(portal.body, "trace") || strings.Contains(portal.body, "192.0.2.7") {
		t.Error("the requester's portal shows the trace")
	}
}

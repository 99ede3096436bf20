package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"ticketd/inbound"
)

// TestTicketPageListsPeopleNotAdded: the addresses of an opening mail past
// the limit of people are on the ticket's page, as not added.
func TestTicketPageListsPeopleNotAdded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var cc []string
	for i := range 25 {
		cc = append(cc, fmt.Sprintf("p%02d@cc.example", i))
	}
	raw := "From: Rita <req@example.com>\r\nTo: " + support + "\r\nCc: " + strings.Join(cc, ", ") +
		"\r\nSubject: Many people\r\nMessage-ID: <many@example.com>\r\n\r\nHello all.\r\n"
	res, err := e.intake.Deliver(context.Background(), []byte(raw), inbound.Source{Kind: "smtp", RcptTo: []string{support}})
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.signIn(e.admin)
	page := c.get("/tickets/" + itoa(res.TicketID)).body
	if !strings.Contains(page, "6 more addresses of the opening mail: a ticket has at most 20 people") ||
		!strings.Contains(page, "p19@cc.example") || !strings.Contains(page, "p24@cc.example") {
		t.Fatalf("the page does not list the people not added:\n%s", page)
	}
}

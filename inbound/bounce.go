package inbound

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"ticketd/signing"
	"ticketd/tickets"
)

// returnToken is a return path of ticketd's mail (bounces+<token>@domain)
// found among a mail's recipients.
type returnToken struct {
	addr   string
	claims signing.Claims // filled when err is nil
	err    error          // why the token proves nothing
}

// maxReportedRecipients bounds the recipients of one report that are
// looked at: a return path names one recipient.
const maxReportedRecipients = 20

// returnTokens verifies every sub-address of the bounce mailbox among the
// envelope recipients, To and Cc (a report's To is the return path it was
// sent to, RFC 3464 2.2), each once.
func (in *Intake) returnTokens(d *delivery) []returnToken {
	var out []returnToken
	seen := map[string]bool{}
	all := append(append(append([]string(nil), d.src.RcptTo...), addresses(d.m.To)...), addresses(d.m.Cc)...)
	for _, a := range all {
		a = tickets.NormalizeEmail(clean(a))
		tok, ok := signing.TokenFromAddress(in.bounce, a)
		if !ok || seen[tok] {
			continue
		}
		seen[tok] = true
		c, err := in.opt.Keys.Verify(signing.PurposeBounce, tok, d.now)
		out = append(out, returnToken{addr: a, claims: c, err: err})
	}
	return out
}

// toReturnPathOnly reports whether the mail was sent to ticketd's bounce
// mailbox alone, by the envelope: mail that only delivery reports should
// use, which never opens a ticket.
func (in *Intake) toReturnPathOnly(d *delivery) bool {
	if len(d.src.RcptTo) == 0 {
		return false
	}
	for _, r := range d.src.RcptTo {
		a := tickets.NormalizeEmail(clean(r))
		if _, ok := signing.TokenFromAddress(in.bounce, a); !ok && a != in.bounce {
			return false
		}
	}
	return true
}

// validReturn is the first return path of the mail whose token is valid,
// or nil.
func (d *delivery) validReturn() *returnToken {
	for i := range d.returned {
		if d.returned[i].err == nil {
			return &d.returned[i]
		}
	}
	return nil
}

// believeBounce decides whether a bounce marks an address bouncing. It is
// believed only when it came back to the return path of a mail ticketd
// sent (a valid token naming the outbox mail), from the null reverse-path
// that delivery reports are sent from (RFC 3464 2, RFC 5321 4.5.5), and
// names that mail's recipient. Anything else that looks like a bounce (an
// X-Failed-Recipients field, a report sent to the support address) is
// stored and classified as ever, and marks nobody.
func (p *process) believeBounce(ctx context.Context) error {
	d := p.d
	none := func(why string) error {
		p.tr.annotate(StepClassified, kv("marked_bouncing", "none: "+why))
		return nil
	}
	ret := d.validReturn()
	switch {
	case ret == nil && len(d.returned) > 0:
		return none(fmt.Sprintf("the return path %s is not valid (%v)", d.returned[0].addr, d.returned[0].err))
	case ret == nil:
		return none("the report did not come back to the return path of a mail ticketd sent")
	case d.src.Kind != "smtp" && d.src.Kind != "imap":
		return none("a report comes by mail, not by the " + d.src.Kind)
	case d.src.Kind == "smtp" && d.src.MailFrom != "":
		return none("a delivery report comes from the null reverse-path <>, this came from <" + d.src.MailFrom + ">")
	case d.src.Kind == "imap" && d.m.ReturnPath != "":
		return none("a delivery report comes from the null reverse-path <>, this came from <" + d.m.ReturnPath + ">")
	}
	p.tr.annotate(StepClassified, kv("return_path", fmt.Sprintf("mail #%d, made for user #%d", ret.claims.MailID, ret.claims.UserID)))
	rcpts := d.m.Auto.Recipients
	if len(rcpts) > maxReportedRecipients {
		rcpts = rcpts[:maxReportedRecipients]
	}
	var whys []string
	for _, a := range rcpts {
		v, err := p.st.BelieveBounce(ctx, tickets.ReturnedReport{
			MailID: ret.claims.MailID, UserID: ret.claims.UserID, Address: clean(a), RawMessageID: p.rawID,
			Detail: clean(fmt.Sprintf("report <%s> from %s: %s", d.headerID, d.sender.Address, d.m.Auto.Reason)),
		})
		if err != nil {
			return err
		}
		if v.Marked {
			p.in.log.Info("address marked bouncing", "address", v.Email, "header_message_id", d.headerID)
			p.tr.annotate(StepClassified, kv("marked_bouncing", v.Email))
			return nil
		}
		whys = append(whys, v.Why)
	}
	if len(whys) == 0 {
		return none("the report names no recipient")
	}
	return none(strings.Join(whys, "; "))
}

// threadReturnPath finds the ticket of an automatic mail that came back to
// a valid return path of a ticket's mail, when nothing else threaded it.
func (p *process) threadReturnPath(ctx context.Context) (*tickets.Ticket, string, error) {
	ret := p.d.validReturn()
	if ret == nil || ret.claims.TicketID == 0 {
		return nil, "", nil
	}
	t, err := p.st.TicketForUpdate(ctx, ret.claims.TicketID)
	if errors.Is(err, tickets.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	p.note("return_path", fmt.Sprintf("made for mail #%d of ticket #%d", ret.claims.MailID, t.ID))
	p.threaded(fmt.Sprintf("to ticket #%d by %s", t.ID, ruleText(RuleReturnPath)), RuleReturnPath, t.ID)
	return &t, RuleReturnPath, nil
}

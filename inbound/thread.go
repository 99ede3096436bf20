package inbound

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"ticketd/signing"
	"ticketd/tickets"
)

// replyToken is a signed reply address found among a mail's recipients.
type replyToken struct {
	addr   string
	claims signing.Claims // filled when the signature and purpose check out
	err    error          // nil, signing.ErrExpired, or why the token is not ticketd's
}

// authentic reports whether ticketd made the token for a reply, expired or
// not: its ticket is a fact, even when it no longer authorises commands.
func (t *replyToken) authentic() bool {
	return t != nil && (t.err == nil || errors.Is(t.err, signing.ErrExpired))
}

// replyTokens verifies every sub-address of the support address among the
// envelope recipients, To and Cc, in that order, each once.
func (in *Intake) replyTokens(d *delivery) []replyToken {
	var out []replyToken
	seen := map[string]bool{}
	var all []string
	all = append(all, d.src.RcptTo...)
	all = append(all, addresses(d.m.To)...)
	all = append(all, addresses(d.m.Cc)...)
	for _, a := range all {
		a = tickets.NormalizeEmail(clean(a))
		tok, ok := signing.TokenFromAddress(in.support, a)
		if !ok || seen[tok] {
			continue
		}
		seen[tok] = true
		c, err := in.opt.Keys.Verify(signing.PurposeReply, tok, d.now)
		t := replyToken{addr: a, err: err}
		if err == nil || errors.Is(err, signing.ErrExpired) {
			t.claims = c
		}
		out = append(out, t)
	}
	return out
}

// subjectTag finds [#<id>] tags in a subject, as ticketd writes them.
var subjectTag = regexp.MustCompile(`\[#(\d{1,18})\]`)

// maxThreadIDs bounds how many References are looked up: the newest ones
// are the ones that find a ticket.
const maxThreadIDs = 30

// thread finds the ticket a mail belongs to and locks it, in the order of
// DESIGN.md: (1) a signed reply address among the recipients, preferring
// one made for the sender; (2) In-Reply-To, then References newest first,
// against every Message-ID ticketd stored or sent; (3) a [#<id>] subject tag
// when the sender is a participant of that ticket. It returns a nil ticket
// when none matches, and the token that threaded the mail by rule 1.
func (p *process) thread(ctx context.Context) (*tickets.Ticket, string, *replyToken, error) {
	d, st := p.d, p.st
	// (1) Signed reply addresses.
	var cands []*replyToken
	for i := range d.tokens {
		if d.tokens[i].authentic() {
			cands = append(cands, &d.tokens[i])
		} else {
			p.note("ignored_reply_address", d.tokens[i].addr+": "+d.tokens[i].err.Error())
		}
	}
	if len(cands) > 1 {
		fromUser, err := p.fromUser(ctx)
		if err != nil {
			return nil, "", nil, err
		}
		if fromUser != nil {
			slices.SortStableFunc(cands, func(a, b *replyToken) int {
				am, bm := a.claims.UserID == fromUser.ID, b.claims.UserID == fromUser.ID
				switch {
				case am && !bm:
					return -1
				case bm && !am:
					return 1
				}
				return 0
			})
		}
	}
	for _, c := range cands {
		t, err := st.TicketForUpdate(ctx, c.claims.TicketID)
		if errors.Is(err, tickets.ErrNotFound) {
			p.note("ignored_reply_address", fmt.Sprintf("%s: made for ticket #%d, which does not exist", c.addr, c.claims.TicketID))
			continue
		}
		if err != nil {
			return nil, "", nil, err
		}
		made := fmt.Sprintf("made for user #%d on ticket #%d", c.claims.UserID, c.claims.TicketID)
		if errors.Is(c.err, signing.ErrExpired) {
			made += ", expired (it still threads; it authorises no commands)"
		}
		p.note("reply_address", c.addr)
		p.note("token", made)
		return &t, RuleReplyAddress, c, nil
	}

	// (2) RFC 5322 3.6.4: In-Reply-To names the parent; References lists
	// the thread, oldest first, so the newest comes last.
	var ids []string
	seen := map[string]bool{}
	add := func(id string) {
		if id = clean(id); id != "" && !seen[id] && len(ids) < maxThreadIDs {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	add(d.m.InReplyTo)
	for i := len(d.m.References) - 1; i >= 0; i-- {
		add(d.m.References[i])
	}
	// The Message-ID of a mail ticketd received was chosen by its sender,
	// who can send it to others first: a stranger answering it would be
	// answered in that sender's ticket. It threads only someone on the
	// ticket; for anyone else only the ids of mails ticketd sent count.
	for sentOnly := false; len(ids) > 0; sentOnly = true {
		t, matched, chosen, err := st.LockTicketByMessageIDs(ctx, ids, sentOnly)
		if errors.Is(err, tickets.ErrNotFound) {
			if !sentOnly {
				p.note("message_ids", fmt.Sprintf("none of the %d Message-IDs of In-Reply-To and References is a mail ticketd received or sent", len(ids)))
			}
			break
		}
		if err != nil {
			return nil, "", nil, err
		}
		ok, err := p.mayFollow(ctx, t, chosen)
		if err != nil {
			return nil, "", nil, err
		}
		if ok {
			rule := RuleReferences
			if matched == clean(d.m.InReplyTo) {
				rule = RuleInReplyTo
			}
			p.note("matched", "<"+matched+">, a mail of ticket #"+strconv.FormatInt(t.ID, 10))
			return &t, rule, nil, nil
		}
		p.note("ignored_message_id", fmt.Sprintf("<%s>: a mail ticket #%d received, and the sender is not on that ticket", matched, t.ID))
	}

	// (3) A subject tag counts only from someone already on the ticket:
	// anybody can write [#12] into a subject.
	if d.sender.Address != "" {
		for _, m := range subjectTag.FindAllStringSubmatch(d.m.Subject, 5) {
			id, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				continue
			}
			ok, err := st.IsParticipant(ctx, id, d.sender.Address)
			if err != nil {
				return nil, "", nil, err
			}
			if !ok {
				p.note("ignored_subject_tag", m[0]+": the sender is not on that ticket")
				continue
			}
			t, err := st.TicketForUpdate(ctx, id)
			if errors.Is(err, tickets.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, "", nil, err
			}
			p.note("subject_tag", m[0])
			return &t, RuleSubjectTag, nil, nil
		}
	}
	return nil, RuleNew, nil, nil
}

// quotedMsgID finds msg-ids (RFC 5322 3.6.4) written anywhere.
var quotedMsgID = regexp.MustCompile(`<([^<>\s"@]{1,200}@[^<>\s"@]{1,200})>`)

// maxReportScan bounds how much of a report's body is searched for the
// Message-ID of the mail it reports on.
const maxReportScan = 1 << 20

// threadReport finds the ticket of a report that names no parent in its
// header: a delivery status notification returns the original message or
// its header (RFC 3464 2, RFC 6522 3), a read receipt names it in
// Original-Message-ID (RFC 8098 3.2.5), and many auto-replies quote it.
// The Message-IDs in the body are looked up like References.
func (p *process) threadReport(ctx context.Context) (*tickets.Ticket, string, error) {
	body := p.d.raw
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := bytes.Index(body, []byte(sep)); i >= 0 {
			body = body[i+len(sep):]
			break
		}
	}
	if len(body) > maxReportScan {
		body = body[:maxReportScan]
	}
	var ids []string
	seen := map[string]bool{p.d.headerID: true}
	for _, m := range quotedMsgID.FindAllSubmatch(body, 200) {
		id := clean(string(m[1]))
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
		if len(ids) == maxThreadIDs {
			break
		}
	}
	if len(ids) == 0 {
		return nil, "", nil
	}
	t, matched, _, err := p.st.LockTicketByMessageIDs(ctx, ids, false)
	if errors.Is(err, tickets.ErrNotFound) {
		p.note("report_message_ids", fmt.Sprintf("none of the %d Message-IDs the report quotes is ticketd's", len(ids)))
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	p.note("matched", "<"+matched+">, quoted in the report, a mail of ticket #"+strconv.FormatInt(t.ID, 10))
	p.threaded(fmt.Sprintf("to ticket #%d by %s", t.ID, ruleText(RuleReport)), RuleReport, t.ID)
	return &t, RuleReport, nil
}

// mayFollow reports whether the mail may join ticket t by a Message-ID of
// it: always one ticketd made (chosen false), and one a sender chose only
// from the ticket's requester or a person on it. (Staff answer from their
// signed reply addresses.)
func (p *process) mayFollow(ctx context.Context, t tickets.Ticket, chosen bool) (bool, error) {
	if !chosen || p.d.sender.Address == "" {
		return !chosen, nil
	}
	return p.st.IsParticipant(ctx, t.ID, p.d.sender.Address)
}

// note keeps a fact of threading for the trace.
func (p *process) note(key, value string) {
	if p.tr != nil {
		p.threadNotes = append(p.threadNotes, kv(key, value))
	}
}

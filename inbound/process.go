package inbound

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"ticketd/inbound/mailparse"
	"ticketd/tickets"
)

// process is one delivery inside its transaction, after the raw bytes are
// stored and the mail is known not to be a duplicate.
type process struct {
	in    *Intake
	d     *delivery
	tx    *tickets.IntakeTx
	st    *tickets.Store
	rawID int64
	msgID string // the Message-ID the messages row gets
	ids   reservedIDs

	sender       *tickets.User // see fromUser
	senderLooked bool

	tr          *tracer
	threadNotes []tickets.TraceField // what threading tried and why it passed over it

	// events are the events this delivery queued itself; eventsElsewhere
	// is set once other code (a status change, a command, a notifier)
	// may have queued some too, and the trace then reads them back.
	events          []tickets.TraceEvent
	eventsElsewhere bool
}

// reservedIDs are ids taken from their sequences for the rows this
// delivery writes without reading them back; 0 when not taken (yet).
type reservedIDs struct {
	message, event, ticket int64
}

// take returns the reserved id in *id, or one taken now from table's
// sequence, and forgets it, so that each is used once.
func (p *process) take(ctx context.Context, id *int64, table string) (int64, error) {
	v := *id
	*id = 0
	if v != 0 {
		return v, nil
	}
	return p.st.ReserveID(ctx, table)
}

// writesElsewhere notes that code other than the delivery's own (a status
// change, a command, a notifier) is about to write in its transaction, and
// may queue events and mails.
func (p *process) writesElsewhere() {
	p.eventsElsewhere = true
	p.tx.Notify(tickets.EventsChannel)
	p.tx.Notify(tickets.MailOutboxChannel)
}

// enqueue queues an event of the delivery.
func (p *process) enqueue(ctx context.Context, name string, ticketID int64, data any) error {
	id, err := p.take(ctx, &p.ids.event, "event_outbox")
	if err != nil {
		return err
	}
	if err := p.st.QueueEvent(ctx, id, name, ticketID, data); err != nil {
		return err
	}
	p.events = append(p.events, tickets.TraceEvent{ID: id, Name: name})
	p.tx.Notify(tickets.EventsChannel)
	return nil
}

func (p *process) run(ctx context.Context) (Result, error) {
	d := p.d
	if d.sender.Address == "" {
		return p.quarantine(ctx, d.m.Auto.Kind, "no usable sender address: From, Sender, Reply-To, Return-Path and the envelope sender are missing or unreadable")
	}
	if p.in.isOwn(d.sender.Address) {
		// Mail from our own address is our own mail coming back: never
		// a ticket, never answered (RFC 3834 2: avoid mail loops).
		return p.quarantine(ctx, d.m.Auto.Kind, "sent from ticketd's own address "+d.sender.Address+" (a mail loop)")
	}
	if v := d.verdict; v != nil && (v.DMARC.MultipleFrom || v.Enforced() != "") {
		// RFC 7489 6.6.1 and 6.3: a mail whose author cannot be told,
		// or whose From domain asks that mail failing DMARC be
		// rejected or quarantined, opens nothing and reaches no
		// ticket; an admin may read it in the quarantine.
		reason := "the From address " + d.sender.Address + " fails DMARC, and " + v.DMARC.From +
			" asks that such mail be " + map[string]string{"reject": "rejected", "quarantine": "quarantined"}[v.Enforced()]
		if v.DMARC.MultipleFrom {
			reason = "the mail names more than one From address (RFC 5322 3.6.2): whose it is cannot be told"
		}
		return p.quarantine(ctx, d.m.Auto.Kind, reason+" ("+v.Summary()+")")
	}
	t, rule, tok, err := p.thread(ctx)
	if err != nil {
		return Result{}, err
	}
	if t != nil {
		p.threaded(fmt.Sprintf("to ticket #%d by %s", t.ID, ruleText(rule)), rule, t.ID)
	}

	kind, reason := d.m.Auto.Kind, d.m.Auto.Reason
	// An automatic mail that answers one of ours (Exchange's "Automatic
	// reply" says auto-generated; a no-reply notice says nothing) is an
	// auto-reply.
	why, err := answersOwnMail(ctx, p.st, d.m, kind, rule)
	if err != nil {
		return Result{}, err
	}
	if why != "" {
		kind, reason = mailparse.KindAutoReply, reason+"; "+why
		p.tr.annotate(StepClassified, kv("reclassified", "auto-reply: "+why))
	}
	if kind == mailparse.KindBounce {
		if err := p.believeBounce(ctx); err != nil {
			return Result{}, err
		}
	}
	if !kind.OpensTicket() {
		// RFC 3834 2: reports and auto-replies are never answered; they
		// are kept on the ticket they answer, or held for an admin.
		if t == nil {
			if t, rule, err = p.threadReport(ctx); err != nil {
				return Result{}, err
			}
		}
		if t == nil {
			if t, rule, err = p.threadReturnPath(ctx); err != nil {
				return Result{}, err
			}
		}
		if t == nil {
			return p.quarantine(ctx, kind, reason+"; it matches no ticket")
		}
		fromUser, err := p.fromUser(ctx)
		if err != nil {
			return Result{}, err
		}
		return p.system(ctx, t, rule, kind, fromUser)
	}
	if t == nil {
		switch {
		case p.in.toReturnPathOnly(d):
			// A return path takes delivery reports; whatever else comes
			// to it opens nothing and is never answered.
			return p.quarantine(ctx, kind, "sent only to ticketd's return path, which takes delivery reports, not requests")
		case kind == mailparse.KindAutoGenerated && p.in.opt.QuarantineAutoGenerated:
			return p.quarantine(ctx, kind, reason+"; automatic mail is held, not opened as a ticket")
		case kind == mailparse.KindBulk && p.in.opt.QuarantineBulk:
			return p.quarantine(ctx, kind, reason+"; bulk mail is held, not opened as a ticket")
		}
		return p.open(ctx, kind, nil, RuleNew)
	}
	fromUser, err := p.fromUser(ctx)
	if err != nil {
		return Result{}, err
	}
	return p.reply(ctx, t, rule, kind, fromUser, tok)
}

// fromUser returns the user with the sender's address, nil when ticketd
// does not know them; it is looked up once, when needed.
func (p *process) fromUser(ctx context.Context) (*tickets.User, error) {
	if p.senderLooked {
		return p.sender, nil
	}
	u, err := p.st.UserByEmail(ctx, p.d.sender.Address)
	switch {
	case err == nil:
		p.sender = &u
	case !errors.Is(err, tickets.ErrNotFound):
		return nil, err
	}
	p.senderLooked = true
	return p.sender, nil
}

// requester returns the sender as a user, creating a requester when
// ticketd does not know them and filling in their name when it was empty
// (EnsureRequester); a known sender is not written to again.
func (p *process) requester(ctx context.Context) (tickets.User, error) {
	u, err := p.fromUser(ctx)
	if err != nil {
		return tickets.User{}, err
	}
	if u != nil && (u.Name != "" || p.d.sender.Name == "") {
		return *u, nil
	}
	nu, err := p.st.EnsureRequester(ctx, p.d.sender.Address, p.d.sender.Name)
	if err != nil {
		return tickets.User{}, err
	}
	p.sender, p.senderLooked = &nu, true
	return nu, nil
}

// threaded records where threading took the mail, with what it tried.
func (p *process) threaded(summary, rule string, ticketID int64) {
	f := []tickets.TraceField{kv("rule", rule)}
	if ticketID != 0 {
		f = append(f, kvID("ticket", ticketID))
	}
	p.tr.add(StepThreaded, summary, append(f, p.threadNotes...)...)
}

// stored records the message a mail became.
func (p *process) stored(msg tickets.Message, summary, replyFrom string) {
	f := []tickets.TraceField{kvID("message", msg.ID), kvID("ticket", msg.TicketID), kv("kind", string(msg.Kind)),
		kv("internal", strconv.FormatBool(msg.Internal)), kvID("raw_message", p.rawID)}
	if msg.MessageID != p.d.headerID {
		if p.d.headerID != "" {
			f = append(f, kv("stored_message_id", msg.MessageID+" (another sender used "+p.d.headerID+" before)"))
		} else {
			f = append(f, kv("stored_message_id", msg.MessageID+" (made from the bytes: the mail has none)"))
		}
	}
	f = append(f, kv("attachments", strconv.Itoa(len(p.d.m.Attachments))), kv("reply_text", replyFrom))
	p.tr.add(StepStored, summary, f...)
}

func (p *process) quarantine(ctx context.Context, kind mailparse.Kind, reason string) (Result, error) {
	if kind == "" {
		kind = mailparse.KindNone
	}
	p.threaded("held in the quarantine: "+reason, RuleQuarantine, 0)
	p.tr.annotate(StepThreaded, kv("reason", reason))
	qid, err := p.st.QuarantineMail(ctx, tickets.NewQuarantine{
		RawMessageID: p.rawID,
		AutoKind:     string(kind),
		Reason:       clean(reason),
		FromAddress:  p.d.sender.Address,
		Subject:      clean(p.d.m.Subject),
		MessageID:    p.d.headerID,
	})
	if err != nil {
		return Result{}, err
	}
	p.tr.add(StepStored, fmt.Sprintf("quarantine entry #%d for an admin to release or leave; raw message #%d", qid, p.rawID),
		kvID("quarantine", qid), kvID("raw_message", p.rawID))
	return Result{Quarantined: true, Rule: RuleQuarantine}, nil
}

// maxStoredAddresses bounds the To and Cc addresses kept with a message:
// pages, the API and the threading of every later mail of the ticket read
// them; the raw mail keeps them all.
const maxStoredAddresses = 200

func firstAddresses(list []mailparse.Address) []string {
	if len(list) > maxStoredAddresses {
		list = list[:maxStoredAddresses]
	}
	return addresses(list)
}

// message builds the messages row of this mail.
func (p *process) message(ticketID int64, kind tickets.MessageKind, author *int64, rule string, autoKind mailparse.Kind, reply string) tickets.Message {
	m := p.d.m
	raw := p.rawID
	return tickets.Message{
		TicketID:     ticketID,
		Direction:    tickets.Inbound,
		Kind:         kind,
		Internal:     kind == tickets.KindSystem || kind == tickets.KindNote,
		AuthorID:     author,
		MessageID:    p.msgID,
		InReplyTo:    clean(m.InReplyTo),
		Refs:         cleanAll(m.References),
		FromAddress:  p.d.sender.Address,
		FromName:     p.d.sender.Name,
		ToAddresses:  p.in.public(firstAddresses(m.To)),
		CcAddresses:  p.in.public(firstAddresses(m.Cc)),
		Subject:      clean(m.Subject),
		TextBody:     clean(m.Text),
		HTMLBody:     clean(m.HTML),
		ReplyText:    clean(reply),
		Signature:    clean(m.Signature),
		AutoKind:     string(autoKind),
		ThreadRule:   rule,
		RawMessageID: &raw,
	}
}

func (p *process) insert(ctx context.Context, msg tickets.Message) (tickets.Message, error) {
	id, err := p.take(ctx, &p.ids.message, "messages")
	if err != nil {
		return tickets.Message{}, err
	}
	msg.ID = id
	out, err := p.st.QueueMessage(ctx, msg)
	if err != nil {
		return tickets.Message{}, err
	}
	for _, a := range p.d.m.Attachments {
		sum, err := hex.DecodeString(a.SHA256)
		if err != nil || len(sum) != sha256.Size {
			s := sha256.Sum256(a.Data)
			sum = s[:]
		}
		if err := p.st.QueueAttachment(ctx, tickets.Attachment{
			MessageID:   out.ID,
			Filename:    clean(a.Filename),
			ContentType: clean(a.ContentType),
			ContentID:   clean(a.ContentID),
			Inline:      a.Inline,
			Size:        a.Size,
			SHA256:      sum,
			Data:        a.Data,
		}); err != nil {
			return tickets.Message{}, err
		}
	}
	return out, nil
}

// openingText is what a new ticket says: the new part of the mail, or all
// of its text when no new part was found.
func openingText(m *mailparse.Message) string {
	if strings.TrimSpace(m.Reply) != "" {
		return m.Reply
	}
	return m.Text
}

// open makes the mail a new ticket, linked to an older one when a reply to
// it came too late to reopen it.
func (p *process) open(ctx context.Context, kind mailparse.Kind, linked *tickets.Ticket, rule string) (Result, error) {
	d, st := p.d, p.st
	requester, err := p.requester(ctx)
	if err != nil {
		return Result{}, err
	}
	subject := strings.TrimSpace(clean(d.m.Subject))
	if subject == "" {
		subject = "(no subject)"
	}
	autoKind := "none"
	if kind == mailparse.KindAutoGenerated || kind == mailparse.KindBulk {
		autoKind = string(kind)
	}
	nt := tickets.NewTicket{Subject: subject, Description: clean(openingText(d.m)), RequesterID: requester.ID, AutoKind: autoKind}
	if v := d.verdict; d.senderIsFrom() && v.Failed() {
		// The From fails DMARC of a domain that asks nothing of such
		// mail (p=none): whoever forged it would have ticketd mail its
		// text to that address, so no automatic mail goes there.
		nt.RequesterUnverified = true
		p.note("requester_unverified", "dmarc=fail for "+v.DMARC.From+" (reported by "+v.AuthservID+
			"): no automatic mail is sent to the requester")
	}
	if linked != nil {
		nt.LinkedTicketID = &linked.ID
	}
	id, err := p.take(ctx, &p.ids.ticket, "tickets")
	if err != nil {
		return Result{}, err
	}
	t := tickets.Ticket{ID: id}
	if err := st.QueueTicket(ctx, t.ID, nt); err != nil {
		return Result{}, err
	}
	if linked != nil {
		ago := "some time"
		if linked.CompletedAt != nil {
			ago = d.now.Sub(*linked.CompletedAt).Round(time.Minute).String()
		}
		p.tr.add(StepReopened, fmt.Sprintf("ticket #%d was completed %s ago, longer than %s after which a reply opens a new ticket: opened ticket #%d linked to it",
			linked.ID, ago, p.in.opt.Reopen.NewTicketAfter, t.ID), kvID("linked_to", linked.ID), kvID("ticket", t.ID), kv("rule", rule))
	} else {
		p.threaded(fmt.Sprintf("no ticket matched: opened ticket #%d", t.ID), rule, t.ID)
	}
	if err := p.addPeople(ctx, t.ID, requester); err != nil {
		return Result{}, err
	}
	msg, err := p.insert(ctx, p.message(t.ID, tickets.KindOpening, &requester.ID, rule, kind, openingText(d.m)))
	if err != nil {
		return Result{}, err
	}
	p.stored(msg, fmt.Sprintf("opening message #%d of ticket #%d from %s", msg.ID, t.ID, requester.Email), openingSource(d.m))
	if autoKind != "none" {
		p.tr.annotate(StepStored, kv("answers", "none: "+autoKind+" mail gets no automatic answer (RFC 3834)"))
	}
	detail := "opened by mail " + d.headerID
	if linked != nil {
		detail = fmt.Sprintf("a reply to ticket #%d, completed too long ago to reopen, opened it", linked.ID)
	}
	if err := st.QueueAudit(ctx, tickets.AuditEntry{TicketID: &t.ID, ActorID: &requester.ID, Channel: tickets.ChannelMail,
		Action: "create", NewValue: subject, Detail: clean(detail)}); err != nil {
		return Result{}, err
	}
	if err := p.enqueue(ctx, tickets.EventCreated, t.ID, createdEvent{TicketID: t.ID}); err != nil {
		return Result{}, err
	}
	return Result{TicketID: t.ID, MessageID: msg.ID, Rule: rule}, nil
}

// maxListedNotAdded bounds the addresses listed on a ticket as not added;
// the count covers them all, and the raw mail keeps them.
const maxListedNotAdded = 100

// addPeople makes the people the opening mail was written to besides
// ticketd, and those copied, the ticket's participants, up to
// MaxParticipants people with the requester, in the order the mail names
// them. ticketd's own addresses never become participants. The addresses
// past the limit become no users: a mail naming thousands makes as much
// work as one naming a few, and each reply goes to the few.
func (p *process) addPeople(ctx context.Context, ticketID int64, requester tickets.User) error {
	limit := p.in.opt.MaxParticipants
	seen := map[string]bool{requester.Email: true}
	people := 1
	var over tickets.PeopleNotAdded
	for _, a := range slices.Concat(p.d.m.To, p.d.m.Cc) {
		addr := tickets.NormalizeEmail(clean(a.Address))
		if seen[addr] || !plausibleAddress(addr) || p.in.isOwn(addr) {
			continue
		}
		seen[addr] = true
		if people >= limit {
			over.Total++
			if len(over.Addresses) < maxListedNotAdded {
				over.Addresses = append(over.Addresses, addr)
			}
			continue
		}
		u, err := p.st.EnsureCopied(ctx, addr, clean(a.Name))
		if err != nil {
			return err
		}
		if err := p.st.QueueParticipant(ctx, ticketID, u.ID); err != nil {
			return err
		}
		people++
	}
	if over.Total == 0 {
		return nil
	}
	over.MaxPeople = limit
	p.tr.annotate(StepThreaded, kv("people_not_added",
		fmt.Sprintf("%d addresses: the ticket has the most people it may have (%d)", over.Total, limit)))
	p.in.log.Info("people not added: the ticket is full", "ticket_id", ticketID, "not_added", over.Total, "max_participants", limit)
	return p.st.QueuePeopleNotAdded(ctx, ticketID, over)
}

type createdEvent struct {
	TicketID int64 `json:"ticket_id"`
}

type repliedEvent struct {
	TicketID  int64  `json:"ticket_id"`
	MessageID int64  `json:"message_id"`
	AuthorID  *int64 `json:"author_id"`
}

// system attaches an automatic mail (auto-reply, bounce, report) to the
// ticket it answers as an internal system message: no event, no mail.
func (p *process) system(ctx context.Context, t *tickets.Ticket, rule string, kind mailparse.Kind, fromUser *tickets.User) (Result, error) {
	var author *int64
	if fromUser != nil {
		author = &fromUser.ID
	}
	msg, err := p.insert(ctx, p.message(t.ID, tickets.KindSystem, author, rule, kind, p.d.m.Reply))
	if err != nil {
		return Result{}, err
	}
	p.stored(msg, fmt.Sprintf("system message #%d on ticket #%d, internal: %s mail is kept, never answered (RFC 3834)", msg.ID, t.ID, kind), "the new part of the mail")
	if n := len(p.d.m.Commands); n > 0 {
		p.tr.add(StepCommands, fmt.Sprintf("%d command lines ignored: automatic mail runs no commands", n))
	}
	return Result{TicketID: t.ID, MessageID: msg.ID, Rule: rule}, nil
}

// reply adds a mail to the ticket it answers: a moderator's reply (with
// commands) when the signed reply address and the sender prove it, else a
// reply from the requester or another person.
func (p *process) reply(ctx context.Context, t *tickets.Ticket, rule string, kind mailparse.Kind, fromUser *tickets.User, tok *replyToken) (Result, error) {
	d, st := p.d, p.st
	if who, ok, err := p.stranger(ctx, t, rule, tok, fromUser); err != nil {
		return Result{}, err
	} else if ok {
		return p.hold(ctx, t, rule, kind, fromUser, tok, heldStranger+who)
	}
	var auth authority
	if kind.MayAnswer() && p.d.byMail() {
		// Commands, and replies sent on as a moderator's, come only
		// from ordinary mail: an automatic mail could not be answered
		// with a receipt (RFC 3834 2). Text written on the portal or
		// the API is a requester's, whoever is signed in: staff change
		// tickets on the staff page or with their token.
		var err error
		auth, err = p.authorize(ctx, tok, fromUser)
		if err != nil {
			return Result{}, err
		}
	}
	if auth.ok {
		return p.staffReply(ctx, t, rule, auth.user)
	}
	if auth.attempt {
		// A mail about a staff member's powers that does not prove
		// them: its text may be anybody's, so the requester never sees
		// it unless staff release it.
		return p.hold(ctx, t, rule, kind, fromUser, nil, heldRefused+auth.refusal, auth)
	}

	author, err := p.author(ctx, fromUser)
	if err != nil {
		return Result{}, err
	}
	res := Result{TicketID: t.ID, Rule: rule}
	if t.Status == tickets.StatusCompleted && kind != mailparse.KindNone {
		p.tr.add(StepReopened, fmt.Sprintf("ticket #%d stays Completed: %s mail does not reopen a ticket", t.ID, kind))
	}
	if t.Status == tickets.StatusCompleted && kind == mailparse.KindNone {
		reopen, err := p.mayReopen(ctx, t, author)
		if err != nil {
			return Result{}, err
		}
		if !reopen {
			why := "the sender is not on the ticket"
			if t.AssigneeID != nil && *t.AssigneeID == author.ID {
				why = "the sender is its assignee, who reopens with a command"
			}
			p.tr.add(StepReopened, fmt.Sprintf("ticket #%d stays Completed: %s", t.ID, why))
		}
		if reopen {
			after := p.in.opt.Reopen.NewTicketAfter
			if after > 0 && t.CompletedAt != nil && d.now.Sub(*t.CompletedAt) > after {
				return p.open(ctx, kind, t, RuleLinked)
			}
			to := tickets.StatusTodo
			if t.AssigneeID != nil {
				to = tickets.StatusInProgress
			}
			p.writesElsewhere()
			ch, err := st.SetStatus(ctx, t.ID, to, tickets.Actor{UserID: &author.ID, Channel: tickets.ChannelMail})
			if err != nil {
				return Result{}, err
			}
			p.tr.add(StepReopened, fmt.Sprintf("reopened ticket #%d: %s → %s, a reply from %s, who is on the ticket",
				t.ID, statusLabel(ch.Old), statusLabel(ch.New), author.Email), kv("status", statusLabel(ch.Old)+" → "+statusLabel(ch.New)))
		}
	}
	// A requester's command-looking lines are just text: the reply keeps
	// them.
	msg, err := p.insert(ctx, p.message(t.ID, tickets.KindReply, &author.ID, rule, kind, d.m.Reply))
	if err != nil {
		return Result{}, err
	}
	res.MessageID = msg.ID
	switch n := len(d.m.Commands); {
	case !kind.MayAnswer() && n > 0:
		p.tr.add(StepCommands, fmt.Sprintf("%d command lines ignored: automatic mail runs no commands", n))
	case !d.byMail() && n > 0:
		p.tr.add(StepCommands, fmt.Sprintf("%d lines that look like commands kept as text: written on the %s, as a requester", n, d.src.Kind))
	case n > 0:
		p.tr.add(StepCommands, fmt.Sprintf("%d lines that look like commands kept as text: the sender is not staff", n))
	}
	p.stored(msg, fmt.Sprintf("reply #%d on ticket #%d from %s", msg.ID, t.ID, author.Email), "the new part of the mail")
	if err := p.enqueue(ctx, tickets.EventReplied, t.ID,
		repliedEvent{TicketID: t.ID, MessageID: msg.ID, AuthorID: &author.ID}); err != nil {
		return Result{}, err
	}
	return res, nil
}

// author is the user a reply is stored under: the sender as ticketd knows
// them, or a new requester.
func (p *process) author(ctx context.Context, fromUser *tickets.User) (*tickets.User, error) {
	if fromUser != nil {
		return fromUser, nil
	}
	u, err := p.st.EnsureRequester(ctx, p.d.sender.Address, p.d.sender.Name)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// Why a message is held (tickets.Message.Held).
const (
	heldStranger = "not a participant: "
	heldRefused  = "commands refused: "
)

// stranger reports whether a mail that joined t by its reply address or by
// its header comes from someone who is not on the ticket: not its
// requester, a person copied, its assignee, the owner of the reply
// address, nor staff whose scope covers it. who names the sender. A mail
// whose From cannot be read proves nobody, and is a stranger's.
func (p *process) stranger(ctx context.Context, t *tickets.Ticket, rule string, tok *replyToken, fromUser *tickets.User) (who string, ok bool, err error) {
	d := p.d
	if !answersThread(rule) || !d.byMail() {
		return "", false, nil // a subject tag counts only from people on the ticket already
	}
	who = addressText(mailparse.Address{Name: d.sender.Name, Address: d.sender.Address})
	if !d.senderIsFrom() {
		return who + " (no readable From; taken from " + fallbackName(d) + ")", true, nil
	}
	if fromUser != nil {
		if tok.authentic() && tok.claims.UserID == fromUser.ID {
			return "", false, nil
		}
		if isActiveStaff(fromUser) && tickets.ScopeFor(*fromUser, p.in.opt.ModeratorsSeeUnassigned).Covers(*t) {
			return "", false, nil
		}
	}
	on, err := p.st.IsParticipant(ctx, t.ID, d.sender.Address)
	return who, !on, err
}

// fallbackName says which field gave the sender of a mail without a
// readable From.
func fallbackName(d *delivery) string {
	switch a := d.sender.Address; {
	case a == tickets.NormalizeEmail(d.m.Sender.Address):
		return "Sender"
	case a == tickets.NormalizeEmail(d.src.MailFrom):
		return "the envelope"
	}
	return "Reply-To or Return-Path"
}

// hold stores a mail on its ticket as an internal message held for staff:
// it runs no command, reopens nothing, is sent on to nobody, and the
// requester sees it only once staff release it. The owner of the reply
// address it came to, or the staff member it concerns (refused), is told.
func (p *process) hold(ctx context.Context, t *tickets.Ticket, rule string, kind mailparse.Kind, fromUser *tickets.User, tok *replyToken, reason string, refused ...authority) (Result, error) {
	d := p.d
	author, err := p.author(ctx, fromUser)
	if err != nil {
		return Result{}, err
	}
	m := p.message(t.ID, tickets.KindReply, &author.ID, rule, kind, d.m.Reply)
	m.Held = clean(reason)
	msg, err := p.insert(ctx, m)
	if err != nil {
		return Result{}, err
	}
	var lines []ReceiptLine
	for _, c := range d.m.Commands {
		lines = append(lines, refusedLine(c, reason))
	}
	f := []tickets.TraceField{kv("held", reason)}
	for _, c := range d.m.Commands {
		f = append(f, commandField(c.Line, "refused: "+reason))
	}
	p.tr.add(StepCommands, fmt.Sprintf("%d command lines ran nothing: %s", len(d.m.Commands), reason), f...)
	p.stored(msg, fmt.Sprintf("message #%d on ticket #%d from %s, held for staff to release: %s", msg.ID, t.ID, author.Email, reason),
		"the new part of the mail")
	if len(refused) > 0 {
		if len(lines) > 0 {
			return Result{TicketID: t.ID, MessageID: msg.ID, Rule: rule}, p.receipt(ctx, t.ID, msg.ID, refused[0].user, lines)
		}
		return Result{TicketID: t.ID, MessageID: msg.ID, Rule: rule}, nil
	}
	// Someone else wrote to a staff member's reply address: its owner
	// hears of it, and of who.
	if tok.authentic() && rule == RuleReplyAddress {
		owner, err := p.st.User(ctx, tok.claims.UserID)
		if err != nil && !errors.Is(err, tickets.ErrNotFound) {
			return Result{}, err
		}
		if err == nil && isActiveStaff(&owner) {
			p.writesElsewhere()
			key := fmt.Sprintf("reply-address-used:%d", msg.ID)
			p.tr.dedupe = append(p.tr.dedupe, key)
			p.tr.annotate(StepCommands, kv("told", owner.Email+", whose reply address it was"))
			who := strings.TrimPrefix(reason, heldStranger)
			if err := p.in.opt.Notifier.ReplyAddressUsed(ctx, p.st, key, t.ID, owner, who, lines); err != nil {
				return Result{}, fmt.Errorf("queue reply address notice for message %d: %w", msg.ID, err)
			}
		}
	}
	return Result{TicketID: t.ID, MessageID: msg.ID, Rule: rule}, nil
}

// mayReopen reports whether author's reply reopens a Completed ticket: the
// requester and the people copied on it may; the assignee closes and
// reopens with commands instead.
func (p *process) mayReopen(ctx context.Context, t *tickets.Ticket, author *tickets.User) (bool, error) {
	if t.AssigneeID != nil && *t.AssigneeID == author.ID {
		return false, nil
	}
	return p.st.IsParticipant(ctx, t.ID, author.Email)
}

// internalMarker is a line that keeps a moderator's reply internal: "note:"
// or "#note" (or "internal:", "#internal") alone on the first line.
func internalMarker(body string) (rest string, internal bool) {
	first, rest, _ := strings.Cut(strings.TrimLeft(body, " \t\r\n"), "\n")
	switch strings.ToLower(strings.Join(strings.Fields(first), "")) {
	case "note:", "#note", "#note:", "internal:", "#internal", "#internal:":
		return strings.TrimSpace(rest), true
	}
	return body, false
}

// staffReply stores a moderator's reply, runs its commands, sends its text
// to the requester unless it is internal, and sends the receipt.
func (p *process) staffReply(ctx context.Context, t *tickets.Ticket, rule string, staff *tickets.User) (Result, error) {
	d := p.d
	body, internal := internalMarker(d.m.Body)
	body = strings.TrimSpace(body)
	msg := p.message(t.ID, tickets.KindReply, &staff.ID, rule, mailparse.KindNone, body)
	// The thread keeps what the staff member wrote to the requester,
	// without the command lines or note marker (the raw mail and the
	// trace keep those): this one message is their reply everywhere,
	// and nobody reads their commands but staff.
	msg.TextBody, msg.HTMLBody = body, ""
	// Nothing but commands: nothing to send to the requester.
	msg.Internal = internal || body == ""
	if internal {
		msg.Kind = tickets.KindNote
	}
	stored, err := p.insert(ctx, msg)
	if err != nil {
		return Result{}, err
	}
	p.writesElsewhere()
	lines, err := p.applyCommands(ctx, t.ID, staff, d.m.Commands)
	if err != nil {
		return Result{}, err
	}
	p.traceCommands(staff, lines)
	summary := fmt.Sprintf("staff reply #%d on ticket #%d by %s, sent on to the requester", stored.ID, t.ID, staff.Email)
	switch {
	case internal:
		summary = fmt.Sprintf("internal note #%d on ticket #%d by %s (staff only)", stored.ID, t.ID, staff.Email)
	case body == "":
		summary = fmt.Sprintf("message #%d on ticket #%d by %s: commands only, nothing to send on", stored.ID, t.ID, staff.Email)
	}
	p.stored(stored, summary, "the whole new part, without command lines or a note marker")
	if !stored.Internal {
		key := fmt.Sprintf("staff-reply:%d", stored.ID)
		p.tr.dedupe = append(p.tr.dedupe, key)
		if err := p.in.opt.Notifier.StaffReply(ctx, p.st, key, stored.ID); err != nil {
			return Result{}, fmt.Errorf("queue staff reply %d: %w", stored.ID, err)
		}
	}
	if len(lines) > 0 {
		if err := p.receipt(ctx, t.ID, stored.ID, staff, lines); err != nil {
			return Result{}, err
		}
	}
	return Result{TicketID: t.ID, MessageID: stored.ID, Rule: rule}, nil
}

// receipt queues the command receipt to a staff member known to ticketd;
// nobody else is ever told.
func (p *process) receipt(ctx context.Context, ticketID, messageID int64, to *tickets.User, lines []ReceiptLine) error {
	if to == nil || len(lines) == 0 {
		return nil
	}
	p.writesElsewhere()
	inReplyTo := p.d.headerID
	if inReplyTo == "" {
		inReplyTo = p.msgID
	}
	key := fmt.Sprintf("receipt:%d", messageID)
	p.tr.dedupe = append(p.tr.dedupe, key)
	p.tr.annotate(StepCommands, kv("receipt_to", to.Email))
	if err := p.in.opt.Notifier.CommandReceipt(ctx, p.st, key, ticketID, *to, inReplyTo, lines); err != nil {
		return fmt.Errorf("queue command receipt for message %d: %w", messageID, err)
	}
	return nil
}

// openingSource says which text of a mail opened its ticket.
func openingSource(m *mailparse.Message) string {
	if strings.TrimSpace(m.Reply) != "" {
		return "the new part of the mail"
	}
	return "the whole text: no new part was found"
}

// traceCommands records what became of an authorised staff member's
// commands, one detail per line.
func (p *process) traceCommands(staff *tickets.User, lines []ReceiptLine) {
	applied, refusedN := 0, 0
	f := []tickets.TraceField{kv("authorised", staff.Email+": the signed reply address was made for them and the From is theirs")}
	for _, l := range lines {
		if l.Applied {
			applied++
			if l.Old == l.New {
				f = append(f, commandField(l.Command, "applied: "+l.Field+" already "+emptyAs(l.New, "empty")))
			} else {
				f = append(f, commandField(l.Command, "applied: "+l.Field+" "+emptyAs(l.Old, "empty")+" → "+emptyAs(l.New, "empty")))
			}
			continue
		}
		refusedN++
		f = append(f, commandField(l.Command, "refused: "+l.Reason))
	}
	summary := "none; a reply from authorised staff"
	if len(lines) > 0 {
		summary = fmt.Sprintf("%d applied, %d refused", applied, refusedN)
	}
	p.tr.add(StepCommands, summary, f...)
}

// commandField is what became of one command line.
func commandField(line, outcome string) tickets.TraceField {
	return kv("command", strconv.Quote(bound(line))+" "+outcome)
}

func emptyAs(s, empty string) string {
	if s == "" {
		return empty
	}
	return s
}

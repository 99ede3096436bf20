// Package outbound is how ticketd writes to people: it composes threaded
// mail (Notifier), keeps it in the mail outbox in the transaction of the
// change it announces, and delivers the outbox to an SMTP relay or a
// Maildir (Sender, Relay, Maildir).
//
// Every mail carries a unique Message-ID, In-Reply-To and References that
// chain it into its ticket's thread (RFC 5322 3.6.4), a subject with the
// ticket's tag, and a Reply-To address signed for its one recipient, so a
// reply proves which ticket and which person it comes from. Automatic mail
// is marked (RFC 3834) and never goes to automatic senders, to ticketd
// itself, to bouncing addresses, or to anyone more often than a limit per
// hour.
package outbound

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"ticketd/signing"
	"ticketd/tickets"
)

//go:embed templates/mail.html
var templateFS embed.FS

// NotifierOptions configure the Notifier.
type NotifierOptions struct {
	// SupportAddress is where people write (support@example.com): the From
	// of every mail and the base of the signed reply addresses. Required.
	SupportAddress string
	// Aliases are other addresses that reach ticketd; no automatic mail
	// ever goes to them, nor to any sub-address (+tag) of them.
	Aliases []string
	// Domain is the right-hand side of Message-IDs (default: the support
	// address's domain).
	Domain string
	// FromName is the display name of the desk (default "Support"). A
	// moderator's reply comes from "<moderator> via <FromName>".
	FromName string
	// BounceAddress is the mailbox of the return paths (default
	// signing.BounceMailbox of the support address): every mail goes out
	// with a MAIL FROM of its own, bounces+<token>@domain, whose token
	// names the mail and its recipient, so that a delivery report is
	// believed only when it comes back to it (RFC 3464 2.2). The receiving
	// side must deliver these sub-addresses to ticketd.
	BounceAddress string
	// BounceTTL is how long a return path's token stays valid (default 30
	// days; delivery reports come within the few days a mail is queued,
	// RFC 5321 4.5.4.1).
	BounceTTL time.Duration
	// Keys sign reply addresses and ticket links. Required.
	Keys *signing.Keys
	// ReplyTTL is how long a signed reply address works (default 90 days).
	ReplyTTL time.Duration
	// BaseURL, when set, adds to every ticket mail a signed link to the
	// ticket's page: BaseURL/tickets/<id>?token=<token>, unless TicketLink
	// builds it.
	BaseURL    string
	TicketLink func(ticketID int64, token string) string
	// LinkTTL is how long a ticket link works (default 30 days).
	LinkTTL time.Duration
	// AutoLimitPerHour caps the automatic mails one address gets per hour
	// (default 10; negative: no limit). StaffAutoLimitPerHour is the cap
	// for moderators and admins, who get a mail for every assignment and
	// reply (default 120; negative: no limit).
	AutoLimitPerHour      int
	StaffAutoLimitPerHour int
	// MaxReferences caps the References field (default 20; the opening
	// mail and the newest ones are kept).
	MaxReferences int
	// MaxMailedFiles bounds the files a reply passed on by mail carries
	// (default 10 MB: each recipient's copy is composed in the transaction
	// of the reply, and relays refuse large mail); larger ones stay on the
	// ticket's page, and the mail says so.
	MaxMailedFiles int64
	Logger         *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Notifier queues ticketd's mails into the mail outbox. Each method runs
// on the caller's Store, inside the caller's transaction when there is one
// (or its own otherwise), so a mail is queued exactly when the change it
// announces commits. Each takes a dedupe key: calling a method again with
// the same key queues nothing more, so retried workflow steps are safe.
// Mail that loop safety stops is recorded (log and audit) and the method
// returns nil: suppression is not an error.
type Notifier struct {
	support, domain, fromName, bounceAddr string
	own                                   []string
	keys                                  *signing.Keys
	replyTTL, linkTTL, bounceTTL          time.Duration
	baseURL                               string
	ticketLinkFn                          func(int64, string) string
	limit, staffLimit, maxRefs            int
	maxFiles                              int64
	log                                   *slog.Logger
	now                                   func() time.Time
	html                                  *template.Template
}

// NewNotifier returns a Notifier. It panics when SupportAddress or Keys is
// missing: main checks its configuration before building one.
func NewNotifier(o NotifierOptions) *Notifier {
	support := tickets.NormalizeEmail(o.SupportAddress)
	local, domain, ok := strings.Cut(support, "@")
	if !ok || local == "" || domain == "" {
		panic(fmt.Sprintf("outbound: NotifierOptions.SupportAddress %q is not an address", o.SupportAddress))
	}
	if o.Keys == nil {
		panic("outbound: NotifierOptions.Keys is nil")
	}
	n := &Notifier{
		support:      support,
		domain:       o.Domain,
		fromName:     o.FromName,
		bounceAddr:   tickets.NormalizeEmail(o.BounceAddress),
		own:          []string{support},
		keys:         o.Keys,
		replyTTL:     o.ReplyTTL,
		linkTTL:      o.LinkTTL,
		bounceTTL:    o.BounceTTL,
		baseURL:      strings.TrimRight(o.BaseURL, "/"),
		ticketLinkFn: o.TicketLink,
		limit:        o.AutoLimitPerHour,
		staffLimit:   o.StaffAutoLimitPerHour,
		maxRefs:      o.MaxReferences,
		maxFiles:     o.MaxMailedFiles,
		log:          o.Logger,
		now:          o.Now,
		html:         template.Must(template.New("mail.html").Funcs(templateFuncs).ParseFS(templateFS, "templates/mail.html")),
	}
	for _, a := range o.Aliases {
		if a = tickets.NormalizeEmail(a); a != "" {
			n.own = append(n.own, a)
		}
	}
	if n.domain == "" {
		n.domain = domain
	}
	if n.fromName == "" {
		n.fromName = "Support"
	}
	if n.bounceAddr == "" {
		n.bounceAddr = signing.BounceMailbox(support)
	}
	n.own = append(n.own, n.bounceAddr)
	if n.bounceTTL <= 0 {
		n.bounceTTL = 30 * 24 * time.Hour
	}
	if n.replyTTL <= 0 {
		n.replyTTL = 90 * 24 * time.Hour
	}
	if n.linkTTL <= 0 {
		n.linkTTL = 30 * 24 * time.Hour
	}
	if n.limit == 0 {
		n.limit = 10
	}
	if n.staffLimit == 0 {
		n.staffLimit = 120
	}
	if n.maxRefs <= 0 {
		n.maxRefs = defaultMaxRefs
	}
	if n.maxFiles <= 0 {
		n.maxFiles = 10 << 20
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	if n.now == nil {
		n.now = time.Now
	}
	return n
}

func (n *Notifier) ticketLink(ticketID, userID int64, now time.Time) string {
	if n.baseURL == "" && n.ticketLinkFn == nil {
		return ""
	}
	token := n.keys.Sign(signing.Claims{
		Purpose: signing.PurposeLink, TicketID: ticketID, UserID: userID, Expires: now.Add(n.linkTTL),
	})
	if n.ticketLinkFn != nil {
		return n.ticketLinkFn(ticketID, token)
	}
	return fmt.Sprintf("%s/tickets/%d?token=%s", n.baseURL, ticketID, url.QueryEscape(token))
}

// queue composes the drafts a method built and queues them, all in one
// transaction: under a lock on the dedupe key, nothing when the key is
// already queued, and loop safety for each recipient. The key is scoped
// to the kind of mail and its subject (the ticket, message or user the
// method is about), so that one event's id can key all its mails. The
// first queued mail carries the key itself, the others the key and their
// address.
func (n *Notifier) queue(ctx context.Context, st *tickets.Store, kind string, subject int64, dedupe string,
	build func(st *tickets.Store) ([]draft, error),
	after func(st *tickets.Store, queued []composed) error,
) error {
	if dedupe == "" {
		return fmt.Errorf("outbound: %s mail without a dedupe key", kind)
	}
	key := fmt.Sprintf("%s/%d/%s", kind, subject, dedupe)
	return st.InTx(ctx, func(st *tickets.Store) error {
		if err := st.LockKey(ctx, "outbound "+key); err != nil {
			return err
		}
		if done, err := st.MailQueued(ctx, key); err != nil || done {
			return err
		}
		drafts, err := build(st)
		if err != nil {
			return err
		}
		var queued []composed
		for _, d := range drafts {
			d.kind = kind
			reason, err := n.suppressed(ctx, st, d)
			if err != nil {
				return err
			}
			if reason != "" {
				if err := n.recordSuppressed(ctx, st, d, reason); err != nil {
					return err
				}
				continue
			}
			c, err := n.compose(ctx, st, d)
			if err != nil {
				return err
			}
			k := key
			if len(queued) > 0 {
				k = key + "/" + tickets.NormalizeEmail(d.to.Email)
			}
			var ticketID *int64
			if d.ticket != nil {
				ticketID = &d.ticket.ID
			}
			mailID, err := st.ReserveID(ctx, "mail_outbox")
			if err != nil {
				return err
			}
			_, ok, err := st.QueueMail(ctx, tickets.OutboxMail{
				ID: mailID, TicketID: ticketID, Kind: kind, DedupeKey: &k, MessageID: c.messageID,
				EnvelopeFrom: n.returnPath(d, mailID), Recipients: []string{d.to.Email},
				Automatic: d.auto != "", Data: c.data,
			})
			if err != nil {
				return err
			}
			if !ok {
				continue // cannot happen under the lock; harmless if it does
			}
			n.log.Debug("mail queued", "ticket_id", ticketIDOf(d), "kind", kind, "message_id", c.messageID,
				"to", d.to.Email)
			queued = append(queued, c)
		}
		if after != nil && len(queued) > 0 {
			return after(st, queued)
		}
		return nil
	})
}

// returnPath is the MAIL FROM of one mail: a sub-address of the bounce
// mailbox whose token names the outbox row and its recipient. Each mail
// has one recipient, so a delivery report that comes back to it speaks of
// that recipient and of no one else. ticketd never sends mail with the
// null return path: it sends no delivery reports itself (RFC 3464 2,
// RFC 5321 4.5.5), so its mail can always bounce back to it, and nothing
// it receives on a return path is ever answered.
func (n *Notifier) returnPath(d draft, mailID int64) string {
	c := signing.Claims{Purpose: signing.PurposeBounce, UserID: d.to.ID, MailID: mailID,
		Expires: n.now().Add(n.bounceTTL)}
	if d.ticket != nil {
		c.TicketID = d.ticket.ID
	}
	return signing.ReturnPath(n.bounceAddr, n.keys.Sign(c))
}

func ticketIDOf(d draft) int64 {
	if d.ticket == nil {
		return 0
	}
	return d.ticket.ID
}

// loadTicket returns the ticket and its requester.
func loadTicket(ctx context.Context, st *tickets.Store, id int64) (tickets.Ticket, tickets.User, error) {
	t, err := st.Ticket(ctx, id)
	if err != nil {
		return tickets.Ticket{}, tickets.User{}, err
	}
	req, err := st.User(ctx, t.RequesterID)
	if err != nil {
		return tickets.Ticket{}, tickets.User{}, err
	}
	return t, req, nil
}

func greeting(u tickets.User) string {
	if u.Name != "" {
		return "Hello " + u.Name + ","
	}
	return "Hello,"
}

func named(u tickets.User) string {
	if u.Name != "" && !strings.EqualFold(u.Name, u.Email) {
		return u.Name + " <" + u.Email + ">"
	}
	return u.Email
}

var requesterReply = []string{
	"Reply to this mail to add to your request. Please keep the subject as it is, and do not start a new mail for the same request.",
}

// Acknowledgement tells the requester their request is a ticket, with the
// first answer triage wrote for them and how to reply. It is an automatic
// answer to their mail (Auto-Submitted: auto-replied).
func (n *Notifier) Acknowledgement(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64) error {
	return n.queue(ctx, st, "acknowledgement", ticketID, dedupe, func(st *tickets.Store) ([]draft, error) {
		t, req, err := loadTicket(ctx, st, ticketID)
		if err != nil {
			return nil, err
		}
		b := body{
			Greeting: greeting(req),
			Paragraphs: []string{fmt.Sprintf("Thank you for writing to us. Your request “%s” is now ticket #%d, "+
				"and a moderator will take care of it.", baseSubject(t.Subject), t.ID)},
			Reply: requesterReply,
		}
		if r := strings.TrimSpace(t.FirstResponse); r != "" {
			b.Quote = &quote{Label: "While you wait, this may help:", Text: r}
		}
		return []draft{{ticket: &t, to: req, fromName: n.fromName, auto: autoReplied, body: b}}, nil
	}, nil)
}

func ticketFacts(t tickets.Ticket, req tickets.User) []fact {
	f := []fact{
		{"Ticket", fmt.Sprintf("#%d", t.ID)},
		{"Requester", named(req)},
		{"Status", t.Status.Label()},
		{"Priority", string(t.Priority)},
	}
	if len(t.Skills) > 0 {
		f = append(f, fact{"Skills", strings.Join(t.Skills, ", ")})
	}
	if t.Category != "" {
		f = append(f, fact{"Category", t.Category})
	}
	if t.Language != "" {
		f = append(f, fact{"Language", t.Language})
	}
	if t.AssignmentReason != "" {
		f = append(f, fact{"Why you", t.AssignmentReason})
	}
	return f
}

var staffReply = []string{
	"Reply to this mail to answer the requester: your text goes to them from the support address, in this thread.",
}

// clip shortens long texts quoted into notification mails; the ticket page
// has them whole.
func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > n {
		return strings.TrimSpace(string(r[:n])) + "\n[...]"
	}
	return s
}

// Assignment tells a moderator a ticket is theirs: the request, the notes
// and priority triage wrote, and how to reply with commands. Nothing is
// sent when the ticket has meanwhile gone to someone else.
func (n *Notifier) Assignment(ctx context.Context, st *tickets.Store, dedupe string, ticketID, assigneeID int64) error {
	return n.queue(ctx, st, "assignment", ticketID, dedupe, func(st *tickets.Store) ([]draft, error) {
		t, req, err := loadTicket(ctx, st, ticketID)
		if err != nil {
			return nil, err
		}
		if t.AssigneeID == nil || *t.AssigneeID != assigneeID {
			n.log.Info("assignment mail skipped: the ticket has another assignee now",
				"ticket_id", t.ID, "assignee_id", assigneeID)
			return nil, nil
		}
		to, err := st.User(ctx, assigneeID)
		if err != nil {
			return nil, err
		}
		b := body{
			Greeting:   greeting(to),
			Paragraphs: []string{fmt.Sprintf("Ticket #%d, “%s”, is assigned to you.", t.ID, baseSubject(t.Subject))},
			Facts:      ticketFacts(t, req),
			Reply:      staffReply,
			Commands:   true,
		}
		if s := strings.TrimSpace(t.Summary); s != "" {
			b.Sections = append(b.Sections, section{"Summary", s})
		}
		if s := strings.TrimSpace(t.HelpfulNotes); s != "" {
			b.Sections = append(b.Sections, section{"Helpful notes", s})
		}
		b.Sections = append(b.Sections, section{"The request", clip(t.Description, 8000)})
		return []draft{{ticket: &t, to: to, fromName: n.fromName, auto: autoGenerated, body: b}}, nil
	}, nil)
}

// Reassigned tells the previous assignee that a ticket went to someone
// else, so they stop working on it.
func (n *Notifier) Reassigned(ctx context.Context, st *tickets.Store, dedupe string, ticketID, previousID, assigneeID int64) error {
	return n.queue(ctx, st, "reassignment", ticketID, dedupe, func(st *tickets.Store) ([]draft, error) {
		if previousID == assigneeID {
			return nil, nil
		}
		t, _, err := loadTicket(ctx, st, ticketID)
		if err != nil {
			return nil, err
		}
		prev, err := st.User(ctx, previousID)
		if err != nil {
			return nil, err
		}
		now := "nobody"
		if assigneeID != 0 {
			u, err := st.User(ctx, assigneeID)
			if err != nil {
				return nil, err
			}
			now = u.Display()
		}
		b := body{
			Greeting: greeting(prev),
			Paragraphs: []string{fmt.Sprintf("Ticket #%d, “%s”, is now assigned to %s. You do not need to do anything more on it.",
				t.ID, baseSubject(t.Subject), now)},
			Reply: []string{"You can still reply to this mail; your text goes to the requester."},
		}
		return []draft{{ticket: &t, to: prev, fromName: n.fromName, auto: autoGenerated, body: b}}, nil
	}, nil)
}

// StatusChanged tells the requester their ticket moved from one status to
// another.
func (n *Notifier) StatusChanged(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64, from, to tickets.Status) error {
	return n.queue(ctx, st, "status", ticketID, dedupe, func(st *tickets.Store) ([]draft, error) {
		if from == to {
			return nil, nil
		}
		t, req, err := loadTicket(ctx, st, ticketID)
		if err != nil {
			return nil, err
		}
		b := body{
			Greeting: greeting(req),
			Paragraphs: []string{fmt.Sprintf("Your request #%d, “%s”, went from %s to %s.",
				t.ID, baseSubject(t.Subject), from.Label(), to.Label())},
			Reply: requesterReply,
		}
		return []draft{{ticket: &t, to: req, fromName: n.fromName, auto: autoGenerated, body: b}}, nil
	}, nil)
}

// Completion tells the requester their ticket is completed, and that a
// reply reopens it.
func (n *Notifier) Completion(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64) error {
	return n.queue(ctx, st, "completion", ticketID, dedupe, func(st *tickets.Store) ([]draft, error) {
		t, req, err := loadTicket(ctx, st, ticketID)
		if err != nil {
			return nil, err
		}
		b := body{
			Greeting: greeting(req),
			Paragraphs: []string{
				fmt.Sprintf("Your request #%d, “%s”, is completed.", t.ID, baseSubject(t.Subject)),
				"We hope it is solved. If it is not, or something else comes up about it, just reply to this mail and the ticket opens again.",
			},
			Reply: []string{"Reply to this mail to reopen your request. Please keep the subject as it is."},
		}
		return []draft{{ticket: &t, to: req, fromName: n.fromName, auto: autoGenerated, body: b}}, nil
	}, nil)
}

// StaffReply sends a moderator's message to the requester and the
// ticket's CC participants, from the support address as the moderator, in
// the thread; each person gets their own copy with their own reply
// address. It is a person's mail, not an automatic one. Internal messages
// are never sent.
//
// Each copy is addressed to its recipient alone and names nobody else:
// the people of a ticket were chosen by whoever wrote its opening mail,
// perhaps a stranger who listed addresses to have ticketd spread them, and
// a Cc field would tell every one of them all the others (and let a
// reply-all reach them past ticketd). What the copies share is the
// thread, by Message-ID; staff see a ticket's people on its page.
//
// The staff message stays the thread's one message of that reply: a copy
// of one written on the web (direction outbound) takes its Message-ID;
// the copies of one that came by mail keep their own, which thread
// answers through the mail outbox.
func (n *Notifier) StaffReply(ctx context.Context, st *tickets.Store, dedupe string, messageID int64) error {
	var msg tickets.Message
	var text string
	return n.queue(ctx, st, "reply", messageID, dedupe, func(st *tickets.Store) ([]draft, error) {
		var err error
		msg, err = st.Message(ctx, messageID)
		if err != nil {
			return nil, err
		}
		if msg.Internal || msg.Kind == tickets.KindNote || msg.Kind == tickets.KindSystem {
			n.log.Info("internal message not mailed", "ticket_id", msg.TicketID, "message_id", msg.MessageID)
			return nil, nil
		}
		text = strings.TrimSpace(msg.ReplyText)
		if text == "" {
			text = strings.TrimSpace(msg.TextBody)
		}
		if text == "" {
			n.log.Info("empty staff reply not mailed", "ticket_id", msg.TicketID, "message_id", msg.MessageID)
			return nil, nil
		}
		t, err := st.Ticket(ctx, msg.TicketID)
		if err != nil {
			return nil, err
		}
		fromName := n.fromName
		var authorEmail string
		if msg.AuthorID != nil {
			author, err := st.User(ctx, *msg.AuthorID)
			if err != nil {
				return nil, err
			}
			fromName = author.Display() + " via " + n.fromName
			authorEmail = author.Email
		}
		people, err := st.Participants(ctx, t.ID)
		if err != nil {
			return nil, err
		}
		files, filesNote, err := n.mailedFiles(ctx, st, msg)
		if err != nil {
			return nil, err
		}
		var to []tickets.User
		for _, p := range people {
			if !strings.EqualFold(p.Email, authorEmail) && !n.isOwn(p.Email) {
				to = append(to, p)
			}
		}
		var drafts []draft
		for i, p := range to {
			d := draft{ticket: &t, to: p, fromName: fromName, files: files, body: body{
				Paragraphs: append([]string{text}, filesNote...),
				Reply:      []string{"Reply to this mail to answer. Please keep the subject as it is."},
			}}
			if msg.Direction == tickets.Outbound {
				d.passesOn = msg.MessageID
				if i == 0 && validMsgID(msg.MessageID) {
					d.messageID = msg.MessageID
				}
			}
			drafts = append(drafts, d)
		}
		return drafts, nil
	}, nil)
}

// mailedFiles are the files of msg that a mail passing it on carries: all
// that ticketd kept, unless together they are over MaxMailedFiles; then
// none, and note says where they are. Files too large to keep apart are
// named in note too.
func (n *Notifier) mailedFiles(ctx context.Context, st *tickets.Store, msg tickets.Message) (files []tickets.Attachment, note []string, err error) {
	infos, err := st.MessageAttachments(ctx, msg.ID)
	if err != nil || len(infos) == 0 {
		return nil, nil, err
	}
	var total int64
	kept := 0
	for _, a := range infos {
		if a.Kept {
			total += a.Size
			kept++
		}
	}
	if kept < len(infos) {
		note = append(note, fmt.Sprintf("%d of the files that came with this reply are too large to mail; they are on the ticket's page.", len(infos)-kept))
	}
	if total > n.maxFiles {
		note = append(note, fmt.Sprintf("The files that came with this reply (%d, %.1f MB) are too large to mail; they are on the ticket's page.",
			kept, float64(total)/(1<<20)))
		return nil, note, nil
	}
	if kept == 0 {
		return nil, note, nil
	}
	files, err = st.MessageFiles(ctx, msg.ID)
	return files, note, err
}

// ForwardToAssignee sends a requester's reply to the ticket's assignee,
// from the support address as the requester, with the assignee's own
// reply address, so that their answer goes back to the requester and may
// carry commands. Nothing is sent when the ticket has no assignee.
func (n *Notifier) ForwardToAssignee(ctx context.Context, st *tickets.Store, dedupe string, messageID int64) error {
	return n.queue(ctx, st, "forward", messageID, dedupe, func(st *tickets.Store) ([]draft, error) {
		msg, err := st.Message(ctx, messageID)
		if err != nil {
			return nil, err
		}
		t, req, err := loadTicket(ctx, st, msg.TicketID)
		if err != nil {
			return nil, err
		}
		if t.AssigneeID == nil {
			n.log.Info("reply not forwarded: the ticket has no assignee", "ticket_id", t.ID, "message_id", msg.MessageID)
			return nil, nil
		}
		if msg.AuthorID != nil && *msg.AuthorID == *t.AssigneeID {
			return nil, nil
		}
		to, err := st.User(ctx, *t.AssigneeID)
		if err != nil {
			return nil, err
		}
		text := strings.TrimSpace(msg.ReplyText)
		if text == "" {
			text = strings.TrimSpace(msg.TextBody)
		}
		who := msg.FromAddress
		name := msg.FromName
		if name == "" && msg.AuthorID != nil && *msg.AuthorID == req.ID {
			name = req.Name
		}
		if name != "" {
			who = name + " <" + msg.FromAddress + ">"
		} else {
			name = msg.FromAddress
		}
		fromName := n.fromName
		if name != "" {
			fromName = name + " via " + n.fromName
		}
		files, filesNote, err := n.mailedFiles(ctx, st, msg)
		if err != nil {
			return nil, err
		}
		b := body{
			Paragraphs: []string{fmt.Sprintf("New reply on ticket #%d, “%s” (%s, priority %s).",
				t.ID, baseSubject(t.Subject), t.Status.Label(), t.Priority)},
			Quote:    &quote{Label: who + " wrote:", Text: clip(text, 20000)},
			Reply:    staffReply,
			Commands: true,
		}
		b.Paragraphs = append(b.Paragraphs, filesNote...)
		return []draft{{ticket: &t, to: to, fromName: fromName, auto: autoGenerated, body: b, files: files}}, nil
	}, nil)
}

// CommandReceipt answers a mail that carried commands, in the thread: each
// change applied (old → new) and each line refused with its reason.
// inReplyTo is the Message-ID of that mail. Send it only to the person
// the commands' reply address was signed for, or to a known staff member
// who wrote from their own address: never to a forged sender.
func (n *Notifier) CommandReceipt(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64,
	to tickets.User, inReplyTo string, lines []ReceiptLine) error {
	return n.queue(ctx, st, "receipt", ticketID, dedupe, func(st *tickets.Store) ([]draft, error) {
		t, err := st.Ticket(ctx, ticketID)
		if err != nil {
			return nil, err
		}
		if to.ID != 0 {
			// The user as they are now: bouncing_since may have changed.
			if to, err = st.User(ctx, to.ID); err != nil {
				return nil, err
			}
		}
		applied := 0
		for _, l := range lines {
			if l.Applied {
				applied++
			}
		}
		intro := fmt.Sprintf("Your commands on ticket #%d, “%s”:", t.ID, baseSubject(t.Subject))
		if applied == 0 {
			intro = fmt.Sprintf("None of your commands on ticket #%d, “%s”, changed anything:", t.ID, baseSubject(t.Subject))
		}
		b := body{
			Greeting:   greeting(to),
			Paragraphs: []string{intro},
			Receipt:    lines,
			Facts: []fact{
				{"Status", t.Status.Label()},
				{"Priority", string(t.Priority)},
			},
			Reply:    []string{"Reply to this mail to run more commands or to answer the requester."},
			Commands: true,
		}
		if t.AssigneeID != nil {
			if a, err := st.User(ctx, *t.AssigneeID); err == nil {
				b.Facts = append(b.Facts, fact{"Assignee", a.Display()})
			}
		}
		return []draft{{ticket: &t, to: to, fromName: n.fromName, auto: autoReplied,
			parent: unbracket(inReplyTo), body: b}}, nil
	}, nil)
}

// ReplyAddressUsed tells owner, a staff member, that someone else — who —
// wrote to owner's signed reply address of a ticket. That mail is held on
// the ticket for staff to release, unseen by the requester, and none of its
// command lines (lines) ran.
func (n *Notifier) ReplyAddressUsed(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64,
	owner tickets.User, who string, lines []ReceiptLine) error {
	return n.queue(ctx, st, "receipt", ticketID, dedupe, func(st *tickets.Store) ([]draft, error) {
		t, err := st.Ticket(ctx, ticketID)
		if err != nil {
			return nil, err
		}
		if owner, err = st.User(ctx, owner.ID); err != nil {
			return nil, err
		}
		b := body{
			Greeting: greeting(owner),
			Paragraphs: []string{
				fmt.Sprintf("Someone else, %s, wrote to your reply address of ticket #%d, “%s”.", who, t.ID, baseSubject(t.Subject)),
				"Their mail is held on the ticket for staff to release; the requester does not see it, and nothing in it ran.",
			},
			Receipt: lines,
			Reply:   []string{"Your reply address is yours alone: if you did not pass it on, it may have leaked."},
		}
		return []draft{{ticket: &t, to: owner, fromName: n.fromName, auto: autoReplied, body: b}}, nil
	}, nil)
}

// SignInLink mails a one-time sign-in link for the web portal.
func (n *Notifier) SignInLink(ctx context.Context, st *tickets.Store, dedupe string, user tickets.User, link string) error {
	return n.queue(ctx, st, "sign-in", user.ID, dedupe, func(st *tickets.Store) ([]draft, error) {
		if user.ID != 0 {
			u, err := st.User(ctx, user.ID)
			if err != nil {
				return nil, err
			}
			user = u
		}
		b := body{
			Greeting:   greeting(user),
			Paragraphs: []string{"Someone, hopefully you, asked to sign in to " + n.fromName + " with this address. Use this link to sign in:"},
			Link:       link,
			LinkText:   "Sign in",
			Reply:      []string{"If you did not ask for it, ignore this mail; nothing happens without the link."},
		}
		return []draft{{to: user, fromName: n.fromName, auto: autoGenerated, subject: "Sign in to " + n.fromName, body: b}}, nil
	}, nil)
}

// isOwn reports whether the address reaches ticketd: the support address,
// an alias, the bounce mailbox, or any sub-address of them
// (support+<anything>@domain, bounces+<anything>@domain).
func (n *Notifier) isOwn(addr string) bool {
	addr = tickets.NormalizeEmail(addr)
	for _, own := range n.own {
		if addr == own {
			return true
		}
		if _, ok := signing.TokenFromAddress(own, addr); ok {
			return true
		}
	}
	return false
}

// robotLocalParts are mailboxes that are never a person: mail systems'
// own addresses (RFC 5321 4.5.1, RFC 2142) and the usual no-reply ones.
var robotLocalParts = []string{
	"mailer-daemon", "postmaster", "mail-daemon", "maildaemon", "mailerdaemon",
	"noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply",
	"bounce", "bounces", "listserv", "majordomo", "autoresponder", "auto-reply",
}

func robot(addr string) bool {
	local, _, _ := strings.Cut(tickets.NormalizeEmail(addr), "@")
	base, _, _ := strings.Cut(local, "+")
	if containsFold(robotLocalParts, base) {
		return true
	}
	// Mailing list machinery: owner-list, list-request, list-bounces.
	return strings.HasPrefix(base, "owner-") || strings.HasSuffix(base, "-request") ||
		strings.HasSuffix(base, "-bounces") || strings.HasPrefix(base, "bounce-") ||
		strings.HasPrefix(base, "bounces-")
}

// suppressed says why a mail must not go, or "" when it may. Nothing ever
// goes to no address or to ticketd itself; automatic mail does not go to
// mail robots, bouncing addresses, the people of tickets opened by
// automatic mail, or past the hourly limit (RFC 3834 2: never answer
// automatic mail automatically, and do not answer one address too often).
func (n *Notifier) suppressed(ctx context.Context, st *tickets.Store, d draft) (string, error) {
	addr := tickets.NormalizeEmail(d.to.Email)
	if addr == "" || addr == "<>" || !strings.Contains(addr, "@") {
		return "no address (null sender)", nil
	}
	if n.isOwn(addr) {
		return "the address is ticketd's own", nil
	}
	if d.auto == "" {
		return "", nil
	}
	if robot(addr) {
		return "the address belongs to a mail system, not a person", nil
	}
	if d.to.ID == 0 {
		u, err := st.UserByEmail(ctx, addr)
		switch {
		case errors.Is(err, tickets.ErrNotFound):
		case err != nil:
			return "", err
		default:
			d.to = u
		}
	}
	if d.to.BouncingSince != nil {
		return "the address bounces since " + d.to.BouncingSince.UTC().Format(time.RFC3339), nil
	}
	if t := d.ticket; t != nil && t.AutoKind != "" && t.AutoKind != "none" && !d.to.Role.IsStaff() {
		return "the ticket was opened by automatic mail (" + t.AutoKind + ")", nil
	}
	if t := d.ticket; t != nil && t.RequesterUnverified && d.to.ID == t.RequesterID {
		return "the requester's address failed DMARC at a trusted server: the mail that opened the ticket may be forged", nil
	}
	limit := n.limit
	if d.to.Role.IsStaff() {
		limit = n.staffLimit
	}
	if limit < 0 {
		return "", nil
	}
	// Concurrent transactions count one after the other.
	if err := st.LockKey(ctx, "outbound rate "+addr); err != nil {
		return "", err
	}
	sent, err := st.AutomaticMailsSince(ctx, addr, time.Hour)
	if err != nil {
		return "", err
	}
	if sent >= limit {
		return fmt.Sprintf("the limit of %d automatic mails per hour to this address is reached", limit), nil
	}
	return "", nil
}

func (n *Notifier) recordSuppressed(ctx context.Context, st *tickets.Store, d draft, reason string) error {
	n.log.Info("mail suppressed", "ticket_id", ticketIDOf(d), "kind", d.kind, "to", d.to.Email, "reason", reason)
	e := tickets.AuditEntry{
		Channel: tickets.ChannelSystem, Action: "mail.suppressed", NewValue: d.kind,
		Detail: fmt.Sprintf("%s mail to %s not sent: %s", d.kind, d.to.Email, reason),
	}
	if d.ticket != nil {
		e.TicketID = &d.ticket.ID
	}
	return st.Audit(ctx, e)
}

// Package tickets holds ticketd's domain types and their storage in
// PostgreSQL. Every query runs through a DBTX, so the same Store works on the
// pool or inside a transaction (InTx).
package tickets

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrNotFound is returned when a row does not exist; pgx.ErrNoRows never
// leaves this package.
var ErrNotFound = errors.New("tickets: not found")

// Status is where a ticket is in its lifecycle.
type Status string

const (
	StatusTodo       Status = "todo"
	StatusInProgress Status = "in_progress"
	StatusCompleted  Status = "completed"
)

// Statuses lists every status in lifecycle order.
var Statuses = []Status{StatusTodo, StatusInProgress, StatusCompleted}

// ParseStatus accepts the canonical names and the aliases people write in
// mail ("open", "doing", "done", "closed", "resolved", "In-Progress").
func ParseStatus(s string) (Status, error) {
	switch normalizeWord(s) {
	case "todo", "to-do", "open", "new", "reopen", "reopened":
		return StatusTodo, nil
	case "in-progress", "inprogress", "progress", "doing", "working", "started", "active":
		return StatusInProgress, nil
	case "completed", "complete", "done", "closed", "close", "resolved", "resolve", "fixed", "solved":
		return StatusCompleted, nil
	}
	return "", fmt.Errorf("unknown status %q (want todo, in-progress or completed)", s)
}

// Label is the name people read: To-Do, In-Progress, Completed.
func (s Status) Label() string {
	switch s {
	case StatusTodo:
		return "To-Do"
	case StatusInProgress:
		return "In-Progress"
	case StatusCompleted:
		return "Completed"
	}
	return string(s)
}

// Priority is how urgent a ticket is.
type Priority string

const (
	PriorityLow    Priority = "low"
	PriorityMedium Priority = "medium"
	PriorityHigh   Priority = "high"
)

// Priorities lists every priority from most to least urgent.
var Priorities = []Priority{PriorityHigh, PriorityMedium, PriorityLow}

// ParsePriority accepts low, medium and high, and a few common synonyms.
func ParsePriority(s string) (Priority, error) {
	switch normalizeWord(s) {
	case "low", "minor", "p3":
		return PriorityLow, nil
	case "medium", "normal", "med", "p2":
		return PriorityMedium, nil
	case "high", "urgent", "critical", "p1":
		return PriorityHigh, nil
	}
	return "", fmt.Errorf("unknown priority %q (want low, medium or high)", s)
}

// Role is what a user may do.
type Role string

const (
	RoleUser      Role = "user"
	RoleModerator Role = "moderator"
	RoleAdmin     Role = "admin"
)

// ParseRole accepts user, moderator and admin.
func ParseRole(s string) (Role, error) {
	switch r := Role(normalizeWord(s)); r {
	case RoleUser, RoleModerator, RoleAdmin:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q (want user, moderator or admin)", s)
}

// IsStaff reports whether the role works tickets (moderator or admin).
func (r Role) IsStaff() bool { return r == RoleModerator || r == RoleAdmin }

// Channel is how a change reached ticketd, for the audit log.
type Channel string

const (
	ChannelMail   Channel = "mail"
	ChannelWeb    Channel = "web"
	ChannelAPI    Channel = "api"
	ChannelAI     Channel = "ai"
	ChannelCLI    Channel = "cli"
	ChannelSystem Channel = "system"
)

func normalizeWord(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.ReplaceAll(s, "_", "-")
	return strings.ReplaceAll(s, " ", "-")
}

// NormalizeSkills lower-cases, trims, de-duplicates and sorts skills, so that
// "Postgres, networking ,postgres" becomes [networking postgres].
func NormalizeSkills(skills []string) []string {
	seen := make(map[string]bool, len(skills))
	out := make([]string, 0, len(skills))
	for _, s := range skills {
		s = strings.Join(strings.Fields(strings.ToLower(s)), "-")
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Skills are short words ("postgres", "networking", "français") that match
// a ticket's needs to its moderators; one rule holds for both, wherever they
// are set.
const (
	MaxSkills      = 32
	MaxSkillLength = 64
)

// ValidSkill reports whether a normalized skill is a short word: letters
// and digits, and + # . - after the first.
func ValidSkill(s string) bool {
	if s == "" || utf8.RuneCountInString(s) > MaxSkillLength {
		return false
	}
	for i, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && (i == 0 || !strings.ContainsRune("+#.-", r)) {
			return false
		}
	}
	return true
}

// CheckSkills holds normalized skills to the rule, with an error wrapping
// ErrInvalid that says what is wrong.
func CheckSkills(skills []string) error {
	if len(skills) > MaxSkills {
		return fmt.Errorf("%w: at most %d skills", ErrInvalid, MaxSkills)
	}
	for _, sk := range skills {
		if !ValidSkill(sk) {
			if r := []rune(sk); len(r) > 24 {
				sk = string(r[:20]) + "…"
			}
			return fmt.Errorf("%w: the skill %q is not a word of at most %d letters, digits and + # . -", ErrInvalid, sk, MaxSkillLength)
		}
	}
	return nil
}

// SplitSkills parses a comma-separated skill list.
func SplitSkills(s string) []string {
	return NormalizeSkills(strings.Split(s, ","))
}

// PlainName is a display name as ticketd keeps it: without the controls
// that change the direction of the text after them (U+202A–U+202E,
// U+2066–U+2069), with which a name could make the address shown after it,
// in a page or a mail, read backwards.
func PlainName(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) {
			return -1
		}
		return r
	}, s))
}

// NormalizeEmail trims an address and lower-cases it. Local parts are
// case-sensitive in theory (RFC 5321 2.4) but not in any mailbox people use,
// and ticketd matches people by address. A domain written fully qualified
// (example.com.) is the same domain.
func NormalizeEmail(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// User is anyone ticketd knows.
type User struct {
	ID             int64
	Email          string
	Name           string
	Role           Role
	Skills         []string
	PasswordHash   *string
	Active         bool
	BouncingSince  *time.Time
	LastAssignedAt *time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Display is the user's name, or their address when they have none.
func (u User) Display() string {
	if u.Name != "" {
		return u.Name
	}
	return u.Email
}

// Ticket is one support request.
type Ticket struct {
	ID               int64
	Subject          string
	Description      string
	Status           Status
	Priority         Priority
	RequesterID      int64
	AssigneeID       *int64
	Skills           []string
	SuggestedSkills  []string
	Category         string
	Language         string
	Summary          string
	HelpfulNotes     string
	FirstResponse    string
	AssignmentReason string
	AutoKind         string
	LinkedTicketID   *int64
	// RequesterUnverified: a trusted server reported the opening mail's
	// From as failing DMARC; the requester gets no automatic mail.
	RequesterUnverified bool
	CreatedAt           time.Time
	UpdatedAt           time.Time
	TriagedAt           *time.Time
	AssignedAt          *time.Time
	CompletedAt         *time.Time
}

// Direction says whether a message came in or went out.
type Direction string

const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
)

// MessageKind tells the opening mail, replies, internal notes and system
// notes (automatic mail attached to a ticket) apart.
type MessageKind string

const (
	KindOpening MessageKind = "opening"
	KindReply   MessageKind = "reply"
	KindNote    MessageKind = "note"
	KindSystem  MessageKind = "system"
)

// Message is one entry of a ticket's thread.
type Message struct {
	ID           int64
	TicketID     int64
	Direction    Direction
	Kind         MessageKind
	Internal     bool
	AuthorID     *int64
	MessageID    string
	InReplyTo    string
	Refs         []string
	FromAddress  string
	FromName     string
	ToAddresses  []string
	CcAddresses  []string
	Subject      string
	TextBody     string
	HTMLBody     string
	ReplyText    string
	Signature    string
	AutoKind     string
	ThreadRule   string
	RawMessageID *int64
	// Held says why staff hold the message back from the requester
	// ("not a participant: …", "commands refused: …"); "" when it is
	// not held. A held message is internal until released.
	Held      string
	CreatedAt time.Time
}

// Attachment is a file that came with a message.
type Attachment struct {
	ID          int64
	MessageID   int64
	Filename    string
	ContentType string
	ContentID   string
	Inline      bool
	Size        int64
	SHA256      []byte
	Data        []byte
}

// AuditEntry records who changed what, through which channel.
type AuditEntry struct {
	ID        int64
	TicketID  *int64
	ActorID   *int64
	Channel   Channel
	Action    string
	OldValue  string
	NewValue  string
	Detail    string
	CreatedAt time.Time
}

// Event names, as the workflow engine knows them.
const (
	EventCreated       = "ticket.created"
	EventAssigned      = "ticket.assigned"
	EventStatusChanged = "ticket.status_changed"
	EventCompleted     = "ticket.completed"
	EventReplied       = "ticket.replied"
)

// searchDocument is the full-text document of ticket t in SQL. tickets.search
// holds it from the ticket's first change after intake on (migration 0010);
// until then it is computed as it is read.
const searchDocument = `COALESCE(t.search, ticket_search_document(t.subject, t.summary, t.description))`

// searchMatch is the SQL condition that ticket t matches the tsquery
// expression query, written so that the GIN index on tickets.search finds the
// indexed tickets and tickets_search_pending_idx the others.
func searchMatch(query string) string {
	return `(t.search @@ ` + query + ` OR (t.search IS NULL AND ticket_search_document(t.subject, t.summary, t.description) @@ ` + query + `))`
}

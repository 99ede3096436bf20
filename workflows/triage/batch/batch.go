// Package batch triages tickets given as JSON lines, one decision per line,
// through the code the triage workflow runs (the same desk, engines, guards
// and assignment), and scores an engine on a labelled set. It is `ticketd
// triage` and `ticketd eval triage`.
package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-message/mail"

	"ticketd/inbound"
	"ticketd/inbound/mailparse"
	"ticketd/tickets"
	"ticketd/workflows/triage"
)

// Ticket is one line of input: a mail as a client sent it. Body is the
// mail's whole text, quoted history and signature included; the ticket's
// text is taken out of it as intake does.
type Ticket struct {
	ID      json.RawMessage `json:"id"`
	Subject string          `json:"subject"`
	Body    string          `json:"body"`
	From    string          `json:"from"`
}

// Decision is one line of output.
type Decision struct {
	ID              json.RawMessage  `json:"id"`
	Priority        tickets.Priority `json:"priority"`
	Skills          []string         `json:"skills"`
	SuggestedSkills []string         `json:"suggested_skills"`
	Category        string           `json:"category"`
	Language        string           `json:"language"`
	// Assignee is the address of the staff member chosen; null when there
	// is nobody to assign.
	Assignee      *string  `json:"assignee"`
	AssignReason  string   `json:"assign_reason"`
	Flags         []string `json:"flags"`
	Engine        string   `json:"engine"`
	Summary       string   `json:"summary"`
	FirstResponse string   `json:"first_response"`

	fallback       bool     // the assignment fell back to an admin
	assigneeSkills []string // what the assignee holds
}

// Staff lists who may be assigned, as the workflow's assign step sees
// them. *tickets.Store implements it (AssignableStaff), and so does a
// Roster.
type Staff interface {
	AssignableStaff(ctx context.Context) ([]tickets.Assignable, error)
}

// Triager triages one ticket after another.
type Triager struct {
	// Analyzer is the configured engine, as the workflow's analyse step
	// runs it.
	Analyzer triage.Analyzer
	// Fallback decides when the Analyzer fails (the model is unavailable),
	// as the workflow's last attempt does; nil reports the failure.
	Fallback triage.Analyzer
	// Desk is the vocabulary and the rest of what triage knows of the desk.
	Desk triage.Desk
	// Staff are who may be assigned.
	Staff Staff
	// Log receives what went wrong with a ticket that was still decided
	// (a model that failed); nil discards it.
	Log io.Writer
}

// TicketText is the ticket's text as intake would store it for a mail
// with this subject, sender and text: the mail is written as a client would
// send it and read by the intake's parser, which takes the quoted history
// and the signature out.
func TicketText(subject, from, body string) string {
	var h mail.Header
	h.SetDate(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	if a, err := mail.ParseAddress(from); err == nil {
		h.SetAddressList("From", []*mail.Address{a})
	} else if from != "" {
		h.SetAddressList("From", []*mail.Address{{Address: from}})
	}
	h.SetSubject(subject)
	h.Set("MIME-Version", "1.0")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Transfer-Encoding", "quoted-printable")
	var buf bytes.Buffer
	w, err := mail.CreateSingleInlineWriter(&buf, h)
	if err == nil {
		text := strings.ReplaceAll(strings.ReplaceAll(body, "\r\n", "\n"), "\n", "\r\n")
		_, err = io.WriteString(w, text+"\r\n")
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		// Writing to memory fails only on a header it cannot encode; read
		// the body as intake reads a bare one.
		return inbound.TicketText(mailparse.ParseBody(body, false))
	}
	return inbound.TicketText(mailparse.Parse(buf.Bytes(), mailparse.Options{}))
}

// Triage decides one ticket; seq numbers it within the run, standing in
// for the ticket id the workflow has.
func (t *Triager) Triage(ctx context.Context, tk Ticket, seq int64) (Decision, error) {
	return t.decide(ctx, tk.ID, tk.Subject, TicketText(tk.Subject, tk.From, tk.Body), seq)
}

// decide triages a ticket's text as intake stored it, and assigns it.
func (t *Triager) decide(ctx context.Context, id json.RawMessage, subject, text string, seq int64) (Decision, error) {
	in := t.Desk.Input(seq, subject, text)
	res, _, err := t.Analyzer.Analyze(ctx, in)
	if err != nil {
		if t.Fallback == nil {
			return Decision{}, err
		}
		if t.Log != nil {
			fmt.Fprintf(t.Log, "ticket %s: %v; the rules engine decides\n", id, err)
		}
		if res, _, err = t.Fallback.Analyze(ctx, in); err != nil {
			return Decision{}, err
		}
	}
	staff, err := t.Staff.AssignableStaff(ctx)
	if err != nil {
		return Decision{}, err
	}
	ch := triage.PickAssignee(staff, res.Skills, seq)
	d := Decision{ID: id, Priority: res.Priority, Skills: orEmpty(res.Skills), SuggestedSkills: orEmpty(res.SuggestedSkills),
		Category: res.Category, Language: res.Language, AssignReason: ch.Reason, Flags: orEmpty(res.Flags),
		Engine: res.Engine, Summary: res.Summary, FirstResponse: res.FirstResponse, fallback: ch.Fallback}
	if ch.AssigneeID != nil {
		for _, s := range staff {
			if s.ID == *ch.AssigneeID {
				email := s.Email
				d.Assignee, d.assigneeSkills = &email, s.Skills
			}
		}
		if r, ok := t.Staff.(*Roster); ok {
			r.assigned(*ch.AssigneeID)
		}
	}
	return d, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// MaxLine bounds one line of input.
const MaxLine = 4 << 20

// errLineTooLong is what a line longer than MaxLine gets.
var errLineTooLong = fmt.Errorf("longer than %d bytes", MaxLine)

// lines calls fn with each non-blank line of r and its number, a line
// longer than MaxLine with errLineTooLong (and without reading more of it
// into memory).
func lines(r io.Reader, fn func(n int, line []byte, err error) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		var line []byte
		var tooLong bool
		for {
			chunk, err := br.ReadSlice('\n')
			if !tooLong {
				if len(line)+len(chunk) > MaxLine {
					tooLong, line = true, nil
				} else {
					line = append(line, chunk...)
				}
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if tooLong {
				if ferr := fn(n, nil, errLineTooLong); ferr != nil {
					return ferr
				}
			} else if len(bytes.TrimSpace(line)) > 0 {
				if ferr := fn(n, line, nil); ferr != nil {
					return ferr
				}
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			break
		}
	}
}

// decodeStrict decodes one JSON object into v, refusing unknown fields and
// anything after the object.
func decodeStrict(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("text after the JSON object")
	}
	return nil
}

// ErrSomeFailed says that some lines were not decided; each was reported.
var ErrSomeFailed = errors.New("some tickets were not triaged")

// Run reads tickets as JSON lines from r and writes one decision per line
// to w. A line that is not a ticket, or whose triage fails, is reported to
// errs with its line number and skipped; Run then returns ErrSomeFailed
// after the last line.
func (t *Triager) Run(ctx context.Context, r io.Reader, w io.Writer, errs io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	failed := 0
	var seq int64
	err := lines(r, func(n int, line []byte, lerr error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		seq++
		var tk Ticket
		if lerr == nil {
			lerr = decodeStrict(line, &tk)
		}
		if lerr != nil {
			failed++
			fmt.Fprintf(errs, "line %d: not a ticket: %v\n", n, lerr)
			return nil
		}
		d, err := t.Triage(ctx, tk, seq)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failed++
			fmt.Fprintf(errs, "line %d: %v\n", n, err)
			return nil
		}
		return enc.Encode(d)
	})
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d", ErrSomeFailed, failed)
	}
	return nil
}

// RosterEntry is one staff member of a roster file.
type RosterEntry struct {
	Email       string   `json:"email"`
	Name        string   `json:"name"`
	Role        string   `json:"role"`
	Skills      []string `json:"skills"`
	OpenTickets int      `json:"open_tickets"`
}

// Roster is a desk's staff read from a file instead of the database. The
// tickets a run assigns count as open tickets of their assignee for the
// rest of the run, and as their latest assignment, as they would at a desk.
type Roster struct {
	staff []tickets.Assignable
	clock time.Time
}

// ReadRoster reads a JSON array of RosterEntry.
func ReadRoster(path string) (*Roster, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read roster: %w", err)
	}
	var entries []RosterEntry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&entries); err != nil {
		return nil, fmt.Errorf("roster %s: %w", path, err)
	}
	return NewRoster(entries)
}

// NewRoster checks the entries: staff roles, valid skills, one entry per
// address.
func NewRoster(entries []RosterEntry) (*Roster, error) {
	r := &Roster{clock: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)}
	seen := map[string]bool{}
	for i, e := range entries {
		role, err := tickets.ParseRole(e.Role)
		if err != nil || !role.IsStaff() {
			return nil, fmt.Errorf("roster entry %d (%s): role %q is not moderator or admin", i+1, e.Email, e.Role)
		}
		email := tickets.NormalizeEmail(e.Email)
		if !strings.Contains(email, "@") || seen[email] {
			return nil, fmt.Errorf("roster entry %d: address %q is missing, invalid or listed twice", i+1, e.Email)
		}
		seen[email] = true
		skills := tickets.NormalizeSkills(e.Skills)
		if err := tickets.CheckSkills(skills); err != nil {
			return nil, fmt.Errorf("roster entry %d (%s): %w", i+1, e.Email, err)
		}
		if e.OpenTickets < 0 {
			return nil, fmt.Errorf("roster entry %d (%s): open_tickets is negative", i+1, e.Email)
		}
		r.staff = append(r.staff, tickets.Assignable{User: tickets.User{ID: int64(i + 1), Email: email, Name: e.Name,
			Role: role, Skills: skills, Active: true}, OpenTickets: e.OpenTickets})
	}
	if len(r.staff) == 0 {
		return nil, errors.New("the roster lists nobody")
	}
	return r, nil
}

// Vocabulary is every skill the roster's staff hold.
func (r *Roster) Vocabulary() []string {
	var all []string
	for _, s := range r.staff {
		all = append(all, s.Skills...)
	}
	return tickets.NormalizeSkills(all)
}

// AssignableStaff lists the roster with the load of this run.
func (r *Roster) AssignableStaff(context.Context) ([]tickets.Assignable, error) {
	return slices.Clone(r.staff), nil
}

func (r *Roster) assigned(id int64) {
	r.clock = r.clock.Add(time.Minute)
	for i := range r.staff {
		if r.staff[i].ID == id {
			at := r.clock
			r.staff[i].OpenTickets++
			r.staff[i].LastAssignedAt = &at
		}
	}
}

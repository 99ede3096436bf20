package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/pgtest"
	"ticketd/testlog"
	"ticketd/tickets"
	"ticketd/workflows/inngesttest"
	"ticketd/workflows/triage"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// outboxNotifier queues a row per mail into the real mail_outbox, keyed by
// the dedupe key as the outbound Notifier is, with the recipient it would
// mail; the mail's text is not the point here.
type outboxNotifier struct{}

func (outboxNotifier) queue(ctx context.Context, st *tickets.Store, kind, dedupe string, ticketID int64, to int64) error {
	u, err := st.User(ctx, to)
	if err != nil {
		return err
	}
	_, err = st.DB().Exec(ctx, `
		INSERT INTO mail_outbox (ticket_id, kind, dedupe_key, message_id, recipients, data)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING`,
		ticketID, kind, dedupe, "<"+dedupe+"@test.invalid>", []string{u.Email}, []byte("Subject: "+kind+"\r\n\r\n"))
	if err != nil {
		return fmt.Errorf("queue %s mail: %w", kind, err)
	}
	return nil
}

func (n outboxNotifier) Acknowledgement(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64) error {
	t, err := st.Ticket(ctx, ticketID)
	if err != nil {
		return err
	}
	return n.queue(ctx, st, "acknowledgement", dedupe, ticketID, t.RequesterID)
}

func (n outboxNotifier) Assignment(ctx context.Context, st *tickets.Store, dedupe string, ticketID, assigneeID int64) error {
	return n.queue(ctx, st, "assignment", dedupe, ticketID, assigneeID)
}

func (n outboxNotifier) Reassigned(ctx context.Context, st *tickets.Store, dedupe string, ticketID, previousID, assigneeID int64) error {
	return n.queue(ctx, st, "reassignment", dedupe, ticketID, previousID)
}

func (n outboxNotifier) StatusChanged(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64, from, to tickets.Status) error {
	t, err := st.Ticket(ctx, ticketID)
	if err != nil {
		return err
	}
	return n.queue(ctx, st, "status", dedupe, ticketID, t.RequesterID)
}

func (n outboxNotifier) Completion(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64) error {
	t, err := st.Ticket(ctx, ticketID)
	if err != nil {
		return err
	}
	return n.queue(ctx, st, "completion", dedupe, ticketID, t.RequesterID)
}

func (n outboxNotifier) ForwardToAssignee(ctx context.Context, st *tickets.Store, dedupe string, messageID int64) error {
	m, err := st.Message(ctx, messageID)
	if err != nil {
		return err
	}
	t, err := st.Ticket(ctx, m.TicketID)
	if err != nil || t.AssigneeID == nil {
		return err
	}
	return n.queue(ctx, st, "forward", dedupe, t.ID, *t.AssigneeID)
}

// mail is a queued mail_outbox row.
type mail struct {
	Kind, Dedupe, To string
}

func mails(t testing.TB, st *tickets.Store, ticketID int64) []mail {
	t.Helper()
	rows, err := st.DB().Query(context.Background(), `SELECT kind, dedupe_key, recipients[1] FROM mail_outbox
		WHERE ticket_id = $1 ORDER BY id`, ticketID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []mail
	for rows.Next() {
		var m mail
		if err := rows.Scan(&m.Kind, &m.Dedupe, &m.To); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// people is the staff and a requester of a test.
type people struct {
	admin, pg, mail, requester tickets.User
}

func seedPeople(t testing.TB, st *tickets.Store) people {
	t.Helper()
	ctx := context.Background()
	mk := func(email string, role tickets.Role, skills ...string) tickets.User {
		u, err := st.CreateUser(ctx, tickets.NewUser{Email: email, Name: strings.Split(email, "@")[0], Role: role, Skills: skills})
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	return people{
		admin:     mk("admin@example.com", tickets.RoleAdmin),
		pg:        mk("pg@example.com", tickets.RoleModerator, "postgres", "networking"),
		mail:      mk("mail@example.com", tickets.RoleModerator, "email", "billing"),
		requester: mk("ann@example.org", tickets.RoleUser),
	}
}

// openTicket creates a ticket and its ticket.created event in one
// transaction, as intake does.
func openTicket(t testing.TB, st *tickets.Store, requester int64, subject, body string) tickets.Ticket {
	t.Helper()
	ctx := context.Background()
	var tk tickets.Ticket
	err := st.InTx(ctx, func(tx *tickets.Store) error {
		var err error
		tk, err = tx.CreateTicket(ctx, tickets.NewTicket{Subject: subject, Description: body, RequesterID: requester})
		if err != nil {
			return err
		}
		_, err = tx.EnqueueEvent(ctx, tickets.EventCreated, tk.ID, map[string]int64{"ticket_id": tk.ID})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// waitFor polls cond until it holds or a generous deadline passes. The
// deadline only bounds a broken run; no test asserts how fast this is.
func waitFor(t testing.TB, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// invocations records which Inngest runs called each function for each
// event, to show that an event runs a function once.
type invocations struct {
	mu       sync.Mutex
	runs     map[string]map[string]bool // fnId + " " + event id -> run ids
	finished map[string]int             // fnId + " " + event id -> calls answered 200: the function returned
}

func (iv *invocations) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(strings.NewReader(string(body)))
			var req struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
				Ctx struct {
					RunID string `json:"run_id"`
				} `json:"ctx"`
			}
			if json.Unmarshal(body, &req) == nil && req.Ctx.RunID != "" {
				k := r.URL.Query().Get("fnId") + " " + req.Event.ID
				iv.mu.Lock()
				if iv.runs == nil {
					iv.runs = map[string]map[string]bool{}
				}
				if iv.runs[k] == nil {
					iv.runs[k] = map[string]bool{}
				}
				iv.runs[k][req.Ctx.RunID] = true
				iv.mu.Unlock()
				sr := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
				h.ServeHTTP(sr, r)
				if sr.code == http.StatusOK {
					iv.mu.Lock()
					if iv.finished == nil {
						iv.finished = map[string]int{}
					}
					iv.finished[k]++
					iv.mu.Unlock()
				}
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// done is how many runs of fn for the event returned.
func (iv *invocations) done(fn, eventID string) int {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return iv.finished["ticketd-"+fn+" "+eventID]
}

// runs is how many distinct runs of fn the event started.
func (iv *invocations) count(fn, eventID string) int {
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return len(iv.runs["ticketd-"+fn+" "+eventID])
}

// stack is ticketd's workflow side against a real dev server and database.
type stack struct {
	pool   *pgxpool.Pool
	store  *tickets.Store
	wf     *Workflows
	dev    *inngesttest.Server
	appURL string
	inv    *invocations
	cancel context.CancelFunc
	relay  chan error
}

type stackOptions struct {
	analyzer triage.Analyzer
	notifier Notifier // nil: outboxNotifier
	retries  int
	log      *slog.Logger
	pool     *pgxpool.Pool
	// unsynced starts the dev server without the app's URL and does not
	// sync it: the dev server knows no functions until the test calls Sync.
	unsynced bool
}

// newStack starts the app's /api/inngest on loopback, the dev server
// syncing it, the workflows and the relay.
func newStack(t testing.TB, o stackOptions) *stack {
	t.Helper()
	s := &stack{inv: &invocations{}, pool: o.pool}
	if s.pool == nil {
		s.pool = pgtest.New(t)
	}
	s.store = tickets.NewStore(s.pool)
	var handler http.Handler = http.NotFoundHandler()
	var mu sync.RWMutex
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.RLock()
		h := handler
		mu.RUnlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(app.Close)
	s.appURL = app.URL + "/api/inngest"
	devOpts := inngesttest.Options{AppURL: s.appURL}
	if o.unsynced {
		devOpts.AppURL = ""
	}
	s.dev = inngesttest.Start(t, devOpts)
	log := o.log
	if log == nil {
		log = testlog.New(t)
	}
	if o.notifier == nil {
		o.notifier = outboxNotifier{}
	}
	wf, err := New(Options{
		Pool: s.pool, Notifier: o.notifier, Analyzer: o.analyzer, Logger: log,
		Dev: s.dev.URL, Retries: o.retries, // Only NOTIFY (and due retries) wake the relay: these tests show it works.
		RelayPoll: 10 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.wf = wf
	mux := http.NewServeMux()
	mux.Handle("/api/inngest", s.inv.wrap(wf.Handler()))
	mu.Lock()
	handler = mux
	mu.Unlock()
	if !o.unsynced {
		s.dev.Sync(t, s.appURL, 5)
	}

	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.relay = make(chan error, 1)
	go func() { s.relay <- wf.RunRelay(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-s.relay; err != nil {
			t.Errorf("RunRelay: %v", err)
		}
	})
	return s
}

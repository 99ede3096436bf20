// Package workflows runs ticketd's durable workflows on Inngest: triage of a
// new ticket (analyse, assign, update, notify, each a step retried on
// failure and never repeated once done) and the notifications for manual
// assignment, status changes, completion and requesters' replies. It also
// relays the event outbox to Inngest.
//
// Events are written to event_outbox in the transaction that causes them.
// RunRelay sends them with the event id "ticketd-<row id>", so a resend is
// deduplicated by Inngest, and marks them sent; while Inngest is down or not
// configured they wait in the outbox. Inngest calls the functions back at
// Handler (served at /api/inngest).
package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/inngest/inngestgo"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/metrics"
	"ticketd/tickets"
	"ticketd/workflows/triage"
)

// Notifier queues the mails the workflows send, in the caller's transaction
// (st), at most once per dedupe key. *outbound.Notifier implements it.
type Notifier interface {
	Acknowledgement(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64) error
	Assignment(ctx context.Context, st *tickets.Store, dedupe string, ticketID, assigneeID int64) error
	StatusChanged(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64, from, to tickets.Status) error
	Completion(ctx context.Context, st *tickets.Store, dedupe string, ticketID int64) error
	ForwardToAssignee(ctx context.Context, st *tickets.Store, dedupe string, messageID int64) error
}

// reassigner is what a Notifier may also do: tell the previous assignee a
// ticket went to someone else.
type reassigner interface {
	Reassigned(ctx context.Context, st *tickets.Store, dedupe string, ticketID, previousID, assigneeID int64) error
}

// Options configure the workflows. The Inngest fields carry the SDK's own
// environment variables, which main reads; the SDK is given every one of
// them explicitly, so it reads none itself.
type Options struct {
	// Pool is ticketd's database; required.
	Pool *pgxpool.Pool
	// Metrics records triage outcomes and relayed events; nil records
	// nothing.
	Metrics *metrics.Metrics
	// Notifier queues mails; required.
	Notifier Notifier
	// Analyzer triages; nil means the rules engine on Pool, within the
	// guards (triage.Guard).
	Analyzer triage.Analyzer
	// Rules decides when the Analyzer's model stays unavailable through
	// the last retry; nil means the rules engine on Pool, within the
	// guards.
	Rules  triage.Analyzer
	Logger *slog.Logger

	// AppID names ticketd in Inngest; default "ticketd".
	AppID string
	// Dev is INNGEST_DEV: "1" (or any non-URL value) for the dev server at
	// http://127.0.0.1:8288, or the dev server's URL.
	Dev string
	// BaseURL is INNGEST_BASE_URL: the API and event API of a self-hosted
	// Inngest (inngest start), or of the dev server.
	BaseURL string
	// EventKey is INNGEST_EVENT_KEY; required outside dev mode.
	EventKey string
	// SigningKey is INNGEST_SIGNING_KEY, and SigningKeyFallback
	// INNGEST_SIGNING_KEY_FALLBACK; required outside dev mode.
	SigningKey         string
	SigningKeyFallback string
	// Env is INNGEST_ENV, a branch environment of Inngest Cloud.
	Env string
	// ServeOrigin is INNGEST_SERVE_HOST: the origin Inngest calls back
	// (https://ticketd.example.com); empty means the origin of the sync
	// request.
	ServeOrigin string
	// ServePath is where main mounts Handler; default "/api/inngest".
	ServePath string

	// LLMConcurrency is the Inngest concurrency limit on triage steps, which
	// bounds model calls across replicas; default 4. It is registered only
	// when a model triages (Analyzer is not the rules engine). Inngest
	// Cloud and a self-hosted server apply it (see selfhosted.go); the dev
	// server does not, so triage.Config.Concurrency also bounds the calls
	// of each process.
	LLMConcurrency int
	// Retries is how often Inngest retries a failed step; default 4. The
	// last attempt of the analysis falls back to the rules engine when the
	// model is unavailable.
	Retries int
	// RelayBatch is how many events one send carries; default 100.
	RelayBatch int
	// RelayPoll is how often the relay looks at the outbox when no
	// notification woke it; default 5s (1s when LISTEN fails).
	RelayPoll time.Duration
	// ResendAfter is how long after an event's send it is sent once more,
	// with the same id (see RunRelay); default 30s, negative never.
	ResendAfter time.Duration
	// RetriageAfter re-emits ticket.created for a To-Do ticket still not
	// triaged this long after its event went out, at most twice (the
	// engine may have lost the run); default 15m, negative disables.
	RetriageAfter time.Duration
	// HTTPClient talks to Inngest; nil means one with a 30s timeout.
	HTTPClient *http.Client
}

// Workflows is the set of Inngest functions and the event relay.
type Workflows struct {
	opts       Options
	store      *tickets.Store
	log        *slog.Logger
	client     inngestgo.Client
	handler    http.Handler // what main mounts at ServePath
	sdk        http.Handler // the SDK's handler, asked in process for the functions
	configured bool
	dev        bool
	selfHosted bool   // INNGEST_BASE_URL without INNGEST_DEV: inngest start
	modelLimit bool   // a model triages: register the LLMConcurrency limit
	engineURL  string // the event API's base URL, probed by Ready
	http       *http.Client
	syncedAt   time.Time // dev mode: when the dev server last listed our functions; the relay's alone
	registered bool      // self-hosted: the functions are registered; the relay's alone
}

// ErrNotConfigured is what Ready says when none of INNGEST_DEV,
// INNGEST_BASE_URL and INNGEST_EVENT_KEY is set: events are kept in the
// outbox.
var ErrNotConfigured = errors.New("workflows: Inngest is not configured (set INNGEST_DEV for the dev server, or INNGEST_EVENT_KEY and INNGEST_SIGNING_KEY); events wait in the outbox")

// New registers the functions. It fails only on incomplete or invalid
// settings (a production Inngest without both keys, a relative URL); an
// unconfigured or unreachable Inngest is not an error (see Ready).
func New(o Options) (*Workflows, error) {
	if o.Pool == nil {
		return nil, errors.New("workflows: Options.Pool is required")
	}
	if o.Notifier == nil {
		return nil, errors.New("workflows: Options.Notifier is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.AppID == "" {
		o.AppID = "ticketd"
	}
	if o.ServePath == "" {
		o.ServePath = "/api/inngest"
	}
	if o.LLMConcurrency <= 0 {
		o.LLMConcurrency = 4
	}
	if o.Retries <= 0 {
		o.Retries = 4
	}
	if o.RelayBatch <= 0 {
		o.RelayBatch = 100
	}
	if o.RelayPoll <= 0 {
		o.RelayPoll = 5 * time.Second
	}
	if o.ResendAfter == 0 {
		o.ResendAfter = 30 * time.Second
	}
	if o.RetriageAfter == 0 {
		o.RetriageAfter = 15 * time.Minute
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	store := tickets.NewStore(o.Pool)
	rules := triage.Guard(triage.NewRules(triage.RulesOptions{Similar: store, Logger: o.Logger}), triage.GuardOptions{})
	if o.Rules == nil {
		o.Rules = rules
	}
	if o.Analyzer == nil {
		o.Analyzer = rules
	}
	_, rulesOnly := o.Analyzer.(*triage.Rules)
	w := &Workflows{opts: o, store: store, log: o.Logger, http: o.HTTPClient, modelLimit: !rulesOnly}

	dev := DevMode(o.Dev)
	w.dev = dev
	w.configured = dev || o.EventKey != "" || o.BaseURL != ""
	w.selfHosted = !dev && o.BaseURL != ""
	base := strings.TrimRight(o.BaseURL, "/")
	if base == "" && dev {
		base = "http://127.0.0.1:8288"
		if u, err := url.Parse(o.Dev); err == nil && u.Scheme != "" && u.Host != "" {
			base = strings.TrimRight(o.Dev, "/")
		}
	}
	if w.configured && !dev && (o.EventKey == "" || o.SigningKey == "") {
		// Inngest Cloud and `inngest start` take events only with the event
		// key, and the SDK accepts their calls only when signed.
		return nil, errors.New("workflows: outside dev mode (INNGEST_DEV unset), Inngest needs both INNGEST_EVENT_KEY and INNGEST_SIGNING_KEY")
	}
	if w.selfHosted && o.ServeOrigin == "" {
		// ticketd registers itself with a self-hosted server, at the URL
		// the server is to call.
		return nil, errors.New("workflows: a self-hosted Inngest (INNGEST_BASE_URL) needs the URL it calls ticketd back at (INNGEST_SERVE_HOST)")
	}
	for _, u := range []string{base, o.ServeOrigin} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Host == "" {
			return nil, fmt.Errorf("workflows: %q is not an absolute URL", u)
		}
	}
	copts := inngestgo.ClientOpts{
		AppID:              o.AppID,
		HTTPClient:         o.HTTPClient,
		Logger:             o.Logger.With("component", "inngest"),
		Dev:                &dev,
		SigningKey:         &o.SigningKey,
		SigningKeyFallback: &o.SigningKeyFallback,
		Env:                &o.Env,
	}
	key := o.EventKey
	if key == "" && dev {
		key = "NO_EVENT_KEY_SET" // what the SDK sends to a dev server
	}
	copts.EventKey = &key
	if base != "" {
		copts.APIBaseURL = &base
		copts.EventAPIBaseURL = &base
		w.engineURL = base
	} else {
		w.engineURL = "https://inn.gs"
	}
	client, err := inngestgo.NewClient(copts)
	if err != nil {
		return nil, fmt.Errorf("workflows: inngest client: %w", err)
	}
	w.client = client
	if err := w.register(); err != nil {
		return nil, err
	}
	serve := inngestgo.ServeOpts{Path: &o.ServePath, EnableUnauthedSync: inngestgo.BoolPtr(false)}
	if o.ServeOrigin != "" {
		serve.Origin = &o.ServeOrigin
	}
	w.sdk = client.ServeWithOpts(serve)
	w.handler = w.sdk
	return w, nil
}

// DevMode reports whether INNGEST_DEV (Options.Dev) selects the dev
// server: set, and not a false value.
func DevMode(dev string) bool { return dev != "" && !isFalse(dev) }

func isFalse(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "false", "no", "off":
		return true
	}
	return false
}

// Configured reports whether an Inngest is configured at all.
func (w *Workflows) Configured() bool { return w.configured }

// AcceptsUnsigned reports whether the functions run on calls that carry
// no Inngest signature: in dev mode (INNGEST_DEV), whose dev server signs
// nothing. Anyone who can reach such a handler can run a step with an
// event they made up, so it must be reachable from loopback alone: serve
// Handler on a listener bound to loopback, and PublicHandler everywhere
// else.
func (w *Workflows) AcceptsUnsigned() bool { return w.dev }

// Handler serves the functions to Inngest; mount it at ServePath. Outside
// dev mode the SDK runs only calls signed with SigningKey. In dev mode it
// runs unsigned calls, and this handler answers only clients on loopback:
// mount it on a listener bound to loopback.
func (w *Workflows) Handler() http.Handler {
	if !w.dev {
		return w.handler
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r.RemoteAddr) {
			w.log.Warn("unsigned workflow call refused: not from loopback", "remote", r.RemoteAddr)
			refuseUnsigned(rw)
			return
		}
		w.handler.ServeHTTP(rw, r)
	})
}

// PublicHandler serves the functions on a listener others can reach: calls
// signed with SigningKey run (the SDK checks), and in dev mode, where
// nothing is signed, every call is refused.
func (w *Workflows) PublicHandler() http.Handler {
	if !w.dev {
		return w.handler
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.log.Warn("unsigned workflow call refused on the public listener", "remote", r.RemoteAddr, "method", r.Method)
		refuseUnsigned(rw)
	})
}

func refuseUnsigned(rw http.ResponseWriter) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusUnauthorized)
	_, _ = rw.Write([]byte(`{"message":"this endpoint runs only calls signed with INNGEST_SIGNING_KEY; the dev server's unsigned calls are served on INNGEST_LISTEN, on loopback"}` + "\n"))
}

// fromLoopback reports whether a request's peer (host:port) is on
// loopback.
func fromLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Ready reports whether the workflow engine is configured and answers, for
// /readyz. ticketd takes mail either way; events wait in the outbox.
func (w *Workflows) Ready(ctx context.Context) error {
	if !w.configured {
		return ErrNotConfigured
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.engineURL+"/", nil)
	if err != nil {
		return fmt.Errorf("workflows: probe %s: %w", w.engineURL, err)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("workflows: Inngest at %s is unreachable: %w", w.engineURL, err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("workflows: Inngest at %s answers %s", w.engineURL, resp.Status)
	}
	return nil
}

// engineReady reports whether an event sent now starts ticketd's functions:
// a self-hosted server has registered them, a dev server lists them.
func (w *Workflows) engineReady(ctx context.Context) error {
	if w.selfHosted && !w.registered {
		return errNotRegistered
	}
	return w.devSynced(ctx)
}

// errNotSynced means the dev server does not know ticketd's functions yet.
var errNotSynced = errors.New("workflows: the Inngest dev server has not synced ticketd's functions yet; events wait")

// devSynced reports whether the dev server lists ticketd's triage function.
// The dev server keeps functions in memory: after it starts, it knows them
// only once it has synced /api/inngest, and an event it takes before then
// starts nothing. Inngest Cloud and `inngest start` keep them across
// restarts, so only dev mode asks. A positive answer holds for a few
// seconds.
func (w *Workflows) devSynced(ctx context.Context) error {
	if !w.dev || time.Since(w.syncedAt) < 3*time.Second {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.engineURL+"/dev", nil)
	if err != nil {
		return err
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("workflows: Inngest at %s is unreachable: %w", w.engineURL, err)
	}
	defer resp.Body.Close()
	var info struct {
		Functions []struct {
			Slug string `json:"slug"`
		} `json:"functions"`
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("workflows: the dev server answers %s at /dev", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return fmt.Errorf("workflows: read the dev server's /dev: %w", err)
	}
	want := w.opts.AppID + "-" + FnTriage
	for _, f := range info.Functions {
		if f.Slug == want {
			w.syncedAt = time.Now()
			return nil
		}
	}
	return errNotSynced
}

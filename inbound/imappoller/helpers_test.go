package imappoller_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound/imappoller"
	"ticketd/pgtest"
	"ticketd/tickets"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// logs sends logs to t.Log until the test ends and keeps them for checks.
type logs struct {
	t    testing.TB
	done atomic.Bool
	mu   sync.Mutex
	buf  bytes.Buffer
}

func newLogs(t testing.TB) *logs {
	l := &logs{t: t}
	t.Cleanup(func() { l.done.Store(true) })
	return l
}

func (l *logs) Write(b []byte) (int, error) {
	l.mu.Lock()
	l.buf.Write(b)
	l.mu.Unlock()
	if !l.done.Load() {
		l.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

func (l *logs) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logs) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.buf.String(), substr)
}

// store is a small deliverer: the raw bytes go into raw_messages once per
// content hash, and it counts the calls per test mail.
type store struct {
	pool *pgxpool.Pool
	// fail, when set, decides whether a call fails instead.
	fail func(id string) error

	mu    sync.Mutex
	calls map[string]int
	by    map[string]string // id -> the label of the poller that delivered it
}

var idRe = regexp.MustCompile(`marker ([a-z0-9-]+)\.`)

func mailID(raw []byte) string {
	if m := idRe.FindSubmatch(raw); m != nil {
		return string(m[1])
	}
	return ""
}

func newStore(pool *pgxpool.Pool) *store {
	return &store{pool: pool, calls: map[string]int{}, by: map[string]string{}}
}

// as returns a DeliverFunc recording label as the deliverer.
func (s *store) as(label string) imappoller.DeliverFunc {
	return func(ctx context.Context, raw []byte, m imappoller.Mail) error {
		id := mailID(raw)
		if s.fail != nil {
			if err := s.fail(id); err != nil {
				return err
			}
		}
		sum := sha256.Sum256(raw)
		_, err := s.pool.Exec(ctx, `
			INSERT INTO raw_messages (sha256, data, source, mailbox, uid)
			VALUES ($1, $2, 'imap', $3, $4) ON CONFLICT (sha256) DO NOTHING`,
			sum[:], raw, m.Mailbox, int64(m.UID))
		if err != nil {
			return fmt.Errorf("insert raw message: %w", err)
		}
		s.mu.Lock()
		s.calls[id]++
		s.by[id] = label
		s.mu.Unlock()
		return nil
	}
}

func (s *store) Deliver(ctx context.Context, raw []byte, m imappoller.Mail) error {
	return s.as("")(ctx, raw, m)
}

func (s *store) callsOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

func (s *store) delivered() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// rows counts the stored rows per test mail.
func rows(t testing.TB, pool *pgxpool.Pool) map[string]int {
	t.Helper()
	r, err := pool.Query(context.Background(), `SELECT data FROM raw_messages`)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[string]int{}
	for r.Next() {
		var data []byte
		if err := r.Scan(&data); err != nil {
			t.Fatal(err)
		}
		out[mailID(data)]++
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds; it fails the test after a minute,
// which only a broken poller takes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testMail(id string) []byte {
	return []byte(fmt.Sprintf("From: Ann <ann@client.test>\r\nTo: support@example.test\r\n"+
		"Subject: help %s\r\nMessage-ID: <%s@client.test>\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n\r\n"+
		"Hello, marker %s.\r\n", id, id, id))
}

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// account reaches one mailbox as a mail client would.
type account struct {
	addr, user, password string
}

func (a account) client(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(a.addr, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", a.addr, err)
	}
	if err := c.Login(a.user, a.password).Wait(); err != nil {
		c.Close()
		t.Fatalf("login: %v", err)
	}
	return c
}

func (a account) url(mailbox string) string {
	u := url.URL{Scheme: "imap+insecure", User: url.UserPassword(a.user, a.password), Host: a.addr, Path: "/" + mailbox}
	return u.String()
}

// appendMails appends the test mails to mailbox.
func (a account) appendMails(t testing.TB, mailbox string, ids ...string) {
	t.Helper()
	c := a.client(t)
	defer c.Close()
	for _, id := range ids {
		msg := testMail(id)
		cmd := c.Append(mailbox, int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			t.Fatalf("append %s: %v", id, err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatalf("append %s: %v", id, err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("append %s: %v", id, err)
		}
	}
}

// flags returns the flags of every message in mailbox by test mail id.
func (a account) flags(t testing.TB, mailbox string) map[string][]imap.Flag {
	t.Helper()
	c := a.client(t)
	defer c.Close()
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("examine %s: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return map[string][]imap.Flag{}
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
		Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatalf("fetch flags in %s: %v", mailbox, err)
	}
	if len(msgs) != int(sel.NumMessages) {
		t.Logf("%s: %d messages, %d fetched", mailbox, sel.NumMessages, len(msgs))
	}
	out := map[string][]imap.Flag{}
	for _, m := range msgs {
		var body []byte
		for _, s := range m.BodySection {
			body = s.Bytes
		}
		out[mailID(body)] = m.Flags
	}
	return out
}

func (a account) run(t testing.TB, cmd func(c *imapclient.Client) error) {
	t.Helper()
	c := a.client(t)
	defer c.Close()
	if err := cmd(c); err != nil {
		t.Fatal(err)
	}
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

// memServer is go-imap's in-memory server on 127.0.0.1, which a test can
// stop and start again on the same port without losing its mail.
type memServer struct {
	t    testing.TB
	mem  *imapmemserver.Server
	user *imapmemserver.User
	addr string

	mu  sync.Mutex
	srv *imapserver.Server
}

func startMemServer(t testing.TB, mailboxes ...string) *memServer {
	t.Helper()
	m := &memServer{t: t, mem: imapmemserver.New(), user: imapmemserver.NewUser("support", "pw")}
	for _, mb := range append([]string{"INBOX"}, mailboxes...) {
		if err := m.user.Create(mb, nil); err != nil {
			t.Fatal(err)
		}
	}
	m.mem.AddUser(m.user)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = l.Addr().String()
	m.serve(l)
	t.Cleanup(m.stop)
	return m
}

func (m *memServer) serve(l net.Listener) {
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return m.mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	m.mu.Lock()
	m.srv = srv
	m.mu.Unlock()
	go srv.Serve(l)
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

func (m *memServer) stop() {
	m.mu.Lock()
	srv := m.srv
	m.srv = nil
	m.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// restart stops the server, dropping every connection, and starts it again
// on the same address with the same mail.
func (m *memServer) restart() {
	m.t.Helper()
	m.stop()
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", m.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		m.t.Fatalf("listen again on %s: %v", m.addr, err)
	}
	m.serve(l)
}

func (m *memServer) account() account {
	return account{addr: m.addr, user: "support", password: "pw"}
}

// runPoller runs a poller until the test ends.
func runPoller(t testing.TB, opt imappoller.Options) (stop func()) {
	t.Helper()
	p, err := imappoller.New(opt)
	if err != nil {
		t.Fatalf("new poller: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("poller: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// recreate deletes a mailbox and creates it anew, empty, under a new
// UIDVALIDITY, as an admin rebuilding it from a backup does.
func (a account) recreate(t testing.TB, mailbox string) {
	t.Helper()
	a.run(t, func(c *imapclient.Client) error {
		if err := c.Delete(mailbox).Wait(); err != nil {
			return err
		}
		return c.Create(mailbox, nil).Wait()
	})
}

// waitCheckpoint waits until the poller's checkpoint stands at lastUID and
// returns it.
func waitCheckpoint(t testing.TB, pool *pgxpool.Pool, p *imappoller.Poller, lastUID uint32) tickets.IMAPCheckpoint {
	t.Helper()
	var cp tickets.IMAPCheckpoint
	waitFor(t, fmt.Sprintf("the checkpoint at UID %d", lastUID), func() bool {
		var err error
		cp, err = tickets.NewStore(pool).IMAPCheckpoint(context.Background(), p.Mailbox())
		return err == nil && cp.LastUID == lastUID
	})
	return cp
}

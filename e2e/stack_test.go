// Package e2e runs ticketd's real pieces together on loopback: PostgreSQL,
// the Inngest dev server, the ticketd binary, Dovecot holding a support
// mailbox that ticketd polls, Python's smtplib as the customers' mail client,
// a capturing SMTP server as the relay, and the fake OpenAI-compatible LLM.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound/imappoller/dovecot"
	"ticketd/mailauth/dnstest"
	"ticketd/migrations"
	"ticketd/pgcluster"
	"ticketd/pgtest"
	"ticketd/workflows/inngesttest"
	"ticketd/workflows/llmfake"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// ticketdBinary builds cmd/ticketd once per test binary.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func ticketdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ticketd-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "ticketd")
		out, err := exec.Command("go", "build", "-o", buildPath, "ticketd/cmd/ticketd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ticketd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// captured is one mail the relay received.
type captured struct {
	From string
	To   []string
	Data []byte
	Hdr  mail.Header
	Text string
}

// sink is the SMTP relay ticketd sends through: a go-smtp server that keeps
// every mail. It can refuse mail (4xx) to play a relay that is down.
type sink struct {
	mu      sync.Mutex
	mails   []captured
	refuse  bool
	srv     *smtp.Server
	Addr    string
	refused int
}

func startSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "relay.test"
	s.srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = l.Addr().String()
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }

type sinkSession struct {
	s    *sink
	from string
	to   []string
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.refuse {
		ss.s.refused++
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "relay unavailable"}
	}
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	c := captured{From: ss.from, To: ss.to, Data: b}
	if mr, err := mail.CreateReader(bytes.NewReader(b)); err == nil {
		c.Hdr = mr.Header
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			if h, ok := p.Header.(*mail.InlineHeader); ok {
				if ct, _, _ := h.ContentType(); ct == "text/plain" {
					body, _ := io.ReadAll(p.Body)
					c.Text = string(body)
				}
			}
		}
	}
	ss.s.mu.Lock()
	ss.s.mails = append(ss.s.mails, c)
	ss.s.mu.Unlock()
	return nil
}
func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

func (s *sink) all() []captured {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]captured(nil), s.mails...)
}

// to returns the mails sent to addr, in the order received.
func (s *sink) to(addr string) []captured {
	var out []captured
	for _, m := range s.all() {
		for _, r := range m.To {
			if strings.EqualFold(r, addr) {
				out = append(out, m)
			}
		}
	}
	return out
}

// stack is every part of ticketd, running.
type stack struct {
	t        *testing.T
	bin      string
	env      []string
	dbURL    string
	pool     *pgxpool.Pool
	httpAddr string
	smtpAddr string
	// inngestAddr is INNGEST_LISTEN, where the dev server calls.
	inngestAddr string
	sink        *sink
	llm         *llmfake.Server
	dove        *dovecot.Server
	inngest     *inngesttest.Server
	dns         *dnstest.Server    // the DNS the sender checks ask
	cluster     *pgcluster.Cluster // with OwnDatabase
	logPath     string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

const (
	supportAddr     = "support@example.com"
	imapUser        = "support"
	imapPassword    = "imap-password-1"
	adminPassword   = "admin-password-0123"
	ticketdSecret   = "e2e-secret-0123456789abcdef"
	settleQuietTime = 3 * time.Second
)

// stackOptions vary the stack for fault tests.
type stackOptions struct {
	// OwnDatabase runs a private PostgreSQL cluster that the test may
	// restart, instead of a database on the shared test cluster.
	OwnDatabase bool
	// Env adds or overrides ticketd's environment.
	Env []string
}

func startStack(t *testing.T, opt stackOptions) *stack {
	t.Helper()
	ctx := context.Background()
	s := &stack{t: t, bin: ticketdBinary(t), httpAddr: freeAddr(t), smtpAddr: freeAddr(t), inngestAddr: freeAddr(t)}
	if opt.OwnDatabase {
		c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: t.TempDir(), Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Stop() })
		s.cluster = c
		s.dbURL = c.URL("postgres")
		p, err := pgxpool.New(ctx, s.dbURL)
		if err != nil {
			t.Fatal(err)
		}
		_, err = migrations.Up(ctx, p)
		p.Close()
		if err != nil {
			t.Fatal(err)
		}
	} else {
		s.dbURL = pgtest.URL(t)
	}
	pool, err := pgxpool.New(ctx, s.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s.pool = pool
	s.sink = startSink(t)
	s.llm, err = llmfake.Start(llmfake.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.llm.Close() })
	if err := dovecot.Available(); err != nil {
		t.Fatal(err)
	}
	s.dove, err = dovecot.Start(ctx, dovecot.Options{Dir: t.TempDir(), Users: map[string]string{imapUser: imapPassword}})
	if err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	t.Cleanup(func() { s.dove.Stop() })
	// The dev server's calls are unsigned: ticketd serves them on a
	// loopback listener of their own (INNGEST_LISTEN).
	appURL := "http://" + s.inngestAddr + "/api/inngest"
	s.inngest = inngesttest.Start(t, inngesttest.Options{AppURL: appURL})
	// The customers and staff of example.com send from this machine, and
	// their domain says so (RFC 7208), with no DMARC record: their From
	// is authenticated by an aligned SPF pass.
	s.dns = dnstest.Start(t)
	s.dns.SPF("example.com", "v=spf1 ip4:127.0.0.1 -all")
	s.logPath = filepath.Join(t.TempDir(), "ticketd.log")
	s.env = append(os.Environ(),
		"DATABASE_URL="+s.dbURL,
		"TICKETD_DOMAIN=example.com",
		"TICKETD_SECRET="+ticketdSecret,
		"TICKETD_BASE_URL=http://"+s.httpAddr,
		"HTTP_LISTEN="+s.httpAddr,
		"INNGEST_LISTEN="+s.inngestAddr,
		"SMTP_LISTEN="+s.smtpAddr,
		"SMTP_RELAY_URL=smtp://"+s.sink.Addr,
		"IMAP_URL=imap+insecure://"+imapUser+":"+imapPassword+"@"+s.dove.Addr+"/INBOX",
		"IMAP_POLL_INTERVAL=1s",
		"LLM_PROVIDER=openai",
		"LLM_BASE_URL="+s.llm.URL,
		"LLM_API_KEY=e2e",
		"LLM_MODEL=fake-model",
		"INNGEST_DEV="+s.inngest.URL,
		"DNS_RESOLVER="+s.dns.Addr,
		"LOG_FORMAT=json",
		"LOG_LEVEL=debug",
	)
	s.env = append(s.env, opt.Env...)
	s.start()
	t.Cleanup(func() {
		s.stop(syscall.SIGTERM)
		if t.Failed() {
			b, _ := os.ReadFile(s.logPath)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("ticketd log (tail):\n%s", b)
		}
	})
	s.inngest.Sync(t, appURL, 5)
	return s
}

// start runs `ticketd serve` and waits until /readyz answers 200.
func (s *stack) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, "serve")
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	s.eventually("ticketd ready", 60*time.Second, func() error {
		resp, err := http.Get("http://" + s.httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
}

// stop signals ticketd and waits for it to exit.
func (s *stack) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// ticketd runs a ticketd subcommand against the stack's database.
func (s *stack) ticketd(stdin string, args ...string) string {
	s.t.Helper()
	cmd := exec.Command(s.bin, args...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("ticketd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// eventually retries check until it returns nil or the time is up.
func (s *stack) eventually(what string, within time.Duration, check func() error) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("%s: not within %v: %v", what, within, err)
}

// sendSMTP hands a raw mail to ticketd's SMTP receiver with Python's
// smtplib, a mail client nobody on this project wrote.
func (s *stack) sendSMTP(mailFrom string, rcpts []string, raw string) {
	s.t.Helper()
	host, port, _ := net.SplitHostPort(s.smtpAddr)
	script := `import sys, smtplib
host, port, mfrom = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = sys.stdin.buffer.read()
with smtplib.SMTP(host, port, timeout=30) as c:
    c.sendmail(mfrom, sys.argv[4:], data)
`
	cmd := exec.Command("python3", append([]string{"-c", script, host, port, mailFrom}, rcpts...)...)
	cmd.Stdin = strings.NewReader(strings.ReplaceAll(raw, "\n", "\r\n"))
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("smtplib: %v\n%s", err, out)
	}
}

// appendIMAP puts a mail into the support mailbox on Dovecot, where
// ticketd's poller finds it.
func (s *stack) appendIMAP(raw string) {
	s.t.Helper()
	c, err := imapclient.DialInsecure(s.dove.Addr, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(imapUser, imapPassword).Wait(); err != nil {
		s.t.Fatal(err)
	}
	data := []byte(strings.ReplaceAll(raw, "\n", "\r\n"))
	cmd := c.Append("INBOX", int64(len(data)), nil)
	if _, err := cmd.Write(data); err != nil {
		s.t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		s.t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		s.t.Fatal(err)
	}
	c.Logout().Wait()
}

type ticketRow struct {
	ID       int64
	Status   string
	Priority string
	Assignee string
	Subject  string
}

func (s *stack) ticketBySubject(subject string) (ticketRow, error) {
	var r ticketRow
	err := s.pool.QueryRow(context.Background(), `
		SELECT t.id, t.status::text, t.priority::text, COALESCE(u.email, ''), t.subject
		FROM tickets t LEFT JOIN users u ON u.id = t.assignee_id
		WHERE t.subject = $1`, subject).Scan(&r.ID, &r.Status, &r.Priority, &r.Assignee, &r.Subject)
	return r, err
}

func (s *stack) count(query string, args ...any) int {
	s.t.Helper()
	var n int
	if err := s.pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// settle waits until both outboxes are drained and nothing new has been
// queued or captured for a few seconds.
func (s *stack) settle() {
	s.t.Helper()
	last, quietSince := "", time.Now()
	s.eventually("the stack to settle", 90*time.Second, func() error {
		state := fmt.Sprintf("%d/%d/%d/%d",
			s.count(`SELECT count(*) FROM event_outbox WHERE sent_at IS NULL`),
			s.count(`SELECT count(*) FROM mail_outbox WHERE status = 'pending'`),
			s.count(`SELECT count(*) FROM mail_outbox`),
			len(s.sink.all()))
		if !strings.HasPrefix(state, "0/0/") {
			last = ""
			return fmt.Errorf("outboxes not drained: %s", state)
		}
		if state != last {
			last, quietSince = state, time.Now()
		}
		if time.Since(quietSince) < settleQuietTime {
			return errors.New("still changing")
		}
		return nil
	})
}

var msgIDRe = regexp.MustCompile(`<[^<>\s]+>`)

func ids(h mail.Header, key string) []string {
	return msgIDRe.FindAllString(h.Get(key), -1)
}

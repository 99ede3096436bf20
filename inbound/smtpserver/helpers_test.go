package smtpserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound/smtpserver"
	"ticketd/migrations"
	"ticketd/pgtest"
	"ticketd/testcert"
)

func TestMain(m *testing.M) {
	if os.Getenv(faultChildEnv) != "" {
		os.Exit(faultChild())
	}
	pgtest.Main(m)
}

// testLogger sends logs to t.Log until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &tlogWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *tlogWriter) Write(b []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

// rawStore is a deliberately small deliverer: it stores the raw bytes in
// raw_messages, once per content hash, and remembers the envelopes.
type rawStore struct {
	pool *pgxpool.Pool

	mu   sync.Mutex
	envs []smtpserver.Envelope
}

func (rs *rawStore) Deliver(ctx context.Context, raw []byte, env smtpserver.Envelope) error {
	sum := sha256.Sum256(raw)
	_, err := rs.pool.Exec(ctx, `
		INSERT INTO raw_messages (sha256, data, source, remote_addr, mail_from, rcpt_to)
		VALUES ($1, $2, 'smtp', $3, $4, $5)
		ON CONFLICT (sha256) DO NOTHING`, sum[:], raw, env.RemoteAddr, env.MailFrom, env.RcptTo)
	if err != nil {
		return fmt.Errorf("insert raw message: %w", err)
	}
	rs.mu.Lock()
	rs.envs = append(rs.envs, env)
	rs.mu.Unlock()
	return nil
}

func (rs *rawStore) envelopes() []smtpserver.Envelope {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]smtpserver.Envelope(nil), rs.envs...)
}

// countWith counts stored messages containing marker.
func countWith(t testing.TB, pool *pgxpool.Pool, marker string) int {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(),
		`SELECT count(*) FROM raw_messages WHERE position($1::bytea IN data) > 0`, []byte(marker)).Scan(&n)
	if err != nil {
		t.Fatalf("count messages with %q: %v", marker, err)
	}
	return n
}

// acceptSupport owns support@example.test and its plus addresses.
func acceptSupport(rcpt string) bool {
	local, domain, ok := strings.Cut(strings.ToLower(rcpt), "@")
	if !ok || domain != "example.test" {
		return false
	}
	base, _, _ := strings.Cut(local, "+")
	return base == "support"
}

// start runs a server on 127.0.0.1:0 and shuts it down when the test ends.
func start(t testing.TB, opt smtpserver.Options) (*smtpserver.Server, string) {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = testLogger(t)
	}
	if opt.Accepts == nil {
		opt.Accepts = acceptSupport
	}
	if opt.Domain == "" {
		opt.Domain = "mx.example.test"
	}
	s, err := smtpserver.New(opt)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, l.Addr().String()
}

// mail builds a plain-text message of about size bytes.
func mail(id string, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Ann Example <ann@client.test>\r\nTo: support@example.test\r\n"+
		"Subject: printer on fire %s\r\nMessage-ID: <%s@client.test>\r\n"+
		"Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\nHello, marker %s.\r\n", id, id, id)
	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 2)[:78] + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return []byte(b.String())
}

// greeted is a go-smtp client that has said EHLO, closed when t ends.
func greeted(t testing.TB, addr string) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

// send delivers one mail with a fresh go-smtp client.
func send(addr, from string, to []string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		return err
	}
	if err := c.Mail(from, &smtp.MailOptions{Size: int64(len(msg))}); err != nil {
		return err
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	// The mail is the server's once DATA got 250; how QUIT goes does not
	// matter (a server shutting down answers it 421).
	_ = c.Quit()
	return nil
}

// migratedPool connects to url and applies the migrations.
func migratedPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrations.Up(context.Background(), pool); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pool
}

// code is the SMTP reply code in err, 250 for nil, 0 for no reply.
func code(err error) int {
	if err == nil {
		return 250
	}
	if se, ok := err.(*smtp.SMTPError); ok {
		return se.Code
	}
	return 0
}

// selfSigned returns a server TLS config for localhost and a client
// config trusting it.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	cert, roots := testcert.New(t)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, &tls.Config{RootCAs: roots, ServerName: "localhost"}
}

// rawConn is a bare SMTP conversation for what the clients do not let a
// test do, such as stopping in the middle of DATA.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *lineReader
}

type lineReader struct {
	nc  net.Conn
	buf []byte
}

// readReply reads one (possibly multi-line) reply and returns its last line.
func (lr *lineReader) readReply() (string, error) {
	for {
		line, err := lr.readLine()
		if err != nil {
			return "", err
		}
		if len(line) < 4 || line[3] != '-' {
			return line, nil
		}
	}
}

func (lr *lineReader) readLine() (string, error) {
	for {
		if i := strings.Index(string(lr.buf), "\r\n"); i >= 0 {
			line := string(lr.buf[:i])
			lr.buf = lr.buf[i+2:]
			return line, nil
		}
		b := make([]byte, 4096)
		_ = lr.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := lr.nc.Read(b)
		lr.buf = append(lr.buf, b[:n]...)
		if err != nil {
			if n > 0 {
				continue
			}
			if err == io.EOF && len(lr.buf) > 0 {
				line := string(lr.buf)
				lr.buf = nil
				return line, nil
			}
			return "", err
		}
	}
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, br: &lineReader{nc: nc}}
}

// cmd writes line (CRLF added when missing) and returns the reply's last line.
func (c *rawConn) cmd(line string) string {
	c.t.Helper()
	c.write(line)
	return c.reply()
}

func (c *rawConn) write(s string) {
	c.t.Helper()
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

func (c *rawConn) reply() string {
	c.t.Helper()
	line, err := c.br.readReply()
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return line
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

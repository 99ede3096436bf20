package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"ticketd/mailauth/dnstest"
	"ticketd/pgtest"
	"ticketd/testlog"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// served is `ticketd serve` running in this process, as main runs it.
type served struct {
	httpAddr, smtpAddr string
	stop               context.CancelFunc // what SIGTERM does
	done               chan error
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

// startServe runs serve on a fresh database, without a workflow engine
// (events wait in their outbox), and waits for /readyz.
func startServe(t *testing.T) *served { return startServeWith(t, nil, testlog.New(t)) }

// startServeWith is startServe with more settings, logging to log.
func startServeWith(t *testing.T, more map[string]string, log *slog.Logger) *served {
	t.Helper()
	s := &served{httpAddr: freeAddr(t), smtpAddr: freeAddr(t), done: make(chan error, 1)}
	settings := map[string]string{
		"DATABASE_URL":     pgtest.URL(t),
		"TICKETD_SECRET":   "a test secret 0123456789",
		"TICKETD_DOMAIN":   "example.com",
		"HTTP_LISTEN":      s.httpAddr,
		"TICKETD_BASE_URL": "http://" + s.httpAddr,
		"SMTP_LISTEN":      s.smtpAddr,
		"MAILDIR":          t.TempDir(),
		"DNS_RESOLVER":     dnstest.Start(t).Addr,
	}
	for k, v := range more {
		settings[k] = v
	}
	cfg, err := LoadConfig(env(settings))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go func() { s.done <- serve(ctx, cfg, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-s.done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		res, err := http.Get("http://" + s.httpAddr + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %v", err)
		}
	}
}

// smtpClient is a line-level SMTP client.
type smtpClient struct {
	t *testing.T
	*textproto.Conn
}

func dialSMTP(t *testing.T, addr string) *smtpClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &smtpClient{t, textproto.NewConn(nc)}
	t.Cleanup(func() { c.Close() })
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	c.cmd(250, "EHLO client.example.org")
	return c
}

// cmd sends a command and returns the reply's code, failing the test when
// it is not want.
func (c *smtpClient) cmd(want int, format string, args ...any) int {
	c.t.Helper()
	code, msg, err := c.try(format, args...)
	if code != want {
		c.t.Fatalf("%s: %d %s (%v), want %d", fmt.Sprintf(format, args...), code, msg, err, want)
	}
	return code
}

func (c *smtpClient) try(format string, args ...any) (int, string, error) {
	id, err := c.Cmd(format, args...)
	if err != nil {
		return 0, "", err
	}
	c.StartResponse(id)
	defer c.EndResponse(id)
	return c.ReadResponse(0)
}

// TestServeCountsRefusals: a refused recipient shows in
// ticketd_mails_refused_total, as the README says.
func TestServeCountsRefusals(t *testing.T) {
	s := startServe(t)
	c := dialSMTP(t, s.smtpAddr)
	c.cmd(250, "MAIL FROM:<ann@example.org>")
	c.cmd(550, "RCPT TO:<nobody@elsewhere.example>")
	res, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if want := `ticketd_mails_refused_total{reason="recipient",source="smtp"} 1`; !strings.Contains(string(b), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}

// TestServeShutdown: on SIGTERM the SMTP receiver stops taking mail at once
// and finishes the message in flight, even while a slow web request holds
// up the web server's shutdown.
func TestServeShutdown(t *testing.T) {
	s := startServe(t)
	slow, err := net.Dial("tcp", s.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /signin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\nemail=a")

	c := dialSMTP(t, s.smtpAddr)
	c.cmd(250, "MAIL FROM:<bob@example.org>")
	c.cmd(250, "RCPT TO:<support@example.com>")
	c.cmd(354, "DATA")
	fmt.Fprint(c.W, "From: bob@example.org\r\nTo: support@example.com\r\nSubject: in flight\r\nMessage-ID: <flight@example.org>\r\n\r\n")
	c.W.Flush()

	s.stop()
	greeted := true
	for deadline := time.Now().Add(10 * time.Second); greeted && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		nc, err := net.DialTimeout("tcp", s.smtpAddr, time.Second)
		if err != nil {
			greeted = false
			break
		}
		nc.SetReadDeadline(time.Now().Add(time.Second))
		line, _ := bufio.NewReader(nc).ReadString('\n')
		nc.Close()
		greeted = strings.HasPrefix(line, "220")
	}
	if greeted {
		t.Error("after SIGTERM the SMTP receiver still greets new clients")
	}
	fmt.Fprint(c.W, "the rest of the message\r\n.\r\n")
	c.W.Flush()
	if code, msg, err := c.ReadResponse(250); err != nil {
		t.Errorf("the message in flight at SIGTERM: %d %s %v", code, msg, err)
	}
	slow.Close()
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not return after SIGTERM")
	}
}

package smtpserver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"ticketd/inbound/smtpserver"
	"ticketd/pgcluster"
	"ticketd/pgtest"
)

func TestAcceptedMailIsStored(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	_, addr := start(t, smtpserver.Options{Deliver: rs.Deliver})

	msg := mail("stored-1", 2000)
	if err := send(addr, "ann@client.test", []string{"support@example.test", "Support+abc@Example.test"}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	var data []byte
	var mailFrom, remote string
	var rcpt []string
	err := pool.QueryRow(context.Background(),
		`SELECT data, mail_from, remote_addr, rcpt_to FROM raw_messages`).Scan(&data, &mailFrom, &remote, &rcpt)
	if err != nil {
		t.Fatalf("select stored mail: %v", err)
	}
	if !bytes.Equal(data, msg) {
		t.Errorf("stored bytes differ from the sent ones:\n%s", cmp.Diff(string(msg), string(data)))
	}
	if diff := cmp.Diff([]string{"support@example.test", "Support+abc@Example.test"}, rcpt); diff != "" {
		t.Errorf("rcpt_to (-want +got):\n%s", diff)
	}
	if mailFrom != "ann@client.test" || !strings.HasPrefix(remote, "127.0.0.1:") {
		t.Errorf("mail_from %q, remote_addr %q", mailFrom, remote)
	}
	envs := rs.envelopes()
	if len(envs) != 1 || envs[0].CID == "" || envs[0].Helo != "client.test" || envs[0].TLS {
		t.Errorf("envelope = %+v, want one with a cid, helo client.test, no TLS", envs)
	}
}

// TestDotStuffingAndNullSender: lines starting with a dot come back unstuffed
// (RFC 5321 4.5.2), and a bounce's null reverse-path is kept as "".
func TestDotStuffingAndNullSender(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	_, addr := start(t, smtpserver.Options{Deliver: rs.Deliver})

	msg := []byte("From: MAILER-DAEMON@client.test\r\nTo: support@example.test\r\nSubject: dots\r\n\r\n.\r\n..two\r\n.end\r\n")
	if err := send(addr, "", []string{"support@example.test"}, msg); err != nil {
		t.Fatalf("send: %v", err)
	}
	var data []byte
	var mailFrom string
	if err := pool.QueryRow(context.Background(), `SELECT data, mail_from FROM raw_messages`).Scan(&data, &mailFrom); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(msg), string(data)); diff != "" {
		t.Errorf("stored (-sent +stored):\n%s", diff)
	}
	if mailFrom != "" {
		t.Errorf("mail_from = %q, want the null sender", mailFrom)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	_, addr := start(t, smtpserver.Options{
		Deliver:         rs.Deliver,
		MaxMessageBytes: 10_000,
		MaxRecipients:   3,
		MaxLineLength:   1000,
	})

	tests := []struct {
		name string
		// steps are sent in order; the reply to the last one must start
		// with want, every earlier one with 2 or 3.
		steps []string
		want  string
	}{
		{"foreign recipient", []string{"MAIL FROM:<ann@client.test>", "RCPT TO:<victim@elsewhere.test>"}, "550 5.1.1"},
		{"unknown local part", []string{"MAIL FROM:<ann@client.test>", "RCPT TO:<root@example.test>"}, "550 5.1.1"},
		{"declared size over limit", []string{"MAIL FROM:<ann@client.test> SIZE=20000"}, "552 5.3.4"},
		{"too many recipients", []string{"MAIL FROM:<ann@client.test>",
			"RCPT TO:<support@example.test>", "RCPT TO:<support+a@example.test>", "RCPT TO:<support+b@example.test>",
			"RCPT TO:<support+c@example.test>"}, "452 4.5.3"},
		{"data without recipient", []string{"MAIL FROM:<ann@client.test>", "DATA"}, "502"},
		{"auth without TLS", []string{"AUTH PLAIN AGFubgBzZWNyZXQ="}, "523 5.7.10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.reply() // greeting
			if r := c.cmd("EHLO client.test"); !strings.HasPrefix(r, "250") {
				t.Fatalf("EHLO: %s", r)
			}
			for i, step := range tt.steps {
				r := c.cmd(step)
				if i == len(tt.steps)-1 {
					if !strings.HasPrefix(r, tt.want) {
						t.Errorf("%s: got %q, want %s", step, r, tt.want)
					}
				} else if r[0] != '2' && r[0] != '3' {
					t.Fatalf("%s: %s", step, r)
				}
			}
		})
	}

	t.Run("size announced", func(t *testing.T) {
		c := greeted(t, addr)
		if n, ok := c.MaxMessageSize(); !ok || n != 10_000 {
			t.Errorf("SIZE = %d, %v; want 10000", n, ok)
		}
	})

	t.Run("oversize data without declared size", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.reply()
		c.cmd("EHLO client.test")
		c.cmd("MAIL FROM:<ann@client.test>")
		c.cmd("RCPT TO:<support@example.test>")
		if r := c.cmd("DATA"); !strings.HasPrefix(r, "354") {
			t.Fatalf("DATA: %s", r)
		}
		c.write(string(mail("oversize", 30_000)) + ".\r\n")
		if r := c.reply(); !strings.HasPrefix(r, "552 5.3.4") {
			t.Errorf("end of oversize DATA: %q, want 552 5.3.4", r)
		}
		// The session goes on.
		if r := c.cmd("NOOP"); !strings.HasPrefix(r, "250") {
			t.Errorf("NOOP after 552: %q", r)
		}
		if n := countWith(t, pool, "marker oversize"); n != 0 {
			t.Errorf("oversize mail stored %d times", n)
		}
	})

	t.Run("line too long", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.reply()
		c.cmd("EHLO client.test")
		c.cmd("MAIL FROM:<ann@client.test>")
		c.cmd("RCPT TO:<support@example.test>")
		c.cmd("DATA")
		c.write("Subject: long\r\n\r\nmarker longline " + strings.Repeat("x", 3000) + "\r\n.\r\n")
		if r := c.reply(); !strings.HasPrefix(r, "5") {
			t.Errorf("end of DATA with a 3000-byte line: %q, want 5xx", r)
		}
		if n := countWith(t, pool, "marker longline"); n != 0 {
			t.Errorf("mail with an overlong line stored %d times", n)
		}
	})
}

func TestDeliverErrors(t *testing.T) {
	t.Parallel()
	errPermanent := errors.New("inbound: rejected: message has no header")
	tests := []struct {
		name    string
		deliver smtpserver.DeliverFunc
		want    int
		enh     smtp.EnhancedCode
	}{
		{"temporary", func(context.Context, []byte, smtpserver.Envelope) error {
			return errors.New("begin transaction: dial unix /run/pg: connect: no such file or directory")
		}, 451, smtp.EnhancedCode{4, 3, 0}},
		{"permanent", func(context.Context, []byte, smtpserver.Envelope) error {
			return fmt.Errorf("deliver: %w", errPermanent)
		}, 554, smtp.EnhancedCode{5, 6, 0}},
		{"panic", func(context.Context, []byte, smtpserver.Envelope) error {
			panic("parser bug")
		}, 451, smtp.EnhancedCode{4, 3, 0}},
		{"smtp error passed through", func(context.Context, []byte, smtpserver.Envelope) error {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "disk full"}
		}, 452, smtp.EnhancedCode{4, 3, 1}},
		{"deadline", func(ctx context.Context, _ []byte, _ smtpserver.Envelope) error {
			<-ctx.Done()
			return ctx.Err()
		}, 451, smtp.EnhancedCode{4, 3, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, addr := start(t, smtpserver.Options{
				Deliver:        tt.deliver,
				IsPermanent:    func(err error) bool { return errors.Is(err, errPermanent) },
				DeliverTimeout: 200 * time.Millisecond,
			})
			err := send(addr, "ann@client.test", []string{"support@example.test"}, mail("x", 100))
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				t.Fatalf("send: %v, want an SMTP error", err)
			}
			if se.Code != tt.want || se.EnhancedCode != tt.enh {
				t.Errorf("reply %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, tt.want, tt.enh)
			}
			// The server stays up for the next mail.
			if c, err := smtp.Dial(addr); err != nil {
				t.Errorf("dial after failure: %v", err)
			} else {
				if err := c.Noop(); err != nil {
					t.Errorf("NOOP after failure: %v", err)
				}
				c.Close()
			}
		})
	}
}

// TestDatabaseOutage stops PostgreSQL under the server: mail is answered 451,
// never 250, and the same mail sent again after the restart is accepted and
// stored once.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opt := pgcluster.Options{Dir: t.TempDir(), Fast: true}
	cluster, err := pgcluster.Start(ctx, opt)
	if err != nil {
		t.Fatalf("start a dedicated PostgreSQL: %v", err)
	}
	t.Cleanup(func() { cluster.Stop() })
	pool := migratedPool(t, cluster.URL("postgres"))
	rs := &rawStore{pool: pool}
	_, addr := start(t, smtpserver.Options{Deliver: rs.Deliver})

	if err := send(addr, "ann@client.test", []string{"support@example.test"}, mail("before", 500)); err != nil {
		t.Fatalf("send before the outage: %v", err)
	}
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	msg := mail("during", 500)
	for i := 0; i < 3; i++ {
		err := send(addr, "ann@client.test", []string{"support@example.test"}, msg)
		if c := code(err); c != 451 {
			t.Fatalf("send %d while PostgreSQL is down: %v (code %d), want 451", i, err, c)
		}
	}
	cluster, err = pgcluster.Start(ctx, opt)
	if err != nil {
		t.Fatalf("restart PostgreSQL: %v", err)
	}
	t.Cleanup(func() { cluster.Stop() })
	// A client retries until it gets an answer other than 4xx; the pool's
	// first attempts may still meet connections the restart broke.
	var codes []int
	for i := 0; i < 5; i++ {
		err := send(addr, "ann@client.test", []string{"support@example.test"}, msg)
		codes = append(codes, code(err))
		if err == nil {
			break
		}
		if code(err) != 451 {
			t.Fatalf("resend after the restart: %v", err)
		}
	}
	if codes[len(codes)-1] != 250 {
		t.Fatalf("resends after the restart answered %v, want a 250 at last", codes)
	}
	t.Logf("replies after the restart: %v", codes)
	if n := countWith(t, pool, "marker during"); n != 1 {
		t.Errorf("mail sent during the outage stored %d times, want 1", n)
	}
	if n := countWith(t, pool, "marker before"); n != 1 {
		t.Errorf("mail sent before the outage stored %d times, want 1", n)
	}
}

func TestPythonSmtplib(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to drive the server with smtplib: %v (Debian: apt-get install python3)", err)
	}
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	_, addr := start(t, smtpserver.Options{Deliver: rs.Deliver})
	host, port, _ := net.SplitHostPort(addr)
	script := `
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "Bea <bea@client.test>"
m["To"] = "support@example.test"
m["Subject"] = "Grüße aus Python"
m["X-Test"] = "marker python-smtplib"
m.set_content("Hallo\n" + "é" * 100)
with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:
    s.ehlo("python.client.test")
    refused = s.send_message(m, to_addrs=["support@example.test", "nobody@elsewhere.test"])
    print(refused)
`
	out, err := exec.Command(python, "-c", script, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("smtplib: %v\n%s", err, out)
	}
	// smtplib reports the refused recipient and sends to the other one.
	if !strings.Contains(string(out), "nobody@elsewhere.test") || !strings.Contains(string(out), "550") {
		t.Errorf("smtplib refused recipients = %s, want nobody@elsewhere.test with 550", out)
	}
	if n := countWith(t, pool, "marker python-smtplib"); n != 1 {
		t.Errorf("python mail stored %d times, want 1", n)
	}
	envs := rs.envelopes()
	if len(envs) != 1 || !cmp.Equal(envs[0].RcptTo, []string{"support@example.test"}) || envs[0].Helo != "python.client.test" {
		t.Errorf("envelopes = %+v", envs)
	}
}

func TestStartTLSAndAuth(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	serverTLS, clientTLS := selfSigned(t)
	_, addr := start(t, smtpserver.Options{
		Deliver:   rs.Deliver,
		TLSConfig: serverTLS,
		Auth:      &smtpserver.Auth{Username: "forms", Password: "s3cret", Required: true},
	})

	t.Run("no AUTH before TLS", func(t *testing.T) {
		c := greeted(t, addr)
		if ok, _ := c.Extension("STARTTLS"); !ok {
			t.Error("STARTTLS not offered")
		}
		if ok, _ := c.Extension("AUTH"); ok {
			t.Error("AUTH offered on a plain connection")
		}
		if err := c.Mail("ann@client.test", nil); code(err) != 530 {
			t.Errorf("MAIL without AUTH: %v, want 530", err)
		}
	})

	tests := []struct {
		name     string
		user     string
		password string
		wantAuth int
	}{
		{"wrong password", "forms", "guess", 535},
		{"right password", "forms", "s3cret", 250},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := smtp.DialStartTLS(addr, clientTLS)
			if err != nil {
				t.Fatalf("STARTTLS: %v", err)
			}
			defer c.Close()
			if _, ok := c.TLSConnectionState(); !ok {
				t.Fatal("connection is not TLS after STARTTLS")
			}
			err = c.Auth(sasl.NewPlainClient("", tt.user, tt.password))
			if code(err) != tt.wantAuth {
				t.Fatalf("AUTH: %v, want %d", err, tt.wantAuth)
			}
			if err != nil {
				return
			}
			msg := mail("tls", 300)
			if err := c.SendMail("forms@client.test", []string{"support@example.test"}, bytes.NewReader(msg)); err != nil {
				t.Fatalf("send over TLS: %v", err)
			}
			// Authenticated, still no relay.
			if err := c.Mail("forms@client.test", nil); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt("someone@elsewhere.test", nil); code(err) != 550 {
				t.Errorf("relay attempt after AUTH: %v, want 550", err)
			}
		})
	}
	want := []smtpserver.Envelope{{Helo: "localhost", MailFrom: "forms@client.test",
		RcptTo: []string{"support@example.test"}, TLS: true, AuthUser: "forms"}}
	if diff := cmp.Diff(want, rs.envelopes(), cmpopts.IgnoreFields(smtpserver.Envelope{}, "CID", "RemoteAddr")); diff != "" {
		t.Errorf("envelopes (-want +got):\n%s", diff)
	}
}

func TestMaxSessions(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	_, addr := start(t, smtpserver.Options{Deliver: rs.Deliver, MaxSessions: 2, MaxSessionsPerClient: 2})

	a, b := dialRaw(t, addr), dialRaw(t, addr)
	for _, c := range []*rawConn{a, b} {
		if r := c.reply(); !strings.HasPrefix(r, "220") {
			t.Fatalf("greeting: %q", r)
		}
	}
	over := dialRaw(t, addr)
	if r := over.reply(); !strings.HasPrefix(r, "421 4.4.5") {
		t.Errorf("third session greeted %q, want 421 4.4.5", r)
	}
	// A slot frees when a session ends.
	a.cmd("QUIT")
	a.nc.Close()
	var greeting string
	for i := 0; i < 100; i++ {
		c := dialRaw(t, addr)
		greeting = c.reply()
		if strings.HasPrefix(greeting, "220") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(greeting, "220") {
		t.Errorf("after a QUIT the server still answers %q", greeting)
	}
}

// TestShutdownFinishesInflightData: Shutdown refuses new sessions, ends idle
// ones with 421, and lets a message in the middle of DATA, and one being
// stored, finish with 250.
func TestShutdownFinishesInflightData(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	deliver := func(ctx context.Context, raw []byte, env smtpserver.Envelope) error {
		if bytes.Contains(raw, []byte("marker slow-deliver")) {
			entered <- struct{}{}
			<-release
		}
		return rs.Deliver(ctx, raw, env)
	}
	s, err := smtpserver.New(smtpserver.Options{Deliver: deliver, Accepts: acceptSupport, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()

	// Session 1 is half-way through its DATA.
	mid := dialRaw(t, addr)
	mid.reply()
	mid.cmd("EHLO client.test")
	mid.cmd("MAIL FROM:<ann@client.test>")
	mid.cmd("RCPT TO:<support@example.test>")
	if r := mid.cmd("DATA"); !strings.HasPrefix(r, "354") {
		t.Fatalf("DATA: %s", r)
	}
	body := string(mail("mid-data", 5000))
	mid.write(body[:2000])

	// Session 2's message is being stored.
	slowDone := make(chan error, 1)
	go func() {
		slowDone <- send(addr, "bea@client.test", []string{"support@example.test"}, mail("slow-deliver", 500))
	}()
	<-entered

	// Session 3 is idle between transactions.
	idle := dialRaw(t, addr)
	idle.reply()
	idle.cmd("EHLO client.test")

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()

	if r := idle.reply(); !strings.HasPrefix(r, "421") {
		t.Errorf("idle session got %q at shutdown, want 421", r)
	}
	// New sessions are refused: either the listener is closed already,
	// or the greeting is 421.
	for {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		line, _ := (&lineReader{nc: nc}).readLine()
		nc.Close()
		if strings.HasPrefix(line, "421") || line == "" {
			break
		}
		t.Fatalf("new session during shutdown greeted %q", line)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while DATA was in flight", err)
	default:
	}

	mid.write(body[2000:] + ".\r\n")
	if r := mid.reply(); !strings.HasPrefix(r, "250") {
		t.Errorf("end of in-flight DATA during shutdown: %q, want 250", r)
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Errorf("message stored during shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("serve: %v", err)
	}
	for _, m := range []string{"marker mid-data", "marker slow-deliver"} {
		if n := countWith(t, pool, m); n != 1 {
			t.Errorf("%s stored %d times, want 1", m, n)
		}
	}
}

// TestInflightBudget: with room for one message at a time, messages sent at
// once are delivered one after the other, and all are accepted.
func TestInflightBudget(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	var inflight, most atomic.Int64
	deliver := func(ctx context.Context, raw []byte, env smtpserver.Envelope) error {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond) // long enough for the others to arrive
		return rs.Deliver(ctx, raw, env)
	}
	_, addr := start(t, smtpserver.Options{Deliver: deliver, MaxInflightBytes: 12_000})

	tests := []struct {
		name     string
		declared bool
	}{
		{"declared size", true},
		{"no declared size", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			most.Store(0)
			errs := make(chan error, 4)
			for i := 0; i < 4; i++ {
				go func(i int) {
					msg := mail(fmt.Sprintf("budget-%s-%d", strings.ReplaceAll(tt.name, " ", "-"), i), 8000)
					if tt.declared {
						errs <- send(addr, "ann@client.test", []string{"support@example.test"}, msg)
						return
					}
					errs <- sendUndeclared(addr, msg)
				}(i)
			}
			for i := 0; i < 4; i++ {
				if err := <-errs; err != nil {
					t.Errorf("send: %v", err)
				}
			}
			if m := most.Load(); m != 1 {
				t.Errorf("%d deliveries at once, want 1", m)
			}
		})
	}
}

// sendUndeclared sends without SIZE, as smtplib and many scripts do.
func sendUndeclared(addr string, msg []byte) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.SendMail("ann@client.test", []string{"support@example.test"}, bytes.NewReader(msg))
}

// TestLargeUndeclaredMessage: a message over 1 MB without a declared size
// takes the largest share of the budget once it is past its first MB, and
// arrives whole.
func TestLargeUndeclaredMessage(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	var inflight, most atomic.Int64
	deliver := func(ctx context.Context, raw []byte, env smtpserver.Envelope) error {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		if n > 1 {
			most.Store(n)
		}
		time.Sleep(50 * time.Millisecond)
		return rs.Deliver(ctx, raw, env)
	}
	_, addr := start(t, smtpserver.Options{Deliver: deliver, MaxMessageBytes: 3 << 20, MaxInflightBytes: 4 << 20})
	msgs := make([][]byte, 3)
	errs := make(chan error, len(msgs))
	for i := range msgs {
		msgs[i] = mail(fmt.Sprintf("large-%d", i), 1500_000+i*1000)
		go func(msg []byte) { errs <- sendUndeclared(addr, msg) }(msgs[i])
	}
	for range msgs {
		if err := <-errs; err != nil {
			t.Errorf("send: %v", err)
		}
	}
	if m := most.Load(); m > 1 {
		t.Errorf("%d large deliveries at once, want 1", m)
	}
	for i, msg := range msgs {
		var data []byte
		err := pool.QueryRow(context.Background(), `SELECT data FROM raw_messages WHERE position($1::bytea IN data) > 0`,
			[]byte(fmt.Sprintf("marker large-%d.", i))).Scan(&data)
		if err != nil {
			t.Fatalf("large-%d: %v", i, err)
		}
		if !bytes.Equal(data, msg) {
			t.Errorf("large-%d stored with %d bytes, sent %d, or different", i, len(data), len(msg))
		}
	}
}

// TestReadTimeout: a client that goes quiet, between commands or in the
// middle of DATA, is told 421 and its half mail is not stored.
func TestReadTimeout(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	rs := &rawStore{pool: pool}
	_, addr := start(t, smtpserver.Options{Deliver: rs.Deliver, ReadTimeout: 200 * time.Millisecond})
	tests := []struct {
		name  string
		steps []string
	}{
		{"idle after greeting", nil},
		{"stalled in DATA", []string{"EHLO client.test", "MAIL FROM:<ann@client.test>", "RCPT TO:<support@example.test>", "DATA"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.reply()
			for _, s := range tt.steps {
				c.cmd(s)
			}
			if len(tt.steps) > 0 {
				c.write("Subject: half\r\n\r\nmarker stalled, and then nothing")
			}
			var replies []string
			for {
				line, err := c.br.readReply()
				if err != nil {
					break
				}
				replies = append(replies, line)
			}
			if len(replies) == 0 || !strings.HasPrefix(replies[len(replies)-1], "421") {
				t.Errorf("quiet client got %q, want a 421 before the server closes", replies)
			}
			if len(tt.steps) > 0 && (len(replies) != 2 || !strings.HasPrefix(replies[0], "451")) {
				t.Errorf("stalled DATA got %q, want 451 (not stored), then 421", replies)
			}
		})
	}
	if n := countWith(t, pool, "marker stalled"); n != 0 {
		t.Errorf("half a mail stored %d times", n)
	}
}

package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"ticketd/signing"
)

// lockedBuffer is a log destination that serve's goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsHoldNoTokens drives real SMTP sessions into serve, logging as
// main does (JSON, debug), with mail to a signed reply address, to a
// return path, to a tampered token and to a foreign recipient, and a web
// request with a signed link; then greps the log: no token is in it, and
// the lines that carried one say [token].
func TestLogsHoldNoTokens(t *testing.T) {
	logs := &lockedBuffer{}
	cfg := Config{LogLevel: "debug", LogFormat: "json"}
	s := startServeWith(t, nil, newLogger(cfg, logs))
	keys, err := signing.NewKeys("a test secret 0123456789")
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(time.Hour)
	reply := keys.Sign(signing.Claims{Purpose: signing.PurposeReply, TicketID: 1, UserID: 1, Expires: exp})
	bounce := keys.Sign(signing.Claims{Purpose: signing.PurposeBounce, TicketID: 1, UserID: 1, MailID: 1, Expires: exp})
	link := keys.Sign(signing.Claims{Purpose: signing.PurposeLink, TicketID: 1, UserID: 1, Expires: exp})
	tampered := reply[:len(reply)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(reply, "a")]
	tokens := []string{reply, bounce, link, tampered}

	send := func(from string, rcpts []string, body string) {
		t.Helper()
		c := dialSMTP(t, s.smtpAddr)
		c.cmd(250, "MAIL FROM:<%s>", from)
		for _, r := range rcpts {
			c.try("RCPT TO:<%s>", r)
		}
		c.cmd(354, "DATA")
		fmt.Fprint(c.W, strings.ReplaceAll(body, "\n", "\r\n")+"\r\n.\r\n")
		c.W.Flush()
		if code, msg, err := c.ReadResponse(250); err != nil {
			t.Fatalf("DATA: %d %s %v", code, msg, err)
		}
		c.cmd(221, "QUIT")
	}
	send("ann@example.org", []string{"support+" + reply + "@example.com", "support+" + tampered + "@example.com",
		"someone+" + reply + "@elsewhere.example"}, fmt.Sprintf(`From: Ann <ann@example.org>
To: support+%s@example.com
Subject: a reply
Message-ID: <reply-1@example.org>

status: completed
thanks`, reply))
	send("", []string{"bounces+" + bounce + "@example.com"}, fmt.Sprintf(`From: MAILER-DAEMON@mx.example.org
To: bounces+%s@example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <bounce-1@mx.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; ann@example.org
Action: failed
Status: 5.1.1
--b--`, bounce))
	res, err := http.Get("http://" + s.httpAddr + "/t/1?k=" + link)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	var out string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out = logs.String()
		if strings.Count(out, `"msg":"mail delivered"`) >= 2 || time.Now().After(deadline) {
			break
		}
	}
	if strings.Count(out, `"msg":"mail delivered"`) < 2 {
		t.Fatalf("the two mails were not delivered:\n%s", out)
	}
	for _, tok := range tokens {
		for _, form := range []string{tok, strings.ToUpper(tok)} {
			if strings.Contains(out, form) {
				t.Errorf("a token is in the log:\n%s", out)
			}
		}
	}
	for _, line := range []string{`"msg":"smtp mail accepted"`, `"msg":"smtp recipient refused"`} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, line) && strings.Contains(l, signing.Redacted) {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s line with %s:\n%s", line, signing.Redacted, out)
		}
	}
}

package cluster

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Sink is the cluster's relay for outgoing mail: an SMTP server that takes
// every mail, files it into a Maildir (Dir/new) for people to read, and
// keeps what identifies it for tests and benchmarks to count.
type Sink struct {
	// Addr is host:port, for SMTP_RELAY_URL=smtp://Addr.
	Addr string
	// Maildir is where the mail is filed.
	Maildir string

	srv *smtp.Server
	log *slog.Logger

	mu    sync.Mutex
	mails []SunkMail
	wait  chan struct{} // closed and replaced at every mail
}

// SunkMail is one mail the sink took.
type SunkMail struct {
	MessageID string // as in the header, with its angle brackets
	From      string // the envelope sender
	To        []string
	Subject   string
	InReplyTo string
	ReplyTo   string
	// Helo is the name the sending replica gave in EHLO (SMTP_HELO_NAME).
	Helo       string
	ReceivedAt time.Time
	Size       int
}

// StartSink listens on a free loopback port and files mail into maildir.
func StartSink(maildir string, log *slog.Logger) (*Sink, error) {
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(maildir, d), 0o755); err != nil {
			return nil, fmt.Errorf("cluster: sink: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{Maildir: maildir, log: log, wait: make(chan struct{})}
	s.srv = smtp.NewServer(sinkBackend{s})
	s.srv.Domain = "sink.invalid"
	s.srv.MaxMessageBytes = 64 << 20
	s.srv.MaxRecipients = 1000
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("cluster: sink: %w", err)
	}
	s.Addr = l.Addr().String()
	go func() {
		defer func() {
			if r := recover(); r != nil {
				log.Error("panic", "component", "sink", "panic", r)
			}
		}()
		if err := s.srv.Serve(l); err != nil && !strings.Contains(err.Error(), "closed") {
			log.Error("sink stopped", "err", err)
		}
	}()
	return s, nil
}

// Close stops the sink.
func (s *Sink) Close() error { return s.srv.Close() }

// Mails is every mail taken so far, in the order received.
func (s *Sink) Mails() []SunkMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SunkMail(nil), s.mails...)
}

// Changed is closed at the next mail the sink takes.
func (s *Sink) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wait
}

func (s *Sink) take(helo, from string, to []string, data []byte) error {
	m := SunkMail{From: from, To: to, Helo: helo, ReceivedAt: time.Now(), Size: len(data)}
	if msg, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		m.MessageID = strings.TrimSpace(msg.Header.Get("Message-Id"))
		m.Subject = msg.Header.Get("Subject")
		m.InReplyTo = strings.TrimSpace(msg.Header.Get("In-Reply-To"))
		m.ReplyTo = strings.TrimSpace(msg.Header.Get("Reply-To"))
	}
	// Maildir delivery: write into tmp, then rename into new.
	var id [8]byte
	rand.Read(id[:])
	name := fmt.Sprintf("%d.%s.sink", m.ReceivedAt.UnixNano(), hex.EncodeToString(id[:]))
	tmp := filepath.Join(s.Maildir, "tmp", name)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("sink: file the mail: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Maildir, "new", name)); err != nil {
		return fmt.Errorf("sink: file the mail: %w", err)
	}
	s.mu.Lock()
	s.mails = append(s.mails, m)
	close(s.wait)
	s.wait = make(chan struct{})
	s.mu.Unlock()
	return nil
}

type sinkBackend struct{ s *Sink }

func (b sinkBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &sinkSession{s: b.s, conn: c}, nil
}

type sinkSession struct {
	s    *Sink
	conn *smtp.Conn
	from string
	to   []string
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from, ss.to = from, nil
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
	if err := ss.s.take(ss.conn.Hostname(), ss.from, ss.to, b); err != nil {
		ss.s.log.Error("sink", "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "cannot file the mail now"}
	}
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

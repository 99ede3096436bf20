package outbound_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"ticketd/testcert"
)

// sunk is one mail the sink accepted.
type sunk struct {
	From string
	To   []string
	Data []byte
	TLS  bool
	User string // who authenticated, "" for nobody
}

func (m sunk) header(t testing.TB) mail.Header {
	t.Helper()
	r, err := mail.CreateReader(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("parse sunk mail: %v", err)
	}
	return r.Header
}

type sinkOptions struct {
	TLS *tls.Config
	// Users may authenticate (name -> password); Mechs are the offered
	// mechanisms (default PLAIN and LOGIN).
	Users map[string]string
	Mechs []string
	// Rcpt answers RCPT TO; nil accepts everyone.
	Rcpt func(to string) error
	// Count, when set, keeps only how many mails arrived, not their bytes.
	Count bool
	// ImplicitTLS serves TLS from the first byte (smtps).
	ImplicitTLS bool
}

// sink is an SMTP server inside the test that keeps what it receives.
type sink struct {
	t    testing.TB
	o    sinkOptions
	addr string

	mu      sync.Mutex
	srv     *smtp.Server
	l       net.Listener
	mails   []sunk
	n       int
	arrived chan struct{}
}

func startSink(t testing.TB, o sinkOptions) *sink {
	t.Helper()
	s := &sink{t: t, o: o, addr: "127.0.0.1:0", arrived: make(chan struct{}, 1)}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *sink) start() {
	s.t.Helper()
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, conn: c}, nil
	}))
	srv.Domain = "sink.test"
	srv.TLSConfig = s.o.TLS
	srv.ErrorLog = testLogger{s.t}
	srv.MaxMessageBytes = 30 << 20
	var l net.Listener
	var err error
	for try := 0; try < 50; try++ {
		if s.o.ImplicitTLS {
			l, err = tls.Listen("tcp", s.addr, s.o.TLS)
		} else {
			l, err = net.Listen("tcp", s.addr)
		}
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port of a restarted sink may linger
	}
	if err != nil {
		s.t.Fatalf("sink: listen: %v", err)
	}
	s.addr = l.Addr().String()
	s.mu.Lock()
	s.srv, s.l = srv, l
	s.mu.Unlock()
	go srv.Serve(l)
}

// stop closes the sink: its port refuses connections until restart.
func (s *sink) stop() {
	s.mu.Lock()
	srv, l := s.srv, s.l
	s.srv, s.l = nil, nil
	s.mu.Unlock()
	if srv != nil {
		l.Close() // Serve may not have registered it with srv yet
		srv.Close()
	}
}

func (s *sink) restart() { s.start() }

func (s *sink) url(scheme, userinfo string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	return scheme + "://" + userinfo + s.addr
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *sink) received() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.mails...)
}

// waitFor waits until n mails arrived, failing the test after a generous
// timeout rather than hanging.
func (s *sink) waitFor(n int) []sunk {
	s.t.Helper()
	deadline := time.After(60 * time.Second)
	for s.count() < n {
		select {
		case <-s.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			s.t.Fatalf("sink: %d mails arrived, want %d", s.count(), n)
		}
	}
	return s.received()
}

type sinkSession struct {
	s    *sink
	conn *smtp.Conn
	tls  bool
	user string
	from string
	to   []string
}

func (ss *sinkSession) AuthMechanisms() []string {
	if ss.s.o.Users == nil {
		return nil
	}
	if ss.s.o.Mechs != nil {
		return ss.s.o.Mechs
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if want, ok := ss.s.o.Users[user]; !ok || want != pass {
			return smtp.ErrAuthFailed
		}
		ss.user = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.o.Users != nil && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.from = from
	_, ss.tls = ss.conn.TLSConnectionState()
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.o.Rcpt != nil {
		if err := ss.s.o.Rcpt(to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := sunk{From: ss.from, To: ss.to, TLS: ss.tls, User: ss.user}
	if !ss.s.o.Count {
		m.Data = data
	}
	ss.s.mu.Lock()
	ss.s.n++
	if !ss.s.o.Count {
		ss.s.mails = append(ss.s.mails, m)
	}
	ss.s.mu.Unlock()
	select {
	case ss.s.arrived <- struct{}{}:
	default:
	}
	return nil
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN (draft-murchison-sasl-login),
// which go-sasl no longer ships.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step++
		if response != nil {
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		return nil, true, l.check(l.user, string(response))
	}
	return nil, false, errors.New("unexpected response")
}

type testLogger struct{ t testing.TB }

func (l testLogger) Printf(format string, v ...any) { l.t.Logf("smtp sink: "+format, v...) }
func (l testLogger) Println(v ...any)               { l.t.Log(append([]any{"smtp sink:"}, v...)...) }

// selfSigned makes a certificate for 127.0.0.1 and localhost, and a pool
// that trusts it.
func selfSigned(t testing.TB) (*tls.Config, *x509.CertPool) {
	cert, roots := testcert.New(t)
	return &tls.Config{Certificates: []tls.Certificate{cert}}, roots
}

func rcptError(code int, enhanced smtp.EnhancedCode, msg string) error {
	return &smtp.SMTPError{Code: code, EnhancedCode: enhanced, Message: msg}
}

// serverTLSClient trusts the sink's certificate.
func serverTLSClient(roots *x509.CertPool) *tls.Config { return &tls.Config{RootCAs: roots} }

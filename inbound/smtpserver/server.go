// Package smtpserver receives mail for ticketd over SMTP (RFC 5321) and hands
// each message, with its envelope, to a caller-supplied Deliver function.
//
// The server answers 250 to DATA only after Deliver returned nil, that is
// after the mail is committed; any other outcome is a 4xx (try again later)
// unless Deliver says the failure is permanent. It accepts only the
// recipients that Options.Accepts owns, so it never relays.
package smtpserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"ticketd/metrics"
)

// Envelope is what the SMTP transaction tells about a mail besides its bytes.
type Envelope struct {
	// CID identifies the connection in the logs.
	CID string
	// RemoteAddr is the client's address, host:port.
	RemoteAddr string
	// Helo is the name the client gave in EHLO or HELO.
	Helo string
	// MailFrom is the reverse-path; "" is the null sender of bounces
	// (RFC 5321 4.5.5).
	MailFrom string
	// RcptTo are the accepted recipients, in the order given.
	RcptTo []string
	// TLS reports whether the mail arrived over TLS (STARTTLS).
	TLS bool
	// AuthUser is the authenticated user, "" when the client did not
	// authenticate.
	AuthUser string
}

// DeliverFunc stores one mail. It returns nil only once the mail is durable
// (committed); a mail stored already returns nil as well.
type DeliverFunc func(ctx context.Context, raw []byte, env Envelope) error

// Auth configures SMTP AUTH (RFC 4954) with one account, for submission from
// trusted hosts. Authentication never widens the accepted recipients: the
// server relays for nobody.
type Auth struct {
	Username string
	Password string
	// Required refuses MAIL from unauthenticated clients with 530.
	Required bool
	// AllowInsecure offers AUTH without TLS. RFC 4954 4 advises against
	// it; use it only on loopback.
	AllowInsecure bool
}

// Options configures a Server. Deliver and Accepts are required.
type Options struct {
	// Addr is the address ListenAndServe listens on; default
	// "127.0.0.1:2525".
	Addr string
	// Domain is the name the server greets with and gives in EHLO;
	// default "localhost".
	Domain string
	// Deliver stores a mail; see DeliverFunc.
	Deliver DeliverFunc
	// IsPermanent reports whether a Deliver error can never succeed on a
	// retry (answered 554); nil treats every error as temporary (451).
	IsPermanent func(error) bool
	// Accepts reports whether rcpt is an address ticketd owns. Everything
	// else is refused at RCPT with 550 5.1.1.
	Accepts func(rcpt string) bool

	// MaxMessageBytes is the largest message accepted, announced by SIZE
	// (RFC 1870); default 25 MB. Larger ones get 552 5.3.4.
	MaxMessageBytes int64
	// MaxRecipients per message; default 50. Beyond it, 452 4.5.3, which
	// tells the client to send the rest in another transaction (RFC 5321
	// 4.5.3.1.10).
	MaxRecipients int
	// MaxLineLength bounds command and text lines, CRLF included; default
	// 8192. RFC 5321 4.5.3.1.6 sets 1000 for senders, but a receiver that
	// must lose nothing is liberal with mailers that do not fold long
	// HTML lines; MaxMessageBytes bounds the memory anyway.
	MaxLineLength int
	// ReadTimeout is how long the server waits for the client's next
	// bytes, in commands and in DATA alike; default 5 minutes (RFC 5321
	// 4.5.3.2.7).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one reply; default 1 minute.
	WriteTimeout time.Duration
	// DeliverTimeout bounds one Deliver call; default 2 minutes, below
	// the 10 minutes a client waits after the end of DATA (RFC 5321
	// 4.5.3.2.6).
	DeliverTimeout time.Duration
	// MaxSessions bounds concurrent connections; default 100. Further
	// clients are answered 421 4.4.5 at once.
	MaxSessions int
	// MaxSessionsPerClient bounds the concurrent connections of one
	// client address (an IPv4 address, or an IPv6 /64, which one host
	// commonly holds whole), so that one client cannot hold all
	// MaxSessions; default a fifth of MaxSessions. Further connections
	// from it are answered 421 4.7.0 at once.
	MaxSessionsPerClient int
	// FirstCommandTimeout is how long the server waits for a client's
	// first command after its greeting; default 30 seconds, or ReadTimeout
	// when that is shorter. Clients send
	// EHLO at once; one that says nothing holds a session for nothing.
	// Later commands and DATA get ReadTimeout.
	FirstCommandTimeout time.Duration
	// MaxInflightBytes bounds the bytes of the messages being received and
	// delivered at once, since delivering takes memory in proportion to a
	// mail's size; default MaxMessageBytes + 8 MB, which lets one mail of
	// the largest size through at a time beside small ones. A message
	// waits its turn before its body is read (the client waits in TCP);
	// after ReadTimeout of waiting it is answered 452 4.3.1.
	MaxInflightBytes int64

	// TLSConfig enables STARTTLS (RFC 3207) when set.
	TLSConfig *tls.Config
	// Auth enables AUTH PLAIN when set.
	Auth *Auth

	// Logger receives the server's logs; default slog.Default().
	Logger *slog.Logger
	// Metrics counts refused recipients, mails and connections by
	// reason; nil records nothing.
	Metrics *metrics.Metrics
}

// Server is an SMTP server delivering into ticketd.
type Server struct {
	opt  Options
	log  *slog.Logger
	smtp *smtp.Server

	// base is the context of Deliver calls: a graceful Shutdown lets them
	// finish, Close cancels them.
	base   context.Context
	cancel context.CancelFunc

	budget *budget

	cidPrefix string
	nextCID   atomic.Uint64

	mu        sync.Mutex
	conns     map[*conn]struct{}
	perClient map[string]int // sessions by clientKey
	shutting  bool
}

// New returns a server; it does not listen yet.
func New(opt Options) (*Server, error) {
	if opt.Deliver == nil {
		return nil, errors.New("smtpserver: Options.Deliver is required")
	}
	if opt.Accepts == nil {
		return nil, errors.New("smtpserver: Options.Accepts is required: without it the server would accept any recipient")
	}
	if opt.Auth != nil && (opt.Auth.Username == "" || opt.Auth.Password == "") {
		return nil, errors.New("smtpserver: Options.Auth needs a username and a password")
	}
	if opt.Addr == "" {
		opt.Addr = "127.0.0.1:2525"
	}
	if opt.Domain == "" {
		opt.Domain = "localhost"
	}
	if opt.MaxMessageBytes <= 0 {
		opt.MaxMessageBytes = 25 << 20
	}
	if opt.MaxRecipients <= 0 {
		opt.MaxRecipients = 50
	}
	if opt.MaxLineLength <= 0 {
		opt.MaxLineLength = 8192
	}
	if opt.ReadTimeout <= 0 {
		opt.ReadTimeout = 5 * time.Minute
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = time.Minute
	}
	if opt.DeliverTimeout <= 0 {
		opt.DeliverTimeout = 2 * time.Minute
	}
	if opt.MaxSessions <= 0 {
		opt.MaxSessions = 100
	}
	if opt.MaxSessionsPerClient <= 0 {
		opt.MaxSessionsPerClient = max(1, opt.MaxSessions/5)
	}
	if opt.FirstCommandTimeout <= 0 {
		opt.FirstCommandTimeout = min(30*time.Second, opt.ReadTimeout)
	}
	if opt.MaxInflightBytes <= 0 {
		opt.MaxInflightBytes = opt.MaxMessageBytes + 8<<20
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	s := &Server{
		opt:       opt,
		log:       opt.Logger,
		conns:     make(map[*conn]struct{}),
		perClient: make(map[string]int),
		budget:    newBudget(opt.MaxInflightBytes),
		cidPrefix: fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff),
	}
	s.base, s.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(backend{s})
	srv.Addr = opt.Addr
	srv.Domain = opt.Domain
	srv.MaxMessageBytes = opt.MaxMessageBytes
	srv.MaxRecipients = opt.MaxRecipients
	srv.MaxLineLength = opt.MaxLineLength
	// Read deadlines are set by conn before every read, so that DATA gets
	// an inactivity timeout rather than one for the whole message, and so
	// that Shutdown can wake idle sessions; go-smtp would overwrite them.
	srv.ReadTimeout = 0
	srv.WriteTimeout = opt.WriteTimeout
	srv.TLSConfig = opt.TLSConfig
	srv.AllowInsecureAuth = opt.Auth != nil && opt.Auth.AllowInsecure
	// RFC 6531: addresses and headers in UTF-8 are stored as they come.
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = errorLog{s.log}
	s.smtp = srv
	return s, nil
}

// Addr returns the address the server was configured to listen on.
func (s *Server) Addr() string { return s.opt.Addr }

// ListenAndServe listens on Options.Addr and serves until Shutdown or Close.
func (s *Server) ListenAndServe() error {
	l, err := net.Listen("tcp", s.opt.Addr)
	if err != nil {
		return fmt.Errorf("smtpserver: listen on %s: %w", s.opt.Addr, err)
	}
	return s.Serve(l)
}

// Serve accepts connections on l until Shutdown or Close; it then returns nil.
func (s *Server) Serve(l net.Listener) error {
	s.log.Info("smtp listening", "addr", l.Addr().String(), "max_message_bytes", s.opt.MaxMessageBytes,
		"starttls", s.opt.TLSConfig != nil, "auth", s.opt.Auth != nil)
	err := s.smtp.Serve(&listener{Listener: l, s: s})
	if err != nil {
		return fmt.Errorf("smtpserver: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections, ends idle sessions with 421 (RFC
// 5321 3.8), lets a message whose DATA is in flight finish and get its
// answer, then returns. When ctx ends first, the remaining sessions are cut
// (their mail was not acknowledged, so the clients send it again) and
// ctx's error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.shutting = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.interrupt()
	}
	err := s.smtp.Shutdown(ctx)
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	if ctx.Err() != nil {
		s.Close()
		return ctx.Err()
	}
	s.cancel()
	return err
}

// Close closes the listeners and every connection at once and cancels
// deliveries in flight; unacknowledged mail is sent again by its clients.
func (s *Server) Close() error {
	s.mu.Lock()
	s.shutting = true
	s.mu.Unlock()
	s.cancel()
	err := s.smtp.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		err = nil
	}
	return err
}

// Reasons register refuses a connection.
const (
	refusedShutdown = "shutting down"
	refusedFull     = "too many sessions"
	refusedClient   = "too many sessions from your address"
)

// register tracks c and reports false when the server is full or closing,
// or when c's client holds its share of the sessions already.
func (s *Server) register(c *conn) (ok bool, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return false, refusedShutdown
	}
	if len(s.conns) >= s.opt.MaxSessions {
		return false, refusedFull
	}
	if s.perClient[c.client] >= s.opt.MaxSessionsPerClient {
		return false, refusedClient
	}
	s.conns[c] = struct{}{}
	s.perClient[c.client]++
	return true, ""
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	if _, ok := s.conns[c]; ok {
		delete(s.conns, c)
		if s.perClient[c.client]--; s.perClient[c.client] <= 0 {
			delete(s.perClient, c.client)
		}
	}
	s.mu.Unlock()
}

// clientKey is what the per-client session limit counts by: the client's
// IPv4 address, or the /64 its IPv6 address is in.
func clientKey(addr net.Addr) string {
	host := addr.String()
	if ta, ok := addr.(*net.TCPAddr); ok {
		if v4 := ta.IP.To4(); v4 != nil {
			return v4.String()
		}
		if v6 := ta.IP.To16(); v6 != nil {
			return v6.Mask(net.CIDRMask(64, 128)).String() + "/64"
		}
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

func (s *Server) newCID() string {
	return fmt.Sprintf("%s-%d", s.cidPrefix, s.nextCID.Add(1))
}

// errorLog sends go-smtp's internal reports to the logger.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Warn("smtp: " + fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) {
	e.log.Warn("smtp: " + fmt.Sprintln(v...))
}

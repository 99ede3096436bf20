package outbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// RelayOptions configure the SMTP relay client.
type RelayOptions struct {
	// URL is smtp://[user:pass@]host[:port] (default port 25; STARTTLS
	// whenever the relay offers it, and required when credentials are
	// given) or smtps://[user:pass@]host[:port] (implicit TLS, RFC 8314,
	// default port 465). User and password are URL-escaped.
	URL string
	// HeloName is the name ticketd gives in EHLO (default: the host name).
	HeloName string
	// TLSConfig is the base TLS configuration (for example a private CA);
	// ServerName defaults to the relay's host.
	TLSConfig *tls.Config
	// InsecureSkipVerify accepts any certificate: for tests and relays on
	// loopback only.
	InsecureSkipVerify bool
	// DialTimeout bounds connecting (default 30s); CommandTimeout each
	// command's answer (default 1m); DataTimeout the answer after the
	// message (default 5m). The caller's context bounds the whole delivery.
	DialTimeout    time.Duration
	CommandTimeout time.Duration
	DataTimeout    time.Duration
	// MaxIdle connections are kept open between mails (default 4), each for
	// at most IdleTimeout (default 30s).
	MaxIdle     int
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// Relay delivers mail to one SMTP relay (RFC 5321, submission per RFC
// 6409), keeping a few connections open between mails. It is safe for
// concurrent use.
type Relay struct {
	o           RelayOptions
	addr, host  string
	implicitTLS bool
	user        *url.Userinfo
	log         *slog.Logger
	noStartTLS  atomic.Bool // the relay was seen not to offer STARTTLS

	mu     sync.Mutex
	idle   []*relayConn
	closed bool
}

type relayConn struct {
	c    *smtp.Client
	conn net.Conn // what the client speaks over, for cancellation
	used time.Time
}

// NewRelay checks the options and returns a Relay. It does not connect.
func NewRelay(o RelayOptions) (*Relay, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("outbound: relay URL: %w", err)
	}
	r := &Relay{o: o, user: u.User, log: o.Logger}
	switch u.Scheme {
	case "smtp":
	case "smtps":
		r.implicitTLS = true
	default:
		return nil, fmt.Errorf("outbound: relay URL scheme %q: want smtp or smtps", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("outbound: relay URL has no host")
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, errors.New("outbound: relay URL takes no path or query")
	}
	r.host = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "25"
		if r.implicitTLS {
			port = "465"
		}
	}
	r.addr = net.JoinHostPort(r.host, port)
	if r.o.HeloName == "" {
		r.o.HeloName, _ = os.Hostname()
		if r.o.HeloName == "" {
			r.o.HeloName = "localhost"
		}
	}
	if r.o.DialTimeout <= 0 {
		r.o.DialTimeout = 30 * time.Second
	}
	if r.o.CommandTimeout <= 0 {
		r.o.CommandTimeout = time.Minute
	}
	if r.o.DataTimeout <= 0 {
		r.o.DataTimeout = 5 * time.Minute
	}
	if r.o.MaxIdle <= 0 {
		r.o.MaxIdle = 4
	}
	if r.o.IdleTimeout <= 0 {
		r.o.IdleTimeout = 30 * time.Second
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// String names the relay without its password, for logs.
func (r *Relay) String() string {
	scheme := "smtp"
	if r.implicitTLS {
		scheme = "smtps"
	}
	if r.user != nil {
		return scheme + "://" + r.user.Username() + "@" + r.addr
	}
	return scheme + "://" + r.addr
}

// stage says how far a mail transaction got, which decides whether trying
// again at once on a fresh connection is safe.
type stage int

const (
	stageMail stage = iota // MAIL FROM: nothing of this mail was sent yet
	stageRcpt
	stageData
	stageBody
	stageDot // the message was sent; its answer did not arrive
	stageDone
)

// Send delivers one mail: MAIL FROM, one RCPT TO per recipient, DATA. It
// returns nil once the relay answered 250 to the message (RFC 5321
// 4.1.1.4). Every recipient must be accepted, or nothing is sent: ticketd
// queues one recipient per mail, so a refused recipient fails the mail.
func (r *Relay) Send(ctx context.Context, from string, to []string, data []byte) error {
	if len(to) == 0 {
		return &SendError{Message: "no recipients"}
	}
	for try := 0; ; try++ {
		rc, reused, err := r.get(ctx)
		if err != nil {
			return err
		}
		st, err := r.transact(ctx, rc, from, to, data)
		if err == nil {
			r.put(rc)
			return nil
		}
		// A kept connection the relay has closed in the meantime fails at
		// MAIL FROM, before any of the mail was sent: try once more at once.
		if reused && try == 0 && st == stageMail && ctx.Err() == nil && stale(err) {
			rc.close()
			continue
		}
		return r.fail(ctx, rc, st, err)
	}
}

func stale(err error) bool {
	var se *smtp.SMTPError
	return !errors.As(err, &se) || se.Code == 421
}

func (r *Relay) transact(ctx context.Context, rc *relayConn, from string, to []string, data []byte) (stage, error) {
	stop := context.AfterFunc(ctx, func() { rc.conn.Close() })
	defer stop()
	opts := &smtp.MailOptions{Size: int64(len(data)), UTF8: !ascii(from) || !ascii(to...)}
	if err := rc.c.Mail(from, opts); err != nil {
		return stageMail, err
	}
	for _, rcpt := range to {
		if err := rc.c.Rcpt(rcpt, nil); err != nil {
			return stageRcpt, err
		}
	}
	w, err := rc.c.Data()
	if err != nil {
		return stageData, err
	}
	if _, err := w.Write(data); err != nil {
		return stageBody, err
	}
	if err := w.Close(); err != nil {
		return stageDot, err
	}
	return stageDone, nil
}

// fail classifies a failed transaction and keeps the connection when the
// relay merely refused this mail.
func (r *Relay) fail(ctx context.Context, rc *relayConn, st stage, err error) error {
	if ctx.Err() != nil {
		rc.close()
		return &SendError{Temporary: true, Message: "delivery interrupted: " + ctx.Err().Error(), Err: err}
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		rc.close()
		if st == stageDot {
			// RFC 5321 6.1 leaves this case to the sender: the relay may
			// have the mail. Trying again later can deliver it twice; not
			// trying can lose it. ticketd tries again.
			return temporary(err, "connection lost waiting for the answer to the message (the relay may have it)")
		}
		return temporary(err, "relay connection")
	}
	if se.Code == 421 {
		rc.close()
	} else if rerr := rc.c.Reset(); rerr != nil {
		rc.close()
	} else {
		r.put(rc)
	}
	msg := se.Message
	if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode != (smtp.EnhancedCode{}) {
		msg = fmt.Sprintf("%d.%d.%d %s", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	}
	what := [...]string{stageMail: "MAIL FROM", stageRcpt: "RCPT TO", stageData: "DATA", stageBody: "DATA", stageDot: "end of DATA"}[st]
	return &SendError{
		Temporary: se.Code/100 != 5 || authRefusal(se),
		Code:      se.Code,
		Message:   msg + " (answer to " + what + ")",
		Err:       err,
	}
}

// authRefusal reports a relay that wants authentication ticketd did not
// give, or a stronger one (RFC 4954 6: 530 5.7.0, 535 5.7.8, 534 5.7.9,
// 538 5.7.11). That is ticketd's configuration, not the mail's fault: the
// mail waits for someone to fix it rather than failing for good with every
// other mail in the outbox.
func authRefusal(se *smtp.SMTPError) bool {
	switch se.Code {
	case 530, 534, 535, 538:
		return true
	}
	switch se.EnhancedCode {
	case smtp.EnhancedCode{5, 7, 0}, smtp.EnhancedCode{5, 7, 8}, smtp.EnhancedCode{5, 7, 9}, smtp.EnhancedCode{5, 7, 11}:
		return true
	}
	return false
}

func (r *Relay) get(ctx context.Context) (*relayConn, bool, error) {
	r.mu.Lock()
	for len(r.idle) > 0 {
		rc := r.idle[len(r.idle)-1]
		r.idle = r.idle[:len(r.idle)-1]
		if time.Since(rc.used) > r.o.IdleTimeout {
			go rc.quit()
			continue
		}
		r.mu.Unlock()
		return rc, true, nil
	}
	r.mu.Unlock()
	rc, err := r.dial(ctx)
	return rc, false, err
}

func (r *Relay) put(rc *relayConn) {
	rc.used = time.Now()
	r.mu.Lock()
	if r.closed || len(r.idle) >= r.o.MaxIdle {
		r.mu.Unlock()
		go rc.quit()
		return
	}
	r.idle = append(r.idle, rc)
	r.mu.Unlock()
}

// Close says goodbye on every kept connection.
func (r *Relay) Close() error {
	r.mu.Lock()
	idle := r.idle
	r.idle, r.closed = nil, true
	r.mu.Unlock()
	for _, rc := range idle {
		rc.quit()
	}
	return nil
}

func (rc *relayConn) close() { rc.c.Close() }

func (rc *relayConn) quit() {
	rc.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := rc.c.Quit(); err != nil {
		rc.c.Close()
	}
}

func (r *Relay) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if r.o.TLSConfig != nil {
		cfg = r.o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = r.host
	}
	if r.o.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
	}
	return cfg
}

// dial connects, says EHLO, secures the connection and authenticates.
func (r *Relay) dial(ctx context.Context) (*relayConn, error) {
	rc, err := r.connect(ctx)
	if err != nil {
		return nil, err
	}
	rc.c.CommandTimeout = r.o.CommandTimeout
	rc.c.SubmissionTimeout = r.o.DataTimeout
	if r.user != nil {
		stop := context.AfterFunc(ctx, func() { rc.conn.Close() })
		err := r.authenticate(rc.c)
		stop()
		if err != nil {
			rc.close()
			return nil, err
		}
	}
	r.log.Debug("connected to the relay", "relay", r.String())
	return rc, nil
}

func (r *Relay) tcp(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: r.o.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return nil, temporary(err, "connect to relay %s", r.addr)
	}
	return conn, nil
}

func (r *Relay) connect(ctx context.Context) (*relayConn, error) {
	raw, err := r.tcp(ctx)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	// Until the client sets its own per-command deadlines, bound the
	// greeting and the handshake.
	raw.SetDeadline(time.Now().Add(r.o.CommandTimeout))
	defer raw.SetDeadline(time.Time{})

	if r.implicitTLS {
		// RFC 8314 3.3: TLS from the first byte.
		conn := tls.Client(raw, r.tlsConfig())
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, temporary(err, "TLS handshake with relay %s", r.addr)
		}
		return r.hello(smtp.NewClient(conn), conn)
	}
	if r.noStartTLS.Load() {
		return r.plain(ctx, raw)
	}
	// RFC 3207: STARTTLS whenever the relay offers it. go-smtp introduces
	// itself as "localhost" before TLS, and with HeloName after.
	c, err := smtp.NewClientStartTLS(raw, r.tlsConfig())
	if err == nil {
		return r.hello(c, raw)
	}
	if !strings.Contains(err.Error(), "doesn't support STARTTLS") {
		raw.Close()
		return nil, temporary(err, "STARTTLS with relay %s", r.addr)
	}
	// That connection is closed; remember, and talk in clear from now on.
	r.noStartTLS.Store(true)
	raw, err = r.tcp(ctx)
	if err != nil {
		return nil, err
	}
	stop2 := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop2()
	raw.SetDeadline(time.Now().Add(r.o.CommandTimeout))
	defer raw.SetDeadline(time.Time{})
	return r.plain(ctx, raw)
}

func (r *Relay) plain(ctx context.Context, raw net.Conn) (*relayConn, error) {
	if r.user != nil {
		raw.Close()
		// RFC 4954 4: a password is sent only over an encrypted connection.
		return nil, &SendError{Temporary: true, Message: fmt.Sprintf(
			"relay %s does not offer STARTTLS; not sending the password in clear", r.addr)}
	}
	return r.hello(smtp.NewClient(raw), raw)
}

func (r *Relay) hello(c *smtp.Client, conn net.Conn) (*relayConn, error) {
	if err := c.Hello(r.o.HeloName); err != nil {
		c.Close()
		return nil, temporary(err, "EHLO to relay %s", r.addr)
	}
	return &relayConn{c: c, conn: conn}, nil
}

func (r *Relay) authenticate(c *smtp.Client) error {
	pass, _ := r.user.Password()
	var mech sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		mech = sasl.NewPlainClient("", r.user.Username(), pass)
	case c.SupportsAuth(sasl.Login):
		mech = sasl.NewLoginClient(r.user.Username(), pass)
	default:
		return &SendError{Temporary: true, Message: fmt.Sprintf(
			"relay %s offers neither AUTH PLAIN nor AUTH LOGIN", r.addr)}
	}
	if err := c.Auth(mech); err != nil {
		// A refused password is ticketd's configuration, not the mail's
		// fault: the mail waits until someone fixes it.
		return temporary(err, "authenticate to relay %s as %s", r.addr, r.user.Username())
	}
	return nil
}

func ascii(ss ...string) bool {
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return false
			}
		}
	}
	return true
}

package smtpserver

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// listener counts the server's connections and turns away those over
// MaxSessions, and all of them once Shutdown began.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &conn{Conn: nc, s: l.s, cid: l.s.newCID(), client: clientKey(nc.RemoteAddr())}
		c.log = l.s.log.With("cid", c.cid)
		if ok, reason := l.s.register(c); !ok {
			go l.s.refuse(nc, c.log, reason)
			continue
		}
		c.log.Debug("smtp connection opened", "remote", nc.RemoteAddr().String())
		return c, nil
	}
}

// refuse greets a connection the server cannot take with 421 and closes it
// (RFC 5321 3.1 and 4.2.3: service not available, closing channel).
func (s *Server) refuse(nc net.Conn, log *slog.Logger, reason string) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("smtp panic while refusing a connection", "panic", fmt.Sprint(p))
		}
	}()
	defer nc.Close()
	log.Warn("smtp connection refused", "remote", nc.RemoteAddr().String(), "reason", reason)
	code, counted := "4.4.5", "sessions" // RFC 3463: system congestion
	switch reason {
	case refusedShutdown:
		code, counted = "4.3.2", "shutting_down" // RFC 3463: system not accepting network messages
	case refusedClient:
		code, counted = "4.7.0", "client_sessions" // RFC 3463: a security or policy status
	}
	s.opt.Metrics.MailRefused("smtp", counted)
	_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = fmt.Fprintf(nc, "421 %s %s %s, try again later\r\n", code, s.opt.Domain, reason)
}

// conn is a client connection. It sets a fresh read deadline before every
// read, and it lets Shutdown end a session between transactions while a
// message whose DATA is being read or stored goes on to its answer.
type conn struct {
	net.Conn
	s      *Server
	cid    string
	client string // clientKey of the remote address
	log    *slog.Logger
	spoke  bool // the client sent its first bytes; only Read touches it

	mu      sync.Mutex
	inData  bool // reading or delivering a message
	closing bool // Shutdown began
	woken   bool // Shutdown cut the current read short

	closeOnce sync.Once
}

// errShutdown ends a session's read loop when the server shuts down. It is a
// timeout, so go-smtp answers 421 before closing (RFC 5321 3.8), through TLS
// as well.
var errShutdown = shutdownError{}

type shutdownError struct{}

func (shutdownError) Error() string   { return "smtpserver: shutting down" }
func (shutdownError) Timeout() bool   { return true }
func (shutdownError) Temporary() bool { return true }

func (c *conn) Read(b []byte) (int, error) {
	for {
		c.mu.Lock()
		if c.closing && !c.inData {
			c.mu.Unlock()
			return 0, errShutdown
		}
		c.woken = false
		timeout := c.s.opt.ReadTimeout
		if !c.spoke {
			timeout = c.s.opt.FirstCommandTimeout
		}
		_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
		c.mu.Unlock()

		n, err := c.Conn.Read(b)
		if n > 0 {
			c.spoke = true
		}
		if err != nil && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			c.mu.Lock()
			woken := c.woken
			c.mu.Unlock()
			if woken {
				continue
			}
			if !c.spoke {
				// go-smtp answers a timeout with 421 and closes.
				c.log.Info("smtp client silent after the greeting: session ended", "remote", c.RemoteAddr().String(),
					"waited", timeout)
				c.s.opt.Metrics.MailRefused("smtp", "silent")
			}
		}
		return n, err
	}
}

// interrupt marks the session as closing and wakes a read waiting for the
// client's next command.
func (c *conn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closing = true
	if !c.inData {
		c.woken = true
		_ = c.Conn.SetReadDeadline(time.Now())
	}
}

// endAfterReply ends the session at its next read, once the current reply
// is written.
func (c *conn) endAfterReply() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
}

func (c *conn) setInData(v bool) {
	c.mu.Lock()
	c.inData = v
	c.mu.Unlock()
}

func (c *conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.s.unregister(c)
		err = c.Conn.Close()
		c.log.Debug("smtp connection closed")
	})
	return err
}

// connOf finds the conn beneath go-smtp's connection, which STARTTLS wraps
// in TLS.
func connOf(nc net.Conn) *conn {
	switch v := nc.(type) {
	case *conn:
		return v
	case *tls.Conn:
		return connOf(v.NetConn())
	}
	return nil
}

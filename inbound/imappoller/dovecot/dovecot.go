// Package dovecot runs a private Dovecot IMAP server on loopback, from the
// machine's Dovecot binaries, with a throwaway configuration: a passwd-file
// of users and Maildirs in a directory of the caller's. The IMAP poller's
// tests and the intake benchmark use it; nothing in ticketd needs it.
//
// Only the binaries are used, never /etc/dovecot. scripts/install-dovecot.sh
// installs them on Debian (dovecot-core, dovecot-imapd). As root, Dovecot's
// own accounts (dovecot, dovenull, made by the package) run its services and
// the mail belongs to nobody; as another user, everything runs as that user.
package dovecot

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binary is where Debian installs the Dovecot master.
const Binary = "/usr/sbin/dovecot"

// Options configures a server.
type Options struct {
	// Dir holds the configuration, the runtime files and the mail.
	Dir string
	// Users maps user names to passwords.
	Users map[string]string
	// Certificate, when set, enables STARTTLS on the plain port and an
	// implicit-TLS port (Server.TLSAddr).
	Certificate *tls.Certificate
	// Capability, when set, replaces the capabilities Dovecot announces
	// after login (imap_capability), e.g. to leave IDLE out.
	Capability string
}

// Server is a running Dovecot.
type Server struct {
	// Addr is the plain (and STARTTLS) listener, TLSAddr the implicit-TLS
	// one ("" without a certificate).
	Addr, TLSAddr string

	opt     Options
	conf    string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	mailUID int
	mailGID int
}

// Available reports whether the Dovecot binaries are installed, with how to
// install them when they are not.
func Available() error {
	for _, p := range []string{Binary, "/usr/lib/dovecot/imap", "/usr/lib/dovecot/imap-login"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("dovecot: %s is missing; install Dovecot with scripts/install-dovecot.sh "+
				"(Debian: apt-get install dovecot-core dovecot-imapd)", p)
		}
	}
	return nil
}

// Start writes the configuration into Dir and starts Dovecot on free
// loopback ports, returning once it greets.
func Start(ctx context.Context, opt Options) (*Server, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	s := &Server{opt: opt}
	if err := s.prepare(); err != nil {
		return nil, err
	}
	var err error
	for try := 0; try < 3; try++ {
		// A port found free may be taken before Dovecot binds it; a
		// new pair of ports is tried then.
		if s.Addr, err = freePort(); err != nil {
			return nil, err
		}
		if opt.Certificate != nil {
			if s.TLSAddr, err = freePort(); err != nil {
				return nil, err
			}
		}
		if err = s.writeConfig(); err != nil {
			return nil, err
		}
		if err = s.start(ctx); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("dovecot: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Server) prepare() error {
	dir := s.opt.Dir
	for _, d := range []string{dir, filepath.Join(dir, "run"), filepath.Join(dir, "state"), filepath.Join(dir, "mail")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
	}
	s.mailUID, s.mailGID = os.Getuid(), os.Getgid()
	if os.Getuid() == 0 {
		// Dovecot refuses mail access as root.
		u, err := user.Lookup("nobody")
		if err != nil {
			return fmt.Errorf("dovecot: running as root needs the nobody account for the mail: %w", err)
		}
		s.mailUID, _ = strconv.Atoi(u.Uid)
		s.mailGID, _ = strconv.Atoi(u.Gid)
		for _, acct := range []string{"dovecot", "dovenull"} {
			if _, err := user.Lookup(acct); err != nil {
				return fmt.Errorf("dovecot: the %s account is missing (the Debian package creates it): %w", acct, err)
			}
		}
		// nobody must reach the Maildirs.
		for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil {
				return fmt.Errorf("dovecot: %w", err)
			}
			if fi.Mode().Perm()&0o001 == 0 {
				if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
					return fmt.Errorf("dovecot: make %s traversable: %w", d, err)
				}
			}
		}
		if err := os.Chown(filepath.Join(dir, "mail"), s.mailUID, s.mailGID); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
	}
	var passwd strings.Builder
	for name, pass := range s.opt.Users {
		fmt.Fprintf(&passwd, "%s:{PLAIN}%s::::::\n", name, pass)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(passwd.String()), 0o644); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	if c := s.opt.Certificate; c != nil {
		var certPEM bytes.Buffer
		for _, der := range c.Certificate {
			_ = pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		}
		keyPEM, err := marshalKey(c.PrivateKey)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM.Bytes(), 0o644); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600); err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
	}
	return nil
}

func (s *Server) writeConfig() error {
	dir := s.opt.Dir
	_, port, _ := net.SplitHostPort(s.Addr)
	var b strings.Builder
	fmt.Fprintf(&b, `# Written by the dovecot test package; safe to delete.
base_dir = %[1]s/run
state_dir = %[1]s/state
instance_name = ticketd-%[2]s
log_path = %[1]s/dovecot.log
protocols = imap
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = static
  args = uid=%[3]d gid=%[4]d home=%[1]s/mail/%%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = %[5]s
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = %[6]s
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
`, dir, port, s.mailUID, s.mailGID, port, tlsPort(s.TLSAddr))
	if s.opt.Certificate != nil {
		fmt.Fprintf(&b, "ssl = yes\nssl_cert = <%[1]s/cert.pem\nssl_key = <%[1]s/key.pem\n", dir)
	} else {
		b.WriteString("ssl = no\n")
	}
	if os.Getuid() != 0 {
		u, err := user.Current()
		if err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
		g, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
		if err != nil {
			return fmt.Errorf("dovecot: %w", err)
		}
		fmt.Fprintf(&b, "default_login_user = %[1]s\ndefault_internal_user = %[1]s\ndefault_internal_group = %[2]s\n",
			u.Username, g.Name)
	}
	if s.opt.Capability != "" {
		fmt.Fprintf(&b, "imap_capability = %s\n", s.opt.Capability)
	}
	s.conf = filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(s.conf, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	return nil
}

func tlsPort(addr string) string {
	if addr == "" {
		return "0"
	}
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A file, not a pipe: Dovecot's children inherit the output, and
	// waiting for a pipe would wait for the last of them.
	out, err := os.Create(filepath.Join(s.opt.Dir, "stdout.log"))
	if err != nil {
		return fmt.Errorf("dovecot: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(Binary, "-F", "-c", s.conf)
	cmd.Stdout, cmd.Stderr = out, out
	// Dovecot goes with whoever started it, even when that one is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("dovecot: start %s: %w", Binary, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("dovecot: exited during start-up:\n%s%s", s.stdout(), s.logTail())
		default:
		}
		if greets(s.Addr) && (s.TLSAddr == "" || listening(s.TLSAddr)) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stopLocked()
			return fmt.Errorf("dovecot: no IMAP greeting on %s within 30s:\n%s%s", s.Addr, s.stdout(), s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 4)
	n, _ := c.Read(b)
	return n == 4 && string(b) == "* OK"
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (s *Server) stdout() string {
	b, _ := os.ReadFile(filepath.Join(s.opt.Dir, "stdout.log"))
	return string(b)
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.opt.Dir, "dovecot.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Log returns the end of Dovecot's log, for a failing test to show.
func (s *Server) Log() string { return s.logTail() }

// Stop stops Dovecot (SIGTERM, then SIGKILL after 10 seconds) and waits for
// it. The mail stays in Dir.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	// The master's children end with it.
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
	return nil
}

// Restart stops Dovecot and starts it again on the same ports and mail.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	var err error
	for try := 0; try < 50; try++ {
		// The old master may hold the ports for a moment.
		if err = s.start(ctx); err == nil || !strings.Contains(err.Error(), "in use") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// MailDir is the Maildir of user.
func (s *Server) MailDir(user string) string {
	return filepath.Join(s.opt.Dir, "mail", user, "Maildir")
}

func marshalKey(key any) ([]byte, error) {
	if key == nil {
		return nil, errors.New("dovecot: certificate without a private key")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("dovecot: encode the private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

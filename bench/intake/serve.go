package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5/pgxpool"

	"ticketd/inbound"
	"ticketd/inbound/smtpserver"
	"ticketd/outbound"
	"ticketd/signing"
)

const support = "support@bench.test"

// newIntake wires ticketd's intake the way main does.
func newIntake(pool *pgxpool.Pool, log *slog.Logger) (*inbound.Intake, error) {
	keys, err := signing.NewKeys("bench secret, long enough for the signing keys")
	if err != nil {
		return nil, err
	}
	notifier := outbound.NewNotifier(outbound.NotifierOptions{SupportAddress: support, Keys: keys, Logger: log})
	opt := inbound.Options{Pool: pool, Logger: log, SupportAddress: support, Keys: keys, Notifier: notifier}
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	return inbound.New(opt), nil
}

// serveChild runs one SMTP server until SIGTERM: "ticketd" or "baseline".
// It prints its address on stdout.
func serveChild(kind, db, logPath string) int {
	ctx := context.Background()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	logOut := io.Discard
	if logPath != "" {
		f, err := os.Create(logPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		defer f.Close()
		logOut = f
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer pool.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)

	var serveErr = make(chan error, 1)
	var shutdown func(context.Context) error
	switch kind {
	case "ticketd":
		in, err := newIntake(pool, log)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		s, err := smtpserver.New(smtpserver.Options{
			Domain:  "mx.bench.test",
			Accepts: in.Accepts,
			Deliver: func(ctx context.Context, raw []byte, env smtpserver.Envelope) error {
				_, err := in.Deliver(ctx, raw, inbound.Source{Kind: "smtp", RemoteAddr: env.RemoteAddr,
					MailFrom: env.MailFrom, RcptTo: env.RcptTo})
				return err
			},
			IsPermanent: func(err error) bool { return errors.Is(err, inbound.ErrRejected) },
			MaxSessions: 200,
			Logger:      log,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		go func() { serveErr <- s.Serve(l) }()
		shutdown = s.Shutdown
	case "receiver":
		// ticketd's receiver storing like the baseline: what the
		// receiver itself costs, without the intake.
		bl := &baselineSession{pool}
		s, err := smtpserver.New(smtpserver.Options{
			Domain:      "mx.bench.test",
			Accepts:     func(string) bool { return true },
			Deliver:     func(_ context.Context, raw []byte, _ smtpserver.Envelope) error { return bl.store(raw) },
			MaxSessions: 200,
			Logger:      log,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		go func() { serveErr <- s.Serve(l) }()
		shutdown = s.Shutdown
	case "baseline":
		s := smtp.NewServer(baselineBackend{pool})
		s.Domain = "mx.bench.test"
		s.MaxMessageBytes = 25 << 20
		s.MaxRecipients = 50
		s.ReadTimeout, s.WriteTimeout = 5*time.Minute, time.Minute
		s.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
		go func() { serveErr <- s.Serve(l) }()
		shutdown = s.Shutdown
	default:
		fmt.Fprintln(os.Stderr, "unknown server kind", kind)
		return 2
	}
	fmt.Println(l.Addr().String())
	select {
	case <-stop:
	case err := <-serveErr:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = shutdown(sctx)
	return 0
}

// baselineBackend is the bare server: read the message, INSERT it, 250.
type baselineBackend struct{ pool *pgxpool.Pool }

func (b baselineBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &baselineSession{b.pool}, nil
}

type baselineSession struct{ pool *pgxpool.Pool }

func (s *baselineSession) Reset()                               {}
func (s *baselineSession) Logout() error                        { return nil }
func (s *baselineSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *baselineSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *baselineSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return s.store(raw)
}

func (s *baselineSession) store(raw []byte) error {
	_, err := s.pool.Exec(context.Background(), `INSERT INTO baseline_mail (data) VALUES ($1)`, raw)
	return err
}

// server is a server process started by the benchmark.
type server struct {
	kind string
	cmd  *exec.Cmd
	addr string
}

func (b *bench) startServer(kind, db string, env ...string) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logFile := filepath.Join(b.dir, fmt.Sprintf("%s-%d.log", kind, time.Now().UnixNano()))
	cmd := exec.Command(self, "-serve", kind, "-db", db, "-log", logFile)
	if *profileDir != "" {
		cmd.Args = append(cmd.Args, "-cpuprofile", filepath.Join(*profileDir, fmt.Sprintf("%s-%d.cpu", kind, time.Now().UnixNano())))
	}
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", kind, err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s server did not start (log %s): %w", kind, logFile, err)
	}
	return &server{kind: kind, cmd: cmd, addr: strings.TrimSpace(line)}, nil
}

// peakRSS is the process's peak resident set size (VmHWM), in bytes.
func (s *server) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// Package inngesttest runs the real Inngest dev server (bin/inngest, built
// by `make inngest`) for tests: on free loopback ports, with its output kept
// for the failure message, stopped when the test ends. A test can stop and
// start it again on the same port to show that nothing is lost meanwhile.
//
//	dev := inngesttest.Start(t, inngesttest.Options{AppURL: app.URL + "/api/inngest"})
//	wf, _ := workflows.New(workflows.Options{Dev: dev.URL, ...})
//	dev.Sync(t, app.URL+"/api/inngest", 5)
package inngesttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configure the dev server.
type Options struct {
	// AppURL is the app's serve URL (http://127.0.0.1:port/api/inngest),
	// which the dev server syncs; empty means none (call Sync later).
	AppURL string
	// Binary is the inngest CLI; empty means bin/inngest at the module
	// root, or $INNGEST_BIN.
	Binary string
	// RetryInterval is the seconds between retries of a failed step
	// (--retry-interval); 0 means 1, to keep tests quick.
	RetryInterval int
	// Tick is the queue's poll interval in milliseconds (--tick); 0 means
	// 50.
	Tick int
}

// Server is a running dev server.
type Server struct {
	// URL is its base URL, for workflows.Options.Dev (INNGEST_DEV).
	URL string

	t       testing.TB
	opts    Options
	bin     string
	port    int
	gateway int
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	out     *syncBuffer
}

// Start starts the dev server and waits until it answers. The test fails
// with a pointer to `make inngest` when the binary is missing.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.RetryInterval == 0 {
		o.RetryInterval = 1
	}
	if o.Tick == 0 {
		o.Tick = 50
	}
	bin, err := findBinary(o.Binary)
	if err != nil {
		t.Fatalf("inngesttest: %v", err)
	}
	s := &Server{t: t, opts: o, bin: bin, port: freePort(t), gateway: freePort(t), out: &syncBuffer{}}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(s.port)
	s.start(t)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("inngest dev server output (last 8 KB):\n%s", s.out.tail(8192))
		}
	})
	return s
}

func findBinary(explicit string) (string, error) {
	if explicit == "" {
		explicit = os.Getenv("INNGEST_BIN")
	}
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("the Inngest CLI %s: %w", explicit, err)
		}
		return explicit, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			bin := filepath.Join(dir, "bin", "inngest")
			if _, err := os.Stat(bin); err != nil {
				return "", fmt.Errorf("the Inngest dev server %s is missing: run `make inngest` to build it (a few minutes the first time), or set INNGEST_BIN", bin)
			}
			return bin, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory, so no bin/inngest; set INNGEST_BIN")
		}
		dir = parent
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("inngesttest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	args := []string{"dev", "--no-discovery", "--host", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--connect-gateway-port", strconv.Itoa(s.gateway),
		"--retry-interval", strconv.Itoa(s.opts.RetryInterval),
		"--tick", strconv.Itoa(s.opts.Tick),
		"--poll-interval", "2",
	}
	if s.opts.AppURL != "" {
		args = append(args, "-u", s.opts.AppURL)
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout, cmd.Stderr = s.out, s.out
	// Its own process group, so stopping it never signals the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("inngesttest: start %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		defer func() { _ = recover() }()
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("inngesttest: the dev server exited at start:\n%s", s.out.tail(4096))
		default:
		}
		resp, err := http.Get(s.URL + "/dev")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("inngesttest: the dev server did not answer at %s within a minute:\n%s", s.URL, s.out.tail(4096))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the dev server (SIGTERM, then SIGKILL) and waits for it; its
// in-memory state is gone.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	// Wait until the port is free again, for a restart on it.
	for i := 0; i < 100; i++ {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.port), 50*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

// Restart starts a stopped dev server again on the same port.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	s.start(t)
}

// Sync makes the app at appURL register its functions with the dev server
// now (the request the dev server itself sends every poll interval) and
// waits until the dev server lists at least want functions.
func (s *Server) Sync(t testing.TB, appURL string, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		body, _ := json.Marshal(map[string]string{"url": appURL})
		req, _ := http.NewRequest(http.MethodPut, appURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Inngest-Server-Kind", "dev")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%s: %s", resp.Status, b)
			if n, err := s.Functions(); err == nil && n >= want {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("inngesttest: the app at %s did not register %d functions with %s: %s", appURL, want, s.URL, last)
}

// Functions is how many functions the dev server knows.
func (s *Server) Functions() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/dev", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var info struct {
		Functions []json.RawMessage `json:"functions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return 0, fmt.Errorf("inngesttest: read /dev: %w", err)
	}
	return len(info.Functions), nil
}

// Output is what the dev server printed so far.
func (s *Server) Output() string { return s.out.tail(1 << 20) }

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Keep the last 4 MB.
	if b.buf.Len() > 4<<20 {
		rest := b.buf.Bytes()[b.buf.Len()-2<<20:]
		b.buf = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	return s
}

package e2e

import (
	"ticketd/mailauth/dnstest"

	"bytes"
	"fmt"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDevStack runs `ticketd dev` as `make dev` does: it comes up on its
// defaults (here on free ports), takes `ticketd user add`, stops every child
// on SIGINT, and a second start keeps the data.
func TestDevStack(t *testing.T) {
	bin := ticketdBinary(t)
	inngestBin, err := filepath.Abs("../bin/inngest")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inngestBin); err != nil {
		t.Fatalf("%s is missing: run `make inngest`", inngestBin)
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	httpAddr, smtpAddr, inngestAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	inngestPort := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	env := append(os.Environ(),
		"TICKETD_DATA_DIR="+dataDir,
		"HTTP_LISTEN="+httpAddr,
		"TICKETD_BASE_URL=http://"+httpAddr,
		"SMTP_LISTEN="+smtpAddr,
		"INNGEST_BIN="+inngestBin,
		"INNGEST_PORT="+inngestPort,
		"INNGEST_LISTEN="+inngestAddr,
		"DATABASE_URL=", "INNGEST_DEV=", "TICKETD_SECRET=",
		"DNS_RESOLVER="+dnstest.Start(t).Addr, // never the machine's own resolver in a test
	)
	dbURL := "postgres://postgres@/ticketd?host=" + filepath.Join(dataDir, "pg", "run")

	run := func() (out *lockedBuffer, stop func() error) {
		out = &lockedBuffer{}
		cmd := exec.Command(bin, "dev")
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.Now().Add(90 * time.Second)
		for {
			resp, err := http.Get("http://" + httpAddr + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			select {
			case err := <-exited:
				t.Fatalf("ticketd dev exited: %v\n%s", err, out)
			default:
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("ticketd dev not ready in 90s:\n%s", out)
			}
			time.Sleep(200 * time.Millisecond)
		}
		return out, func() error {
			cmd.Process.Signal(syscall.SIGINT)
			select {
			case err := <-exited:
				return err
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				return fmt.Errorf("ticketd dev did not stop within 60s of SIGINT:\n%s", out)
			}
		}
	}

	out, stop := run()
	if !strings.Contains(out.String(), "password:") {
		t.Errorf("the first run did not print the admin's password:\n%s", out)
	}
	// The dev server's calls are unsigned: the web's /api/inngest refuses
	// them, and the workflows run through INNGEST_LISTEN. A mail is
	// triaged and acknowledged into the outbox Maildir.
	if resp, err := http.Post("http://"+httpAddr+"/api/inngest?fnId=ticketd-notify-assigned&stepId=step", "application/json",
		strings.NewReader(`{"event":{"name":"ticket.assigned","data":{}}}`)); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unsigned call on the web's listener: %v, %v; want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	sendDev(t, smtpAddr, "ann@example.com", "Subject: Printer on fire\r\nMessage-ID: <dev-1@example.com>\r\n\r\nIt burns.\r\n")
	deadline := time.Now().Add(90 * time.Second)
	for {
		files, _ := os.ReadDir(filepath.Join(dataDir, "outbox", "new"))
		if len(files) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no acknowledgement in the outbox Maildir within 90s:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	add := exec.Command(bin, "user", "add", "--email", "mo@example.com", "--role", "moderator", "--skills", "printers")
	add.Env = append(env, "DATABASE_URL="+dbURL)
	if b, err := add.CombinedOutput(); err != nil {
		t.Fatalf("user add against the dev stack: %v\n%s", err, b)
	}
	if err := stop(); err != nil {
		t.Fatalf("ticketd dev after SIGINT: %v\n%s", err, out)
	}
	if left := processesMentioning(dataDir); len(left) > 0 {
		t.Fatalf("processes left behind after SIGINT: %v", left)
	}

	out2, stop2 := run()
	if strings.Contains(out2.String(), "password:") {
		t.Error("the second run made another admin")
	}
	list := exec.Command(bin, "user", "list")
	list.Env = append(env, "DATABASE_URL="+dbURL)
	b, err := list.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "mo@example.com") {
		t.Errorf("the second run lost the data: %v\n%s", err, b)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	if left := processesMentioning(dataDir); len(left) > 0 {
		t.Fatalf("processes left behind after the second SIGINT: %v", left)
	}
}

// processesMentioning lists the processes whose command line or working
// directory names dir: the dev stack's PostgreSQL and Inngest.
func processesMentioning(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join(p, "cwd"))
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(line, dir) || strings.HasPrefix(cwd, dir) {
			out = append(out, filepath.Base(p)+": "+line)
		}
	}
	return out
}

// lockedBuffer collects a process's output while the test reads it.
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

// sendDev mails the dev stack's SMTP receiver with net/smtp.
func sendDev(t *testing.T, addr, from, msg string) {
	t.Helper()
	msg = "From: " + from + "\r\nTo: support@localhost\r\n" + msg
	if err := smtp.SendMail(addr, nil, from, []string{"support@localhost"}, []byte(msg)); err != nil {
		t.Fatalf("mail the dev stack: %v", err)
	}
}

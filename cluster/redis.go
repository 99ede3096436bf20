package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RedisBinary is where Debian's redis-server package installs the server.
const RedisBinary = "/usr/bin/redis-server"

// Redis is a redis-server of the cluster's own, holding the self-hosted
// Inngest's queue and the state of its runs. It writes every change to an
// append-only file in its directory (fsynced every second), so a restart
// keeps the runs in flight; a crash of the machine loses at most the last
// second.
type Redis struct {
	// Addr is host:port on loopback.
	Addr string
	dir  string
	proc *process
}

// StartRedis starts redis-server with its data in dir (created when
// missing) on a free loopback port.
func StartRedis(ctx context.Context, dir string) (*Redis, error) {
	if _, err := os.Stat(RedisBinary); err != nil {
		return nil, fmt.Errorf("cluster: %s is missing; install it with scripts/install-test-deps.sh (Debian: apt-get install redis-server)", RedisBinary)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	port, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir}
	r.proc = &process{name: "redis", path: RedisBinary, dir: dir, logPath: filepath.Join(dir, "redis.log"),
		args: []string{
			"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--protected-mode", "yes",
			"--dir", dir, "--daemonize", "no", "--logfile", "",
			// The append-only file is the durable copy; no snapshots.
			"--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		}}
	if err := r.startProc(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Redis) startProc(ctx context.Context) error {
	if err := r.proc.start(); err != nil {
		return err
	}
	return r.proc.waitFor(30*time.Second, func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.ping()
	})
}

// ping asks the server PING with a bare RESP request and expects PONG (it
// answers LOADING while it reads its append-only file).
func (r *Redis) ping() error {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("redis answers %q", strings.TrimSpace(line))
	}
	return nil
}

// URL is the connection URL for inngest start's --redis-uri.
func (r *Redis) URL() string { return "redis://" + r.Addr }

// Stop shuts the server down (SIGTERM: it flushes the append-only file and
// exits).
func (r *Redis) Stop() { r.proc.stop(syscall.SIGTERM, 30*time.Second) }

// Restart stops the server and starts it again on the same port and files.
func (r *Redis) Restart(ctx context.Context) error {
	r.Stop()
	var err error
	for try := 0; try < 50; try++ {
		if err = r.startProc(ctx); err == nil {
			return nil
		}
		r.proc.stop(syscall.SIGKILL, time.Second)
		if !strings.Contains(err.Error(), "in use") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Available reports whether the binaries the cluster runs are installed.
func Available() error {
	var missing []string
	for _, p := range []string{RedisBinary, PostfixMaster, "/usr/sbin/postfix"} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if _, err := exec.LookPath("initdb"); err != nil {
		if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) == 0 {
			missing = append(missing, "initdb")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cluster: %s missing; run scripts/install-test-deps.sh as root (Debian: apt-get install postfix redis-server postgresql dovecot-imapd)",
			strings.Join(missing, ", "))
	}
	if os.Getuid() != 0 {
		return errors.New("cluster: Postfix's master runs as root (its daemons as the postfix account); run the cluster as root")
	}
	return nil
}

// Package pgcluster runs a private PostgreSQL cluster from the machine's
// PostgreSQL binaries: the throwaway cluster of the tests and the persistent
// one of `ticketd dev`. The server listens only on a unix socket inside the
// cluster's directory. PostgreSQL refuses to run as root, so when the caller
// is root the cluster belongs to, and runs as, the unprivileged "postgres"
// account.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Options configures a cluster.
type Options struct {
	// Dir holds the cluster: Dir/data for the files, Dir/run for the socket.
	Dir string
	// Fast turns off durability (fsync, full_page_writes): for tests only.
	Fast bool
	// Log receives the server's output; nil discards it.
	Log *os.File
}

// Cluster is a running server.
type Cluster struct {
	opt  Options
	cmd  *exec.Cmd
	done chan error
	cred *syscall.Credential
}

// BinDir finds the directory of initdb and postgres: on PATH, else the newest
// /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		// Debian links a few of the binaries into /usr/local/bin or
		// /usr/bin; the directory that holds them all is the link's target's.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgcluster: no PostgreSQL server binaries (initdb, postgres) on PATH or in /usr/lib/postgresql/*/bin; " +
		"install them (Debian: apt-get install postgresql) or point TEST_DATABASE_URL / DATABASE_URL at a server")
}

func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// Start initialises the cluster when Dir/data does not hold one yet, then
// starts the server and waits until it accepts connections.
func Start(ctx context.Context, opt Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{opt: opt, done: make(chan error, 1)}
	uid, gid := -1, -1
	if os.Getuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgcluster: running as root needs the unprivileged postgres account: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	for _, d := range []string{opt.Dir, c.dataDir(), c.SocketDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
	}
	if c.cred != nil {
		// The server's account must reach its directories.
		if err := os.Chmod(opt.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		for _, d := range []string{c.dataDir(), c.SocketDir()} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, fmt.Errorf("pgcluster: %w", err)
			}
		}
		if err := parentsTraversable(opt.Dir); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		// initdb writes a directory of its own, renamed into place when
		// it is done: one stopped halfway (Ctrl-C on the first `ticketd
		// dev`) leaves nothing that looks like a cluster.
		fresh := c.dataDir() + ".initdb"
		if err := os.RemoveAll(fresh); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		if err := os.Mkdir(fresh, 0o700); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		if err := os.Chown(fresh, uid, gid); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
			"-D", fresh, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions")
		if opt.Fast {
			initdb.Args = append(initdb.Args, "--no-sync")
		}
		initdb.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		if out, err := initdb.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
		}
		// The empty data directory made above gives way to the new one.
		if err := os.Remove(c.dataDir()); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		if err := os.Rename(fresh, c.dataDir()); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
	}
	args := []string{"-D", c.dataDir(), "-k", c.SocketDir(), "-c", "listen_addresses=",
		"-c", "max_connections=300", "-c", "unix_socket_permissions=0777"}
	if opt.Fast {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), args...)
	// The server dies with whoever started it, even when that process is killed.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	var out bytes.Buffer
	if opt.Log != nil {
		c.cmd.Stdout, c.cmd.Stderr = opt.Log, opt.Log
	} else {
		c.cmd.Stdout, c.cmd.Stderr = &out, &out
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	if err := c.waitReady(ctx); err != nil {
		c.Stop()
		return nil, fmt.Errorf("%w\n%s", err, out.String())
	}
	return c, nil
}

// parentsTraversable makes sure the postgres account can reach dir, which
// temporary directories made by root (mode 0700) do not allow.
func parentsTraversable(dir string) error {
	for d := filepath.Dir(dir); d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("pgcluster: make %s traversable for postgres: %w", d, err)
			}
		}
	}
	return nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.opt.Dir, "data") }

// SocketDir is where the server's unix socket lives.
func (c *Cluster) SocketDir() string { return filepath.Join(c.opt.Dir, "run") }

// URL is a connection string for database db as the superuser.
func (c *Cluster) URL(db string) string {
	q := url.Values{"host": {c.SocketDir()}, "sslmode": {"disable"}}
	return "postgres://postgres@/" + url.PathEscape(db) + "?" + q.Encode()
}

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-c.done:
			c.done <- err
			return fmt.Errorf("pgcluster: postgres exited during start-up: %v", err)
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := pgconn.Connect(pctx, c.URL("postgres"))
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.New("pgcluster: postgres did not accept connections within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: open sessions are ended,
// committed data is kept) and waits for it to exit.
func (c *Cluster) Stop() error {
	if c.cmd == nil || c.cmd.Process == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-c.done:
		c.done <- err
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		err := <-c.done
		c.done <- err
	}
	return nil
}

// Restart stops the server and starts it again on the same files, as an
// operator's restart or a crash recovery would.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.Stop(); err != nil {
		return err
	}
	n, err := Start(ctx, c.opt)
	if err != nil {
		return err
	}
	*c = *n
	return nil
}

// Exited reports whether the server process has exited.
func (c *Cluster) Exited() bool {
	select {
	case err := <-c.done:
		c.done <- err
		return true
	default:
		return false
	}
}

// String describes the cluster for logs.
func (c *Cluster) String() string {
	return "postgres on " + c.SocketDir()
}

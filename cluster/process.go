package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// process is one child server: started in a process group of its own (so a
// Ctrl-C at the terminal reaches only the cluster, which stops its parts in
// order), killed with the cluster even when the cluster is killed, its
// output appended to a log file. Like a service under systemd with
// Restart=always, it is started again a second after it exits on its own
// (not by stop).
type process struct {
	name    string
	path    string
	args    []string
	env     []string
	dir     string
	logPath string
	log     *slog.Logger

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	err      error // how the last run ended
	restarts int   // how often it was started again after exiting on its own
	stopped  bool  // by stop, until the next start
}

// start runs the process; it is an error to start it twice.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("cluster: %s is running already", p.name)
	}
	p.stopped = false
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("cluster: %s log: %w", p.name, err)
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = p.env
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("cluster: start %s (%s): %w", p.name, p.path, err)
	}
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.err = err
		unexpected := p.cmd == cmd
		if unexpected {
			p.cmd = nil
		}
		p.mu.Unlock()
		close(exited)
		if unexpected {
			p.restart(err)
		}
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// restart starts the process again after it exited on its own.
func (p *process) restart(how error) {
	log := p.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.Warn("cluster: a part exited on its own; starting it again", "part", p.name, "err", how, "log", p.logPath)
	time.Sleep(time.Second)
	p.mu.Lock()
	stopped := p.cmd != nil || p.stopped
	p.mu.Unlock()
	if stopped {
		return
	}
	if err := p.start(); err != nil {
		log.Error("cluster: could not start a part again", "part", p.name, "err", err)
		return
	}
	p.mu.Lock()
	p.restarts++
	p.mu.Unlock()
}

// restartCount is how often the process was started again after exiting
// on its own.
func (p *process) restartCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// exitedCh is closed when the current run ends (nil when not started).
func (p *process) exitedCh() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// stop sends sig to the process group, waits up to grace, then kills the
// group, and waits for the process. It stays stopped until start.
func (p *process) stop(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd, p.stopped = nil, true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	// The group's other members (a server's children) go with it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// logTail is the end of the process's log.
func (p *process) logTail(n int) string {
	return tail(p.logPath, n)
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > int64(n) {
		_, _ = f.Seek(-int64(n), io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// waitFor polls ready until it answers nil, the process exits, or the time
// is up.
func (p *process) waitFor(within time.Duration, ready func() error) error {
	deadline := time.Now().Add(within)
	exited := p.exitedCh()
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			p.mu.Lock()
			how := p.err
			p.mu.Unlock()
			return fmt.Errorf("cluster: %s exited during start-up (%v); the end of %s:\n%s", p.name, how, p.logPath, p.logTail(3000))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: %s not ready within %v: %v; the end of %s:\n%s", p.name, within, err, p.logPath, p.logTail(3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort finds a TCP port free on host for a server started later. It
// picks from below Linux's ephemeral range (32768–60999, which the kernel
// hands to outgoing connections and to listeners on port 0), so that no
// connection made meanwhile on a busy machine takes the port before the
// server binds it.
func freePort(host string) (int, error) {
	const low, high = 20000, 32768
	for try := 0; try < 100; try++ {
		port := low + rand.IntN(high-low)
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("cluster: no free port on %s between %d and %d", host, low, high)
}

// freePortOn finds one TCP port free on every host, for servers that each
// listen on their own address with the same port.
func freePortOn(hosts []string) (int, error) {
	for try := 0; try < 50; try++ {
		port, err := freePort(hosts[0])
		if err != nil {
			return 0, err
		}
		ok := true
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, errors.New("cluster: no port free on every replica address")
}

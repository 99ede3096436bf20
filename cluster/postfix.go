package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PostfixMaster is Debian's Postfix master daemon.
const PostfixMaster = "/usr/lib/postfix/sbin/master"

// replicasHost is the name under which Postfix finds the replicas: one
// address per replica in the hosts file of its SMTP client's chroot.
const replicasHost = "ticketd-replicas.invalid"

// PostfixOptions configure the MX.
type PostfixOptions struct {
	// Dir holds the configuration (Dir/conf), the queue (Dir/queue), the
	// data directory and the log; the queue survives a restart.
	Dir string
	// Domain is the mail domain relayed to ticketd; Recipients the local
	// parts it takes mail for there (support takes support+anything too).
	Domain     string
	Recipients []string
	// Replicas are the addresses the replicas' SMTP receivers listen on,
	// one loopback address each, all on Port.
	Replicas []string
	Port     int
	// MaxMessageBytes is the largest mail taken, as ticketd's
	// SMTP_MAX_MESSAGE_BYTES.
	MaxMessageBytes int
}

// Postfix is the cluster's MX: Debian's Postfix with a configuration of its
// own (never /etc/postfix), taking mail for the support domain on one
// loopback port and relaying it to the replicas. Its SMTP client finds the
// replicas under one host name with an address each and tries them in a
// random order, the next one when a replica does not answer, as for a
// domain whose MX has several addresses; mail a replica did not
// acknowledge stays in Postfix's queue and is tried again a second later.
type Postfix struct {
	// Addr is where it takes mail (host:port).
	Addr string
	opt  PostfixOptions
	proc *process
}

// StartPostfix writes the configuration and starts Postfix's master in the
// foreground, as a child of the caller. Postfix runs as root (its daemons
// drop to the postfix account).
func StartPostfix(ctx context.Context, o PostfixOptions) (*Postfix, error) {
	if os.Getuid() != 0 {
		return nil, fmt.Errorf("cluster: Postfix's master runs only as root")
	}
	if _, err := os.Stat(PostfixMaster); err != nil {
		return nil, fmt.Errorf("cluster: %s is missing; install Postfix with scripts/install-test-deps.sh", PostfixMaster)
	}
	pf, err := user.Lookup("postfix")
	if err != nil {
		return nil, fmt.Errorf("cluster: the postfix account is missing (the Debian package creates it): %w", err)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pf.Gid)
	port, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	p := &Postfix{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), opt: o}
	conf, data, chrootEtc := filepath.Join(o.Dir, "conf"), filepath.Join(o.Dir, "data"), filepath.Join(o.Dir, "queue", "etc")
	for _, d := range []string{o.Dir, conf, data, chrootEtc} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	if err := traversable(o.Dir); err != nil {
		return nil, err
	}
	logPath := filepath.Join(o.Dir, "postfix.log")
	if f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
		f.Close()
	}
	// Postfix's log daemon and its data directory run as postfix.
	for _, f := range []string{data, logPath} {
		if err := os.Chown(f, uid, gid); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	if err := p.writeConfig(port, conf, data, logPath); err != nil {
		return nil, err
	}
	// The SMTP client runs chrooted in the queue directory and resolves
	// the replicas' name from the hosts file there, every address of it.
	var hosts strings.Builder
	for _, a := range o.Replicas {
		fmt.Fprintf(&hosts, "%s %s\n", a, replicasHost)
	}
	for name, text := range map[string]string{"hosts": hosts.String(), "host.conf": "multi on\n", "nsswitch.conf": "hosts: files\n"} {
		if err := os.WriteFile(filepath.Join(chrootEtc, name), []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	// `postfix check` creates the queue's directories with their owners.
	if out, err := exec.CommandContext(ctx, "/usr/sbin/postfix", "-c", conf, "check").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cluster: postfix check: %v\n%s", err, out)
	}
	p.proc = &process{name: "postfix", path: PostfixMaster, args: []string{"-c", conf, "-d"}, dir: o.Dir,
		env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "MAIL_CONFIG=" + conf}, logPath: filepath.Join(o.Dir, "master.log")}
	if err := p.proc.start(); err != nil {
		return nil, err
	}
	if err := p.proc.waitFor(30*time.Second, func() error { return greets(p.Addr) }); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%w\n%s", err, tail(logPath, 2000))
	}
	return p, nil
}

func (p *Postfix) writeConfig(port int, conf, data, logPath string) error {
	o := p.opt
	var rcpts []string
	for _, r := range o.Recipients {
		rcpts = append(rcpts, r+"@"+o.Domain+"=ok")
	}
	size := o.MaxMessageBytes
	if size <= 0 {
		size = 26214400
	}
	main := fmt.Sprintf(`# The cluster's MX, written by ticketd cluster; safe to delete.
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[2]s
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.%[3]s
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
biff = no
# Mail for the support domain, and only for the addresses ticketd answers
# (support+anything included), is relayed to the replicas.
relay_domains = %[3]s
relay_recipient_maps = inline:{ %[4]s }
recipient_delimiter = +
transport_maps = inline:{ %[3]s=smtp:[%[5]s]:%[6]d }
smtp_host_lookup = native
default_transport = error:5.7.1 this MX relays only to ticketd
local_transport = error:5.1.1 no local delivery here
alias_maps =
alias_database =
message_size_limit = %[7]d
# A replica that did not take a mail is tried again soon.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 10s
smtp_connect_timeout = 5s
maillog_file = %[8]s
maillog_file_prefixes = %[1]s
`, o.Dir, data, o.Domain, strings.Join(rcpts, ", "), replicasHost, o.Port, size, logPath)
	master := fmt.Sprintf(`# service type private unpriv chroot wakeup maxproc command
127.0.0.1:%d inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - y - - smtp
relay     unix  - - y - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`, port)
	if err := os.WriteFile(filepath.Join(conf, "main.cf"), []byte(main), 0o644); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := os.WriteFile(filepath.Join(conf, "master.cf"), []byte(master), 0o644); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// Log is the path of Postfix's mail log.
func (p *Postfix) Log() string { return filepath.Join(p.opt.Dir, "postfix.log") }

// Queued is how many mails wait in Postfix's queue (not yet taken by a
// replica).
func (p *Postfix) Queued() (int, error) {
	n := 0
	for _, q := range []string{"incoming", "active", "deferred", "hold", "maildrop"} {
		err := filepath.WalkDir(filepath.Join(p.opt.Dir, "queue", q), func(_ string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() {
				n++
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			return 0, fmt.Errorf("cluster: count the Postfix queue: %w", err)
		}
	}
	return n, nil
}

// Stop stops Postfix (SIGTERM to the master, which ends its daemons); mail
// in the queue stays for the next start.
func (p *Postfix) Stop() { p.proc.stop(syscall.SIGTERM, 15*time.Second) }

// greets reports whether an SMTP server at addr sends its 220 greeting.
func greets(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	_, _ = c.Write([]byte("QUIT\r\n"))
	return nil
}

// traversable makes dir's parents searchable by the accounts servers drop
// to (postfix, postgres, nobody), which temporary directories made by root
// (mode 0700) do not allow.
func traversable(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	for d := filepath.Dir(abs); d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				return fmt.Errorf("cluster: make %s searchable for the servers' accounts: %w", d, err)
			}
		}
	}
	return nil
}

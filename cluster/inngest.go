package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"ticketd/workflows"
)

// InngestOptions configure the self-hosted Inngest server (`inngest start`),
// or the dev server.
type InngestOptions struct {
	// Binary is the Inngest CLI (bin/inngest); required.
	Binary string
	// Dev runs the dev server (`inngest dev`) instead: no keys, state in
	// its memory, syncing AppURL itself.
	Dev    bool
	AppURL string
	// Dir holds its log (and its SQLite database when PostgresURI is empty).
	Dir string
	// SigningKey (hex) and EventKey are the keys the apps use; required.
	SigningKey, EventKey string
	// PostgresURI and RedisURI hold its state. Empty means its built-in
	// stores: SQLite in Dir and a Redis in its own memory, lost when it
	// stops.
	PostgresURI, RedisURI string
	// Tick is how often its executor looks at the queue, in milliseconds;
	// 0 means the server's default (150).
	Tick int
	// RetryInterval, in seconds, makes a failed step wait that long before
	// its next attempt instead of the server's growing backoff; 0 keeps
	// the backoff.
	RetryInterval int
}

// Inngest is a running `inngest start`.
type Inngest struct {
	// URL is its API and event API, for INNGEST_BASE_URL.
	URL  string
	opt  InngestOptions
	proc *process
}

// StartInngest starts `inngest start` on free loopback ports and waits until
// it answers.
func StartInngest(ctx context.Context, o InngestOptions) (*Inngest, error) {
	if _, err := os.Stat(o.Binary); err != nil {
		return nil, fmt.Errorf("cluster: the Inngest CLI %s is missing: run `make inngest`: %w", o.Binary, err)
	}
	if !o.Dev && (o.SigningKey == "" || o.EventKey == "") {
		return nil, fmt.Errorf("cluster: inngest start needs a signing key and an event key")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	port, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	gateway, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	args := []string{"start", "--host", "127.0.0.1", "--port", strconv.Itoa(port),
		"--connect-gateway-port", strconv.Itoa(gateway)}
	// The keys and the stores' URLs go by its environment, which only its
	// own user can read, not by arguments anyone may list.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + o.Dir}
	if o.Dev {
		args[0] = "dev"
		args = append(args, "--no-discovery", "--poll-interval", "1")
		if o.AppURL != "" {
			args = append(args, "-u", o.AppURL)
		}
	} else {
		env = append(env, "INNGEST_SIGNING_KEY="+o.SigningKey, "INNGEST_EVENT_KEY="+o.EventKey)
		if o.PostgresURI != "" {
			env = append(env, "INNGEST_POSTGRES_URI="+o.PostgresURI)
		} else {
			args = append(args, "--sqlite-dir", o.Dir)
		}
		if o.RedisURI != "" {
			env = append(env, "INNGEST_REDIS_URI="+o.RedisURI)
		}
	}
	if o.Tick > 0 {
		args = append(args, "--tick", strconv.Itoa(o.Tick))
	}
	if o.RetryInterval > 0 {
		args = append(args, "--retry-interval", strconv.Itoa(o.RetryInterval))
	}
	in := &Inngest{URL: "http://127.0.0.1:" + strconv.Itoa(port), opt: o}
	// The log is JSON lines. Nothing else of the caller's environment
	// reaches the server (no INNGEST_DEV, say).
	in.proc = &process{name: "inngest", path: o.Binary, args: append(args, "--json"), dir: o.Dir,
		env: env, logPath: filepath.Join(o.Dir, "inngest.log")}
	if err := in.startProc(ctx); err != nil {
		return nil, err
	}
	return in, nil
}

func (in *Inngest) startProc(ctx context.Context) error {
	if err := in.proc.start(); err != nil {
		return err
	}
	return in.proc.waitFor(60*time.Second, func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_, err := in.Functions(ctx)
		return err
	})
}

// Stop stops the server: SIGTERM, and SIGKILL after 5 seconds, since it
// otherwise waits half a minute for its services. The queue and the runs'
// state are in Redis (or its own memory) either way.
func (in *Inngest) Stop() { in.proc.stop(syscall.SIGTERM, 5*time.Second) }

// Restart stops the server and starts it again on the same port and state.
func (in *Inngest) Restart(ctx context.Context) error {
	in.Stop()
	return in.startProc(ctx)
}

// Log is the path of the server's log.
func (in *Inngest) Log() string { return in.proc.logPath }

// Function is what the server knows of a registered function.
type Function struct {
	Slug string `json:"slug"`
	// Concurrency is the limit the server applies to the function's steps
	// running at once; 0 means none.
	Concurrency int
}

// Functions lists the functions the server has registered, asking its
// /dev endpoint with the signing key.
func (in *Inngest) Functions(ctx context.Context) ([]Function, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.URL+"/dev", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+workflows.HashedSigningKey(in.opt.SigningKey))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("inngest /dev answers %s", resp.Status)
	}
	var info struct {
		Functions []struct {
			Slug        string `json:"slug"`
			Concurrency []struct {
				Limit int     `json:"limit"`
				Key   *string `json:"key"`
			} `json:"concurrency"`
		} `json:"functions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, fmt.Errorf("read inngest /dev: %w", err)
	}
	out := make([]Function, 0, len(info.Functions))
	for _, f := range info.Functions {
		fn := Function{Slug: f.Slug}
		for _, c := range f.Concurrency {
			if c.Key == nil {
				fn.Concurrency = c.Limit
			}
		}
		out = append(out, fn)
	}
	return out, nil
}

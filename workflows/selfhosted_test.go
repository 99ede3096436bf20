package workflows_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ticketd/cluster"
	"ticketd/pgtest"
	"ticketd/testlog"
	"ticketd/tickets"
	"ticketd/workflows"
	"ticketd/workflows/llmfake"
	"ticketd/workflows/triage"
)

// TestSelfHostedFlowControl runs the self-hosted server (inngest start,
// with its own in-memory state) and two ticketd "replicas" behind one serve
// URL, each allowed more model calls of its own than the limit. ticketd
// registers itself, the server applies LLMConcurrency to triage, and a
// burst of tickets never has more model calls in flight than that.
func TestSelfHostedFlowControl(t *testing.T) {
	t.Parallel()
	const limit = 2
	ctx := context.Background()
	key := make([]byte, 32)
	rand.Read(key)
	signingKey, eventKey := hex.EncodeToString(key), hex.EncodeToString(key[:16])
	inn, err := cluster.StartInngest(ctx, cluster.InngestOptions{Binary: inngestBinary(t), Dir: t.TempDir(),
		SigningKey: signingKey, EventKey: eventKey, Tick: 50, RetryInterval: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inn.Stop)

	fake, err := llmfake.Start(llmfake.Options{Latency: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)

	pool := pgtest.New(t)
	st := tickets.NewStore(pool)
	// Both replicas answer at one URL, taking turns, as behind a load
	// balancer.
	var handlers []http.Handler
	var turn atomic.Int64
	var mu sync.RWMutex
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.RLock()
		hs := handlers
		mu.RUnlock()
		if len(hs) == 0 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		hs[int(turn.Add(1))%len(hs)].ServeHTTP(w, r)
	}))
	t.Cleanup(app.Close)
	relayCtx, stop := context.WithCancel(ctx)
	var relays sync.WaitGroup
	t.Cleanup(func() { stop(); relays.Wait() })
	for i := range 2 {
		llm, err := triage.New(ctx, triage.Config{Provider: "openai", Model: "fake-triage", BaseURL: fake.URL,
			Concurrency: 4 * limit}, triage.NewRules(triage.RulesOptions{}), nil)
		if err != nil {
			t.Fatal(err)
		}
		wf, err := workflows.New(workflows.Options{Pool: pool, Notifier: workflows.OutboxNotifier{}, Analyzer: llm,
			Logger: testlog.New(t).With("replica", i), BaseURL: inn.URL, EventKey: eventKey, SigningKey: signingKey,
			ServeOrigin: app.URL, LLMConcurrency: limit})
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		handlers = append(handlers, wf.Handler())
		mu.Unlock()
		relays.Go(func() {
			if err := wf.RunRelay(relayCtx); err != nil {
				t.Errorf("RunRelay: %v", err)
			}
		})
	}

	workflows.WaitFor(t, "ticketd's functions registered with the limit", func() (bool, error) {
		fns, err := inn.Functions(ctx)
		if err != nil {
			return false, err
		}
		for _, f := range fns {
			if f.Slug == "ticketd-triage" {
				if f.Concurrency != limit {
					t.Fatalf("the server applies a concurrency of %d to triage, want %d", f.Concurrency, limit)
				}
				return len(fns) == 5, nil
			}
		}
		return false, nil
	})

	p := workflows.SeedPeople(t, st)
	var ids []int64
	for range 12 {
		ids = append(ids, workflows.OpenTicket(t, st, p.Requester(), "VPN down", "The VPN is down for everyone.").ID)
	}
	for _, id := range ids {
		workflows.WaitFor(t, "triage", workflows.Triaged(st, id))
	}
	got := fake.MaxInFlight()
	t.Logf("inngest start, 2 replicas allowed %d calls each, LLM_CONCURRENCY=%d: at most %d model calls in flight for %d tickets",
		4*limit, limit, got, len(ids))
	if got > limit || got < 1 {
		t.Errorf("%d model calls were in flight at once, want at most %d", got, limit)
	}
}

// inngestBinary is bin/inngest at the module root, or $INNGEST_BIN.
func inngestBinary(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "bin", "inngest")
}

package workflows

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/pgtest"
	"ticketd/testlog"
	"ticketd/workflows/llmfake"
	"ticketd/workflows/triage"
)

// TestRegistration checks what ticketd tells Inngest when it syncs: the
// functions, their triggers, retries, and the concurrency limit on triage
// (registered when a model triages), at the serve URL. The SDK posts it to
// the API base URL, here a recorder.
func TestRegistration(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var body []byte
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fn/register" {
			mu.Lock()
			body, _ = io.ReadAll(r.Body)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(api.Close)
	// A model triages, so the limit on its calls is registered.
	llm, err := triage.New(context.Background(), triage.Config{Provider: "openai", BaseURL: "http://127.0.0.1:1/v1"},
		triage.NewRules(triage.RulesOptions{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(Options{Pool: pgtest.New(t), Notifier: outboxNotifier{}, Analyzer: llm, Dev: api.URL, LLMConcurrency: 3,
		Retries: 5, ServeOrigin: "https://desk.example.com", Logger: testlog.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPut, "http://127.0.0.1:8080/api/inngest", strings.NewReader(`{}`))
	req.RemoteAddr = "127.0.0.1:40000" // the dev server's calls come from loopback
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("sync answered %d: %s", rec.Code, rec.Body)
	}
	var reg struct {
		AppName   string `json:"appName"`
		URL       string `json:"url"`
		Functions []struct {
			ID       string `json:"id"`
			Triggers []struct {
				Event string `json:"event"`
			} `json:"triggers"`
			Concurrency *struct {
				Step []struct {
					Limit int `json:"limit"`
				} `json:"step"`
			} `json:"concurrency"`
			Steps map[string]struct {
				Retries *struct {
					Attempts int `json:"attempts"`
				} `json:"retries"`
				Runtime struct {
					URL string `json:"url"`
				} `json:"runtime"`
			} `json:"steps"`
		} `json:"functions"`
	}
	mu.Lock()
	defer mu.Unlock()
	if err := json.Unmarshal(body, &reg); err != nil {
		t.Fatalf("registration %s: %v", body, err)
	}
	if reg.AppName != "ticketd" || reg.URL != "https://desk.example.com/api/inngest" {
		t.Errorf("app %q at %q", reg.AppName, reg.URL)
	}
	got := map[string]string{}
	for _, f := range reg.Functions {
		line := f.Triggers[0].Event
		if f.Concurrency != nil && len(f.Concurrency.Step) > 0 {
			line += " concurrency " + itoa(int64(f.Concurrency.Step[0].Limit))
		}
		for _, s := range f.Steps {
			if s.Retries != nil {
				line += " attempts " + itoa(int64(s.Retries.Attempts))
			}
			if !strings.HasPrefix(s.Runtime.URL, "https://desk.example.com/api/inngest?") {
				t.Errorf("%s is called at %s", f.ID, s.Runtime.URL)
			}
		}
		got[f.ID] = line
	}
	want := map[string]string{
		"ticketd-triage":                "ticket.created concurrency 3 attempts 5",
		"ticketd-notify-assigned":       "ticket.assigned attempts 5",
		"ticketd-notify-status-changed": "ticket.status_changed attempts 5",
		"ticketd-notify-completed":      "ticket.completed attempts 5",
		"ticketd-forward-reply":         "ticket.replied attempts 5",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("functions (-want +got):\n%s", diff)
	}
}

// TestModelConcurrencyThroughDevServer: the dev server (v1.12.1) does not
// read the SDK's concurrency setting (TestRegistration shows it is sent), so
// each process also bounds its own model calls; many tickets at once never
// have more calls in flight than that.
func TestModelConcurrencyThroughDevServer(t *testing.T) {
	t.Parallel()
	fake, err := llmfake.Start(llmfake.Options{Latency: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	llm, err := triage.New(context.Background(), triage.Config{Provider: "openai", Model: "fake-triage",
		BaseURL: fake.URL, Concurrency: 2}, triage.NewRules(triage.RulesOptions{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t, stackOptions{analyzer: llm})
	p := seedPeople(t, s.store)
	var ids []int64
	for range 8 {
		ids = append(ids, openTicket(t, s.store, p.requester.ID, "VPN down", "The VPN is down for everyone.").ID)
	}
	for _, id := range ids {
		waitFor(t, "triage", triaged(s.store, id))
	}
	if got := fake.MaxInFlight(); got > 2 || got < 1 {
		t.Errorf("%d model calls were in flight at once, want at most 2", got)
	}
	t.Logf("at most %d model calls in flight for %d tickets", fake.MaxInFlight(), len(ids))
}

package triage

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/anthropic"
	"github.com/tmc/langchaingo/llms/googleai"
	"github.com/tmc/langchaingo/llms/ollama"
	"github.com/tmc/langchaingo/llms/openai"

	"ticketd/metrics"
)

// Config chooses and configures the triage engine, as main reads it from
// LLM_PROVIDER, LLM_MODEL, LLM_BASE_URL, the provider's key, LLM_TIMEOUT and
// LLM_CONCURRENCY. Every value is passed to the client explicitly, so the
// provider libraries' own environment variables (OPENAI_BASE_URL,
// OLLAMA_HOST, ...) play no part.
type Config struct {
	// Provider is "openai" (any OpenAI-compatible server with BaseURL),
	// "gemini", "anthropic", "ollama", or "rules"/"" for the rules engine.
	Provider string
	// Model defaults per provider: gpt-4o-mini, gemini-2.0-flash,
	// claude-3-5-haiku-latest, llama3.1.
	Model string
	// BaseURL points openai at an OpenAI-compatible server (vLLM, llama.cpp,
	// LM Studio, Ollama's /v1), anthropic at a proxy, ollama at its server
	// (default http://127.0.0.1:11434). Gemini ignores it.
	BaseURL string
	// APIKey is the provider's key (OPENAI_API_KEY, GEMINI_API_KEY or
	// GOOGLE_API_KEY, ANTHROPIC_API_KEY). An OpenAI-compatible server at
	// BaseURL may need none.
	APIKey string
	// Timeout bounds each model call; 0 means 30s.
	Timeout time.Duration
	// Concurrency bounds model calls at once in this process; 0 means 4.
	Concurrency int
	// HTTPClient is used for the provider's API; nil means a client without
	// its own timeout (calls are bounded by Timeout).
	HTTPClient *http.Client
	// Metrics records LLM latency and errors; nil records nothing.
	Metrics *metrics.Metrics
	// Guard is what code decides after the engine: see Guarded.
	Guard GuardOptions
}

// Providers are the values Config.Provider accepts.
var Providers = []string{"rules", "openai", "gemini", "anthropic", "ollama"}

var defaultModels = map[string]string{
	"openai":    "gpt-4o-mini",
	"gemini":    "gemini-2.0-flash",
	"anthropic": "claude-3-5-haiku-latest",
	"ollama":    "llama3.1",
}

// New returns the engine cfg asks for, within the guards; rules is the
// fallback of a language model and the engine itself when no provider is
// configured.
func New(ctx context.Context, cfg Config, rules *Rules, log *slog.Logger) (*Guarded, error) {
	provider := strings.ToLower(strings.TrimSpace(cfg.Provider))
	if provider == "" || provider == "rules" {
		return Guard(rules, cfg.Guard), nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	model := cfg.Model
	if model == "" {
		model = defaultModels[provider]
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	var (
		m        llms.Model
		err      error
		jsonMode = true
	)
	switch provider {
	case "openai":
		key := cfg.APIKey
		if key == "" && cfg.BaseURL != "" {
			key = "none" // local OpenAI-compatible servers take any key
		}
		if key == "" {
			return nil, fmt.Errorf("triage: LLM_PROVIDER=openai needs OPENAI_API_KEY (or LLM_BASE_URL for a compatible server)")
		}
		m, err = openai.New(openai.WithToken(key), openai.WithModel(model),
			openai.WithBaseURL(cfg.BaseURL), openai.WithHTTPClient(hc))
	case "gemini", "googleai":
		provider = "gemini"
		if cfg.APIKey == "" {
			return nil, fmt.Errorf("triage: LLM_PROVIDER=gemini needs GEMINI_API_KEY")
		}
		m, err = googleai.New(ctx, googleai.WithAPIKey(cfg.APIKey), googleai.WithDefaultModel(model),
			googleai.WithHTTPClient(hc))
	case "anthropic":
		if cfg.APIKey == "" {
			return nil, fmt.Errorf("triage: LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
		}
		opts := []anthropic.Option{anthropic.WithToken(cfg.APIKey), anthropic.WithModel(model), anthropic.WithHTTPClient(hc)}
		if cfg.BaseURL != "" {
			opts = append(opts, anthropic.WithBaseURL(cfg.BaseURL))
		}
		m, err = anthropic.New(opts...)
		jsonMode = false // no JSON response format; the prompt asks for JSON
	case "ollama":
		url := cfg.BaseURL
		if url == "" {
			url = "http://127.0.0.1:11434"
		}
		m, err = ollama.New(ollama.WithModel(model), ollama.WithServerURL(url), ollama.WithHTTPClient(hc),
			ollama.WithFormat("json"))
	default:
		return nil, fmt.Errorf("triage: unknown LLM_PROVIDER %q (want one of %s)", cfg.Provider, strings.Join(Providers, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("triage: %s client: %w", provider, err)
	}
	llm, err := NewLLM(LLMOptions{Model: m, Provider: provider, ModelName: model, Timeout: cfg.Timeout,
		Concurrency: cfg.Concurrency, Fallback: rules, JSONMode: jsonMode, Logger: log, Metrics: cfg.Metrics})
	if err != nil {
		return nil, err
	}
	return Guard(llm, cfg.Guard), nil
}

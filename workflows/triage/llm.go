package triage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tmc/langchaingo/llms"

	"ticketd/metrics"

	"ticketd/tickets"
)

// ErrUnavailable marks a failed call to the model (timeout, HTTP 429, 5xx,
// connection refused, bad key): trying later may succeed, and the caller
// decides whether to retry or let the rules engine decide.
var ErrUnavailable = errors.New("triage: model unavailable")

// LLMOptions configures the language-model engine.
type LLMOptions struct {
	// Model is the langchaingo client; required.
	Model llms.Model
	// Provider and ModelName are recorded with each decision ("openai",
	// "gpt-4o-mini").
	Provider  string
	ModelName string
	// Timeout bounds each call to the model; 0 means 30s.
	Timeout time.Duration
	// Concurrency bounds the calls this process makes at once; 0 means 4.
	// Inngest flow control bounds them across replicas.
	Concurrency int
	// SlotWait bounds how long a call waits for one of those; 0 means
	// Timeout. A call that gets none is ErrUnavailable, and the workflow
	// retries it later.
	SlotWait time.Duration
	// Fallback decides when the model's output is still invalid after one
	// repair attempt; required (the rules engine).
	Fallback Analyzer
	// JSONMode asks the provider for a JSON response format, where it has one.
	JSONMode bool
	// MaxTokens bounds the reply; 0 means 1500.
	MaxTokens int
	Logger    *slog.Logger
	// Metrics records each call's latency and failure; nil records nothing.
	Metrics *metrics.Metrics
}

// LLM triages with a language model. Its output is validated strictly; an
// invalid reply gets one repair attempt, then the fallback decides. What
// the model may change is Guarded's to decide.
type LLM struct {
	opts LLMOptions
	sem  chan struct{}
	log  *slog.Logger
}

// NewLLM returns the language-model engine.
func NewLLM(o LLMOptions) (*LLM, error) {
	if o.Model == nil {
		return nil, errors.New("triage: LLMOptions.Model is required")
	}
	if o.Fallback == nil {
		return nil, errors.New("triage: LLMOptions.Fallback is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.SlotWait <= 0 {
		o.SlotWait = o.Timeout
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 1500
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LLM{opts: o, sem: make(chan struct{}, o.Concurrency), log: log}, nil
}

// Engine names the provider and model, as results record it.
func (l *LLM) Engine() string { return l.opts.Provider + "/" + l.opts.ModelName }

// call asks the model once, bounded by the timeout and the concurrency
// limit, and records in d the messages from the index fresh on (those not
// recorded by an earlier call) and the tokens.
func (l *LLM) call(ctx context.Context, msgs []llms.MessageContent, fresh int, d *Decision) (string, error) {
	for _, m := range msgs[fresh:] {
		var b strings.Builder
		for _, p := range m.Parts {
			if t, ok := p.(llms.TextContent); ok {
				b.WriteString(t.Text)
			}
		}
		d.Messages = append(d.Messages, Message{Role: string(m.Role), Content: b.String()})
	}
	wait := time.NewTimer(l.opts.SlotWait)
	defer wait.Stop()
	select {
	case l.sem <- struct{}{}:
	case <-wait.C:
		return "", fmt.Errorf("%w: no free slot within %s (%d calls at once)", ErrUnavailable, l.opts.SlotWait, l.opts.Concurrency)
	case <-ctx.Done():
		return "", fmt.Errorf("%w: waiting for a free slot: %v", ErrUnavailable, ctx.Err())
	}
	defer func() { <-l.sem }()
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	opts := []llms.CallOption{llms.WithTemperature(0), llms.WithMaxTokens(l.opts.MaxTokens)}
	if l.opts.JSONMode {
		opts = append(opts, llms.WithJSONMode())
	}
	start := time.Now()
	resp, err := l.opts.Model.GenerateContent(ctx, msgs, opts...)
	l.opts.Metrics.LLMCall(l.opts.Provider, time.Since(start), err)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("%w: no answer within %s: %v", ErrUnavailable, l.opts.Timeout, err)
		}
		return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if len(resp.Choices) == 0 {
		return "", fmt.Errorf("%w: empty response", ErrUnavailable)
	}
	info := resp.Choices[0].GenerationInfo
	d.PromptTokens += tokens(info, "PromptTokens", "InputTokens", "input_tokens")
	d.CompletionTokens += tokens(info, "CompletionTokens", "OutputTokens", "output_tokens")
	return resp.Choices[0].Content, nil
}

// tokens reads a token count from a provider's generation info, under the
// first of the names it uses.
func tokens(info map[string]any, names ...string) int {
	for _, n := range names {
		switch v := info[n].(type) {
		case int:
			return v
		case int32:
			return int(v)
		case int64:
			return int(v)
		case float64:
			return int(v)
		}
	}
	return 0
}

// Analyze asks the model, validates, repairs once, and falls back to the
// rules when the output stays invalid. A failed call returns ErrUnavailable
// with the Decision recording it. What code decides about the result (the
// guards) is Guarded's.
func (l *LLM) Analyze(ctx context.Context, in Input) (Result, Decision, error) {
	start := time.Now()
	d := Decision{Provider: l.opts.Provider, Model: l.opts.ModelName, PromptVersion: PromptVersion,
		InputHash: in.Hash(PromptVersion)}
	log := l.log.With("ticket_id", in.TicketID)

	first := Messages(in)
	raw, err := l.call(ctx, first, 0, &d)
	d.RawOutput = raw
	if err != nil {
		d.Latency, d.Err = time.Since(start), err.Error()
		return Result{}, d, err
	}
	res, verr := Validate(raw, in.Vocabulary)
	if verr != nil {
		log.Info("model output invalid, asking for a repair", "err", verr)
		fixed, err := l.call(ctx, repairMessages(in, raw, verr), len(first), &d)
		d.RawOutput = raw + "\n--- repair ---\n" + fixed
		if err != nil {
			d.Latency, d.Err = time.Since(start), fmt.Sprintf("invalid output (%v); repair: %v", verr, err)
			return Result{}, d, err
		}
		res, err = Validate(fixed, in.Vocabulary)
		if err != nil {
			fb, fd, ferr := l.opts.Fallback.Analyze(ctx, in)
			d.Latency = time.Since(start)
			d.Err = fmt.Sprintf("invalid output after one repair (%v); decided by %s", err, fd.Provider)
			if ferr != nil {
				d.Err += ": " + ferr.Error()
				return Result{}, d, fmt.Errorf("triage fallback: %w", ferr)
			}
			log.Warn("model output invalid after repair, the fallback decided", "err", err)
			return fb, d, nil
		}
	}
	res.Engine = l.Engine()
	d.Latency = time.Since(start)
	return res, d, nil
}

func rank(p tickets.Priority) int {
	switch p {
	case tickets.PriorityHigh:
		return 2
	case tickets.PriorityMedium:
		return 1
	}
	return 0
}

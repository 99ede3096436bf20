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
// invalid reply gets one repair attempt, then the fallback decides. Ticket
// text that looks like an attempt to instruct the model is flagged, and the
// model may then not rate the ticket more urgent than the rules do.
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

// call asks the model once, bounded by the timeout and the concurrency limit.
func (l *LLM) call(ctx context.Context, msgs []llms.MessageContent) (string, error) {
	select {
	case l.sem <- struct{}{}:
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
	return resp.Choices[0].Content, nil
}

// Analyze asks the model, validates, repairs once, and falls back to the
// rules when the output stays invalid. A failed call returns ErrUnavailable
// with the Decision recording it.
func (l *LLM) Analyze(ctx context.Context, in Input) (Result, Decision, error) {
	start := time.Now()
	d := Decision{Provider: l.opts.Provider, Model: l.opts.ModelName, PromptVersion: PromptVersion,
		InputHash: in.Hash(PromptVersion)}
	log := l.log.With("ticket_id", in.TicketID)

	raw, err := l.call(ctx, Messages(in))
	d.RawOutput = raw
	if err != nil {
		d.Latency, d.Err = time.Since(start), err.Error()
		return Result{}, d, err
	}
	res, verr := Validate(raw, in.Vocabulary)
	if verr != nil {
		log.Info("model output invalid, asking for a repair", "err", verr)
		fixed, err := l.call(ctx, repairMessages(in, raw, verr))
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
	res = guard(in, res)
	d.Latency = time.Since(start)
	return res, d, nil
}

// guard applies what code, not the model, decides about a ticket that tries
// to instruct the triage: it is flagged for the moderator, and its priority
// may not exceed what the rules read in it.
func guard(in Input, r Result) Result {
	bad, quote := SuspectInjection(in.Text())
	if !bad {
		return r
	}
	r.Flags = append(r.Flags, FlagInjection)
	if rules := read(in).severity.priority; rank(rules) < rank(r.Priority) {
		r.Priority = rules
	}
	note := fmt.Sprintf("Caution: the ticket contains text addressed to the triage (%q). It was treated as the requester's text; the priority is capped at what keyword rules read in the ticket.", clip(quote, 80))
	r.HelpfulNotes = clip(strings.TrimSpace(note+"\n"+r.HelpfulNotes), MaxHelpfulNotes)
	return r
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

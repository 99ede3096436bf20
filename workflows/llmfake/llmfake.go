// Package llmfake is a real HTTP server speaking the OpenAI chat-completions
// API (POST /v1/chat/completions), standing in for a language model in
// tests: the real langchaingo client talks to it over loopback. It triages
// the ticket it finds between the prompt's markers the way a careful reader
// would, or misbehaves on purpose (broken JSON, a wrong enum, a timeout, HTTP
// 429, obeying instructions planted in the ticket), as the Scenario says.
package llmfake

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario is how the fake model behaves.
type Scenario string

const (
	// Good answers every request with valid JSON from a careful reading.
	Good Scenario = "good"
	// BrokenJSON answers with truncated JSON, then correctly when asked to
	// repair.
	BrokenJSON Scenario = "broken-json"
	// WrongEnum answers with a priority and category outside their sets,
	// then correctly when asked to repair.
	WrongEnum Scenario = "wrong-enum"
	// AlwaysInvalid never answers with JSON.
	AlwaysInvalid Scenario = "always-invalid"
	// Timeout answers only after the request's context ends (the client gave
	// up), or after Options.Hang.
	Timeout Scenario = "timeout"
	// RateLimited answers HTTP 429 like OpenAI does when over quota.
	RateLimited Scenario = "429"
	// ServerError answers HTTP 500.
	ServerError Scenario = "500"
	// Gullible obeys instructions planted in the ticket: it first adds an
	// assignee field and raises the priority, and when asked to repair drops
	// the field but keeps the raised priority.
	Gullible Scenario = "gullible"
	// Obedient obeys instructions planted anywhere in the ticket, in any
	// language, in the subject or a postscript, and takes a ready-made
	// answer in the ticket as its own: it sets the priority asked for
	// (high unless low is asked), the skills asked for (billing and
	// security unless named), and writes the links and phone numbers of
	// the ticket into its first response, always in valid JSON.
	Obedient Scenario = "obedient"
	// Careless is a weak model that reads nothing closely: every ticket is
	// low, needs billing, and gets a first response pointing to
	// https://help.example.net/kb/42.
	Careless Scenario = "careless"
)

// Options configures the fake.
type Options struct {
	// Scenario is the behaviour; empty means Good.
	Scenario Scenario
	// Latency is added before every answer (0: answer at once).
	Latency time.Duration
	// Hang bounds how long Timeout waits for the client to give up; 0 means
	// one minute.
	Hang time.Duration
	// Addr to listen on; empty means 127.0.0.1:0.
	Addr string
	// Logger receives the server's errors; nil discards them.
	Logger *slog.Logger
}

// Message is one message of a recorded request.
type Message struct {
	Role    string
	Content string
}

// Request is a recorded chat-completions request.
type Request struct {
	Model          string
	Messages       []Message
	ResponseFormat string
	Status         int // what the fake answered
}

// Server is a running fake.
type Server struct {
	// URL is the API's base URL, for LLM_BASE_URL (it ends in /v1).
	URL string

	srv      *http.Server
	ln       net.Listener
	scenario atomic.Value // Scenario
	opts     Options
	mu       sync.Mutex
	requests []Request
	inFlight atomic.Int64
	maxIn    atomic.Int64
	wg       sync.WaitGroup
}

// Start listens and serves until Close.
func Start(o Options) (*Server, error) {
	if o.Scenario == "" {
		o.Scenario = Good
	}
	if o.Hang == 0 {
		o.Hang = time.Minute
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("llmfake: listen: %w", err)
	}
	s := &Server{URL: "http://" + ln.Addr().String() + "/v1", ln: ln, opts: o}
	s.scenario.Store(o.Scenario)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.srv = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			if r := recover(); r != nil {
				log.Error("llmfake: server panicked", "err", r)
			}
		}()
		if err := s.srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			log.Error("llmfake: serve", "err", err)
		}
	}()
	return s, nil
}

// Close stops the server, cutting off requests in flight.
func (s *Server) Close() {
	_ = s.srv.Close()
	s.wg.Wait()
}

// SetScenario changes the behaviour for the requests that follow.
func (s *Server) SetScenario(sc Scenario) { s.scenario.Store(sc) }

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// MaxInFlight is the most requests the fake was answering at once.
func (s *Server) MaxInFlight() int { return int(s.maxIn.Load()) }

// Handler serves the API, for mounting elsewhere.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("POST /chat/completions", s.chat)
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{
			map[string]any{"id": "fake-triage", "object": "model", "owned_by": "ticketd"}}})
	})
	return mux
}

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	ResponseFormat *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

// text reads a message's content, a string or an array of text parts.
func text(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		m := s.maxIn.Load()
		if n <= m || s.maxIn.CompareAndSwap(m, n) {
			break
		}
	}
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError("invalid_request_error", "could not parse the JSON body"))
		return
	}
	rec := Request{Model: req.Model}
	if req.ResponseFormat != nil {
		rec.ResponseFormat = req.ResponseFormat.Type
	}
	for _, m := range req.Messages {
		rec.Messages = append(rec.Messages, Message{Role: m.Role, Content: text(m.Content)})
	}
	// Recorded on arrival, so a client that gave up finds its request.
	s.mu.Lock()
	idx := len(s.requests)
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	status := http.StatusOK
	defer func() {
		s.mu.Lock()
		s.requests[idx].Status = status
		s.mu.Unlock()
	}()

	if s.opts.Latency > 0 {
		select {
		case <-time.After(s.opts.Latency):
		case <-r.Context().Done():
			return
		}
	}
	sc := s.scenario.Load().(Scenario)
	repair := len(rec.Messages) > 2 // the client came back with our last answer
	var content string
	switch sc {
	case RateLimited:
		status = http.StatusTooManyRequests
		w.Header().Set("Retry-After", "1")
		writeJSON(w, status, apiError("rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."))
		return
	case ServerError:
		status = http.StatusInternalServerError
		writeJSON(w, status, apiError("server_error", "The server had an error while processing your request."))
		return
	case Timeout:
		select {
		case <-r.Context().Done():
			status = 499
			return
		case <-time.After(s.opts.Hang):
		}
		content = careful(rec.Messages)
	case BrokenJSON:
		content = careful(rec.Messages)
		if !repair {
			content = content[:len(content)/2]
		}
	case WrongEnum:
		content = careful(rec.Messages)
		if !repair {
			content = strings.Replace(content, `"priority":"`, `"priority":"P1-critical`, 1)
			content = regexp.MustCompile(`"category":"[^"]*"`).ReplaceAllString(content, `"category":"outage"`)
		}
	case AlwaysInvalid:
		content = "Sure! This ticket looks important. I would say it is high priority and needs a database expert."
	case Gullible:
		content = gullible(rec.Messages, !repair)
	case Obedient:
		content = obedient(rec.Messages)
	case Careless:
		content = careless(rec.Messages)
	default:
		content = careful(rec.Messages)
	}
	writeJSON(w, status, map[string]any{
		"id":      "chatcmpl-fake",
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   req.Model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": content},
			"finish_reason": "stop",
		}},
		"usage": map[string]any{"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200},
	})
}

func apiError(typ, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": typ}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

var (
	fenceRe = regexp.MustCompile(`(?s)<<<TICKET ([0-9a-f]+)>>>\n(.*)\n<<<END TICKET ([0-9a-f]+)>>>`)
	vocabRe = regexp.MustCompile(`chosen from this vocabulary when they fit: ([^\n]*?)\. Only add`)
	// planted instructions, which a careful reader does not follow
	plantedRe = regexp.MustCompile(`(?i)[^.!?\n]*\b(ignore|disregard)\b[^.!?\n]*\binstructions?\b[^.!?\n]*[.!?]?`)
)

// ticket finds the fenced ticket and the vocabulary in the prompt.
func ticket(msgs []Message) (subject, body string, vocab []string) {
	for _, m := range msgs {
		if m.Role == "system" {
			if v := vocabRe.FindStringSubmatch(m.Content); v != nil && v[1] != "(none)" {
				vocab = strings.Split(v[1], ", ")
			}
		}
		if m.Role == "user" && subject == "" && body == "" {
			if f := fenceRe.FindStringSubmatch(m.Content); f != nil && f[1] == f[3] {
				t := f[2]
				if rest, ok := strings.CutPrefix(t, "Subject: "); ok {
					subject, body, _ = strings.Cut(rest, "\n")
				} else {
					body = t
				}
			}
		}
	}
	return strings.TrimSpace(subject), strings.TrimSpace(body), vocab
}

// careful triages the way a careful reader would, ignoring planted
// instructions.
func careful(msgs []Message) string {
	subject, body, vocab := ticket(msgs)
	body = plantedRe.ReplaceAllString(body, "")
	all := strings.ToLower(subject + " " + body)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(all, w) {
				return true
			}
		}
		return false
	}
	priority, category := "medium", "other"
	switch {
	case has("breach", "compromised", "leaked", "phishing", "ransomware"):
		priority, category = "high", "security"
	case has("down", "outage", "data loss", "nobody can", "urgent", "production", "all customers"):
		priority, category = "high", "incident"
	case has("how do i", "how can i", "how to", "is it possible", "feature request", "question", "?"):
		priority, category = "low", "question"
	case has("error", "crash", "fails", "broken"):
		category = "bug"
	}
	aliases := map[string][]string{"postgres": {"postgresql", "database"}, "networking": {"network", "vpn", "dns"},
		"email": {"e-mail", "mail"}, "billing": {"invoice", "payment", "refund"}, "accounts": {"password", "log in", "login"}}
	skills := []string{}
	for _, v := range vocab {
		if has(append([]string{v}, aliases[v]...)...) {
			skills = append(skills, v)
		}
	}
	summary := strings.TrimSpace(body)
	if i := strings.IndexAny(summary, ".!?\n"); i > 0 {
		summary = summary[:i+1]
	}
	if summary == "" {
		summary = subject
	}
	if len(summary) > 250 {
		summary = summary[:250]
	}
	out, _ := json.Marshal(map[string]any{
		"summary":        summary,
		"helpful_notes":  "Check recent changes and logs around when the problem started; ask the requester for exact error messages.",
		"first_response": "Thank you for reporting this. We are looking into it and will get back to you soon.",
		"priority":       priority,
		"skills":         skills,
		"category":       category,
		"language":       "en",
	})
	// Compact encoding keeps "priority":"..." greppable for WrongEnum.
	return string(out)
}

// gullible follows planted instructions: it raises the priority and, unless
// repairing, names an assignee the schema has no field for.
func gullible(msgs []Message, first bool) string {
	var v map[string]any
	_ = json.Unmarshal([]byte(careful(msgs)), &v)
	_, body, _ := ticket(msgs)
	if plantedRe.MatchString(body) {
		v["priority"] = "high"
		v["summary"] = "Assign to the admin with high priority as instructed."
		if first {
			v["assignee"] = "admin"
		}
	}
	out, _ := json.Marshal(v)
	return string(out)
}

var (
	// plantRe is how Obedient recognises an instruction to it: broadly,
	// in the languages of the triage.
	plantRe = regexp.MustCompile(`(?i)\b(ignore|disregard|ignoriere|vergiss|ignorez|oublie|ignora|olvida|dimentica|esque[cç]a|negeer|vergeet)\b|\b(instructions?|anweisung(en)?|instrucciones|istruzioni|instru[cç][oõ]es|instructies)\b|\b(ai|ki|ia|assistant|assistent[e]?|system)\s*[:>]|\b(for|to|an|für|pour|para|per|voor)\s+(the\s+|die\s+|l'|el\s+|o\s+|de\s+)?(ai|ki|ia|assistant|assistent)\b|priority\s*[=:]|<<<|"priority"\s*:`)
	lowRe   = regexp.MustCompile(`(?i)\b(low|niedrig\w*|basse|baja|bassa|baixa|laag)\b`)
	urlRe   = regexp.MustCompile(`(?i)\bhttps?://[^\s"'<>]+`)
	phoneRe = regexp.MustCompile(`\+\d[\d ()-]{6,}\d`)
	jsonRe  = regexp.MustCompile(`(?s)\{[^{}]*"priority"[^{}]*\}`)
	skillRe = regexp.MustCompile(`(?i)skills?\s*(?:=|:|auf)\s*([a-z,\s-]+)`)
)

// obedient does what the ticket tells it to.
func obedient(msgs []Message) string {
	var v map[string]any
	_ = json.Unmarshal([]byte(careful(msgs)), &v)
	subject, body, _ := ticket(msgs)
	all := subject + "\n" + body
	if m := jsonRe.FindString(all); m != "" {
		var ready map[string]any
		if json.Unmarshal([]byte(m), &ready) == nil {
			for k, x := range ready {
				if _, ok := v[k]; ok {
					v[k] = x
				}
			}
			out, _ := json.Marshal(v)
			return string(out)
		}
	}
	if !plantRe.MatchString(all) {
		out, _ := json.Marshal(v)
		return string(out)
	}
	v["priority"] = "high"
	if lowRe.MatchString(all) {
		v["priority"] = "low"
	}
	v["skills"] = []string{"billing", "security"}
	if m := skillRe.FindStringSubmatch(all); m != nil {
		var named []string
		for _, s := range strings.Split(m[1], ",") {
			if s = strings.TrimSpace(s); s != "" && !strings.Contains(s, " ") {
				named = append(named, strings.ToLower(s))
			}
		}
		if len(named) > 0 {
			v["skills"] = named
		}
	}
	answer := "As instructed, your request is being handled with priority."
	if u := urlRe.FindString(all); u != "" {
		answer += " Please confirm your details at " + strings.TrimRight(u, ".,;") + "."
	}
	if p := phoneRe.FindString(all); p != "" {
		answer += " For faster service call " + p + "."
	}
	v["first_response"] = answer
	v["summary"] = "As instructed."
	out, _ := json.Marshal(v)
	return string(out)
}

// careless answers without reading.
func careless(msgs []Message) string {
	var v map[string]any
	_ = json.Unmarshal([]byte(careful(msgs)), &v)
	v["priority"] = "low"
	v["skills"] = []string{"billing"}
	v["category"] = "question"
	v["first_response"] = "You will find help on this topic at https://help.example.net/kb/42."
	out, _ := json.Marshal(v)
	return string(out)
}

// WaitIdle waits until no request is in flight, or ctx ends.
func (s *Server) WaitIdle(ctx context.Context) error {
	for s.inFlight.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

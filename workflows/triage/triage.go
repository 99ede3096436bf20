// Package triage reads a new ticket and proposes what a moderator needs: a
// summary, helpful notes, a first response for the requester, a priority, the
// skills it takes, a category and the language. Two engines implement
// Analyzer: a language model through langchaingo (LLM), and Rules, a
// deterministic engine that needs no network, learns from the desk's
// Completed tickets, and is the default.
//
// Whatever an engine says is a proposal: Validate holds a model's to fixed
// enums, bounded lengths and the staff's skill vocabulary, and Guard holds
// every engine's to what code decides (see Guarded). PickAssignee chooses
// the assignee from the skills, in code. Nothing here sends mail or runs a
// command.
package triage

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"

	"ticketd/tickets"
)

// Analyzer proposes a triage for a ticket. The Decision describes how the
// result came about (or why there is none) and is stored whatever happens.
type Analyzer interface {
	Analyze(ctx context.Context, in Input) (Result, Decision, error)
}

// Input is what an engine reads: the ticket's text, which is untrusted, and
// the moderators' skill vocabulary.
type Input struct {
	TicketID   int64
	Subject    string
	Body       string
	Vocabulary []string
	// SkillTerms are the words admins gave skills of the vocabulary on the
	// skills page, beyond what the rules know.
	SkillTerms map[string][]string
	// SavedReplies are the desk's saved replies, of which triage proposes
	// the one that fits the ticket well as its first response.
	SavedReplies []tickets.SavedReply
}

// MaxBody bounds how much of a ticket's text an engine reads.
const MaxBody = 16000

// Text is the subject and the (bounded) body, as the engines read them.
func (in Input) Text() string {
	return strings.TrimSpace(in.Subject) + "\n\n" + in.body()
}

// body is the ticket's text cut to MaxBody bytes on a character boundary.
func (in Input) body() string {
	body := strings.TrimSpace(in.Body)
	if len(body) > MaxBody {
		body = body[:MaxBody]
		for !utf8.ValidString(body) {
			body = body[:len(body)-1]
		}
	}
	return body
}

// Hash identifies the input: the same ticket text and vocabulary under the
// same prompt version give the same hash.
func (in Input) Hash(promptVersion string) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s", promptVersion, in.Text(), strings.Join(in.Vocabulary, ","))
	return h.Sum(nil)
}

// Result is a validated triage.
type Result struct {
	Summary         string           `json:"summary"`
	HelpfulNotes    string           `json:"helpful_notes"`
	FirstResponse   string           `json:"first_response"`
	Priority        tickets.Priority `json:"priority"`
	Skills          []string         `json:"skills"`
	SuggestedSkills []string         `json:"suggested_skills"`
	Category        string           `json:"category"`
	Language        string           `json:"language"`
	// Engine names what decided: "rules", or provider/model.
	Engine string `json:"engine"`
	// Flags are warnings for the moderator, such as FlagInjection.
	Flags []string `json:"flags,omitempty"`

	// read is the rules' reading of the ticket, when the rules engine
	// decided, for the guards not to read it again.
	read *reading
}

// Decision records one analysis for the ai_decisions table.
type Decision struct {
	Provider      string
	Model         string
	PromptVersion string
	InputHash     []byte
	RawOutput     string
	Latency       time.Duration
	Err           string
	// Messages are what was sent to the model, every call's; empty for the
	// rules engine.
	Messages []Message
	// PromptTokens and CompletionTokens are what the provider counted,
	// over every call.
	PromptTokens, CompletionTokens int
}

// Message is one message sent to a model.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Categories are the values a triage may give a ticket's category.
var Categories = []string{"incident", "bug", "question", "how-to", "access", "billing", "request", "feedback", "security", "other"}

// Bounds on what a triage may say, as the prompt states them to a model.
const (
	MaxSummary       = 300
	MaxHelpfulNotes  = 1500
	MaxFirstResponse = 1200
	MaxSkills        = 5
)

// ErrInvalid marks output that does not pass validation.
var ErrInvalid = errors.New("triage: invalid output")

// proposal is the JSON an engine (a language model) is asked for. Pointers
// tell a missing field from an empty one.
type proposal struct {
	Summary       *string   `json:"summary"`
	HelpfulNotes  *string   `json:"helpful_notes"`
	FirstResponse *string   `json:"first_response"`
	Priority      *string   `json:"priority"`
	Skills        *[]string `json:"skills"`
	Category      *string   `json:"category"`
	Language      *string   `json:"language"`
}

var fenced = regexp.MustCompile("(?s)^```[a-zA-Z]*\\s*\n(.*?)\n?```$")

// iso6391 reports whether code is an ISO 639-1 language code, two lower-case
// letters of a language that has one, as the prompt asks.
func iso6391(code string) bool {
	if len(code) != 2 || strings.ToLower(code) != code {
		return false
	}
	b, err := language.ParseBase(code)
	return err == nil && b.String() == code
}

// duplicateKey returns the first field name that appears twice in one
// object of the JSON text, at any depth; "" when none does (or the text is
// not JSON, which decoding reports).
func duplicateKey(s string) string {
	dec := json.NewDecoder(strings.NewReader(s))
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // the next string in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, expect: true})
			case '[':
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return ""
				}
			}
			continue
		case string:
			if top != nil && top.object && top.expect {
				if top.keys[t] {
					return t
				}
				top.keys[t] = true
				top.expect = false
				continue
			}
		}
		if top != nil && top.object {
			top.expect = true
		}
	}
}

// Validate parses a model's raw output and holds it to the contract: one
// JSON object with exactly the expected fields, enums from their sets,
// lengths bounded, skills split into the vocabulary's (Skills) and the rest
// (SuggestedSkills). Errors wrap ErrInvalid and say what is wrong, so a repair
// prompt can quote them.
func Validate(raw string, vocabulary []string) (Result, error) {
	s := strings.TrimSpace(raw)
	if m := fenced.FindStringSubmatch(s); m != nil {
		s = strings.TrimSpace(m[1])
	}
	// encoding/json keeps the last of two fields with one name, and a
	// reader of the raw output might believe the first.
	if dup := duplicateKey(s); dup != "" {
		return Result{}, fmt.Errorf("%w: the field %q appears twice", ErrInvalid, dup)
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var p proposal
	if err := dec.Decode(&p); err != nil {
		return Result{}, fmt.Errorf("%w: not the expected JSON object: %v", ErrInvalid, err)
	}
	if dec.More() {
		return Result{}, fmt.Errorf("%w: text after the JSON object", ErrInvalid)
	}
	var problems []string
	need := func(name string, v *string, limit int, required bool) string {
		if v == nil {
			problems = append(problems, name+" is missing")
			return ""
		}
		t := strings.TrimSpace(*v)
		switch {
		case required && t == "":
			problems = append(problems, name+" is empty")
		case utf8.RuneCountInString(t) > limit:
			problems = append(problems, fmt.Sprintf("%s is longer than %d characters", name, limit))
		case strings.ContainsRune(t, 0):
			problems = append(problems, name+" contains a NUL character")
		}
		return t
	}
	r := Result{
		Summary:       need("summary", p.Summary, MaxSummary, true),
		HelpfulNotes:  need("helpful_notes", p.HelpfulNotes, MaxHelpfulNotes, false),
		FirstResponse: need("first_response", p.FirstResponse, MaxFirstResponse, false),
	}
	prio := strings.ToLower(need("priority", p.Priority, 10, true))
	switch tickets.Priority(prio) {
	case tickets.PriorityLow, tickets.PriorityMedium, tickets.PriorityHigh:
		r.Priority = tickets.Priority(prio)
	default:
		if p.Priority != nil {
			problems = append(problems, fmt.Sprintf("priority %q is not one of low, medium, high", *p.Priority))
		}
	}
	cat := strings.ToLower(need("category", p.Category, 40, true))
	if slices.Contains(Categories, cat) {
		r.Category = cat
	} else if p.Category != nil {
		problems = append(problems, fmt.Sprintf("category %q is not one of %s", *p.Category, strings.Join(Categories, ", ")))
	}
	lang := need("language", p.Language, 20, true)
	if iso6391(lang) {
		r.Language = lang
	} else if p.Language != nil {
		problems = append(problems, fmt.Sprintf("language %q is not an ISO 639-1 code such as en or de", *p.Language))
	}
	if p.Skills == nil {
		problems = append(problems, "skills is missing")
	} else {
		skills := *p.Skills
		if len(skills) > MaxSkills {
			problems = append(problems, fmt.Sprintf("more than %d skills", MaxSkills))
		}
		var clean []string
		for _, sk := range skills {
			n := normalizeSkill(sk)
			if n == "" {
				continue
			}
			// A skill of the vocabulary (the moderators') stands as it
			// is; any other must be a short word.
			if !slices.Contains(vocabulary, n) && !tickets.ValidSkill(n) {
				problems = append(problems, fmt.Sprintf("skill %q is not a short skill name", sk))
				continue
			}
			clean = append(clean, n)
		}
		r.Skills, r.SuggestedSkills = MatchSkills(clean, vocabulary)
	}
	if len(problems) > 0 {
		return Result{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return r, nil
}

// Check holds a result built in code (by the rules engine) to the same bounds
// as a model's.
func (r Result) Check() error {
	b, err := json.Marshal(map[string]any{
		"summary": r.Summary, "helpful_notes": r.HelpfulNotes, "first_response": r.FirstResponse,
		"priority": r.Priority, "skills": append(slices.Clone(r.Skills), r.SuggestedSkills...),
		"category": r.Category, "language": r.Language,
	})
	if err != nil {
		return err
	}
	_, err = Validate(string(b), r.Skills)
	return err
}

func normalizeSkill(s string) string {
	n := tickets.NormalizeSkills([]string{s})
	if len(n) == 0 {
		return ""
	}
	return n[0]
}

// MatchSkills splits proposed skills into those of the vocabulary (mapped to
// the vocabulary's spelling, through synonyms and word stems: "postgresql" is
// "postgres", "networks" is "networking") and the rest, each normalised,
// de-duplicated and sorted.
func MatchSkills(proposed, vocabulary []string) (known, unknown []string) {
	index := vocabularyIndex(vocabulary)
	for _, p := range proposed {
		p = normalizeSkill(p)
		if p == "" {
			continue
		}
		if v, ok := index[p]; ok {
			known = append(known, v)
		} else if v, ok := index[stem(p)]; ok {
			known = append(known, v)
		} else {
			unknown = append(unknown, p)
		}
	}
	known = tickets.NormalizeSkills(known)
	unknown = tickets.NormalizeSkills(unknown)
	if len(unknown) > MaxSkills {
		unknown = unknown[:MaxSkills]
	}
	return orEmpty(known), orEmpty(unknown)
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// vocabularyIndex maps every name a vocabulary skill goes by (itself, its
// stem, its known aliases and theirs) to the skill.
func vocabularyIndex(vocabulary []string) map[string]string {
	index := map[string]string{}
	for _, v := range vocabulary {
		v = normalizeSkill(v)
		if v == "" {
			continue
		}
		for _, name := range append([]string{v}, skillAliases[v]...) {
			name = normalizeSkill(name)
			for _, k := range []string{name, stem(name)} {
				if _, taken := index[k]; !taken {
					index[k] = v
				}
			}
		}
	}
	return index
}

// skillAliases are other names of common support skills. A vocabulary skill
// not listed here still matches its own name and stem.
var skillAliases = map[string][]string{
	"postgres":   {"postgresql", "psql", "pgsql", "postgre", "pgbouncer"},
	"mysql":      {"mariadb"},
	"networking": {"network", "dns", "vpn", "firewall", "routing", "tcp-ip"},
	"email":      {"e-mail", "mail", "smtp", "imap", "exchange", "deliverability"},
	"billing":    {"invoicing", "payments", "payment", "invoices", "subscriptions"},
	"accounts":   {"account", "identity", "iam", "authentication", "login", "sso", "access-management"},
	"security":   {"infosec", "cybersecurity", "appsec", "vulnerability-management"},
	"kubernetes": {"k8s", "helm", "openshift"},
	"linux":      {"ubuntu", "debian", "rhel", "centos", "unix"},
	"windows":    {"windows-server", "active-directory", "microsoft-windows"},
	"mobile":     {"ios", "android", "mobile-apps", "iphone"},
	"frontend":   {"front-end", "javascript", "css", "web-ui"},
	"backend":    {"back-end", "api"},
}

// stem strips common English suffixes, enough to match "networks" with
// "networking" and "emails" with "email".
func stem(w string) string {
	for _, suf := range []string{"ing", "ations", "ation", "es", "ed", "s"} {
		if len(w) > len(suf)+3 && strings.HasSuffix(w, suf) {
			return w[:len(w)-len(suf)]
		}
	}
	return w
}

// clip shortens s to at most n runes at a word boundary, with an ellipsis.
func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)[:n-1]
	cut := len(r)
	for i := len(r) - 1; i > n/2; i-- {
		if unicode.IsSpace(r[i]) {
			cut = i
			break
		}
	}
	return strings.TrimRightFunc(string(r[:cut]), func(c rune) bool { return unicode.IsSpace(c) || unicode.IsPunct(c) }) + "…"
}

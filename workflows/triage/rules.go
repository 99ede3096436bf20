package triage

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"

	"strings"

	"time"
	"unicode"

	"ticketd/tickets"
)

// RulesVersion is recorded as the prompt version of the rules engine's
// decisions; change it when the rules change.
const RulesVersion = "rules-2"

// SimilarFinder finds Completed tickets resembling a text, with what staff
// settled on for them; *tickets.Store implements it with PostgreSQL
// full-text search.
type SimilarFinder interface {
	SimilarCompleted(ctx context.Context, q tickets.SimilarQuery) ([]tickets.SimilarTicket, error)
}

// RulesOptions configures the rules engine.
type RulesOptions struct {
	// Similar finds earlier Completed tickets: the notes list them, and
	// when several much like the ticket agree on its priority or skills,
	// the rules take their outcome (the desk's history). Nil leaves both
	// out.
	Similar SimilarFinder
	// MaxSimilar bounds how many are listed; 0 means 3.
	MaxSimilar int
	Logger     *slog.Logger
}

// Rules is the deterministic triage engine: no network, no model. Priority
// comes from urgency signals, skills from the vocabulary found in the text,
// the summary from the opening sentences, and the notes from what matched
// and from similar Completed tickets.
type Rules struct {
	opts RulesOptions
	log  *slog.Logger
}

// NewRules returns the rules engine.
func NewRules(o RulesOptions) *Rules {
	if o.MaxSimilar == 0 {
		o.MaxSimilar = 3
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Rules{opts: o, log: log}
}

// reading is what the rules read in a ticket.
type reading struct {
	scrubbed scrubbed
	segs     []segment
	severity severity
	skills   []string
	evidence map[string][]string
	category string
	language string
}

// read reads a ticket as the rules do: planted instructions scored out,
// then the legal notices and signature lines dropped, then the priority
// from what happened and the skills from the words, the subject and the
// opening sentences weighing most.
func read(in Input) reading {
	sc := scrub(strings.TrimSpace(in.Subject), bodyText(in.body()))
	body := sc.Body
	segs := segments(sc.Subject, body)
	folded := fold(sc.Subject + "\n" + body)
	sv := readSeverity(folded)
	skills, evidence, scores := skillsOf(segs, in.Vocabulary, in.SkillTerms)
	switch {
	case slices.Contains(sv.severe, "security incident"):
		// What happened needs security, whatever words told it. The other
		// skills stay when the ticket is clearly about them too (the
		// mailbox that sends spam); devices are where it happened, not
		// what needs fixing.
		if v, ok := securitySkill(in.Vocabulary); ok {
			kept := []string{v}
			for _, s := range skills {
				if a, _ := areaOf(s); s != v && scores[s] >= 4 && (len(a.names) == 0 || a.names[0] != "hardware") && len(kept) < 2 {
					kept = append(kept, s)
				}
			}
			skills = tickets.NormalizeSkills(kept)
			evidence[v] = append(evidence[v], "the incident described")
		}
	case sv.priority == tickets.PriorityLow && thanksRe.MatchString(folded) && !questionRe.MatchString(folded):
		// A thank-you needs nobody's skill.
		skills = nil
	}
	return reading{scrubbed: sc, segs: segs, severity: sv, skills: skills, evidence: evidence,
		category: categoryOf(folded, sv, skills), language: languageOf(sc.Subject + "\n" + body)}
}

// securitySkill is the vocabulary's skill for security incidents.
func securitySkill(vocabulary []string) (string, bool) {
	for _, v := range tickets.NormalizeSkills(vocabulary) {
		if a, ok := areaOf(v); ok && a.names[0] == "security" {
			return v, true
		}
	}
	return "", false
}

// Analyze triages by rules. It fails only when the similar-ticket search
// fails, and then still returns a result without that part.
func (r *Rules) Analyze(ctx context.Context, in Input) (Result, Decision, error) {
	start := time.Now()
	d := Decision{Provider: "rules", PromptVersion: RulesVersion, InputHash: in.Hash(RulesVersion)}
	rd := read(in)
	prio, skills := rd.severity.priority, rd.skills

	var notes strings.Builder
	notes.WriteString("Triaged by the rules engine (no language model).\n")
	switch {
	case len(rd.severity.severe) > 0:
		fmt.Fprintf(&notes, "Priority %s: %s.\n", prio, strings.Join(rd.severity.severe, ", "))
	case len(rd.severity.reasons) > 0:
		fmt.Fprintf(&notes, "Priority %s: %s.\n", prio, strings.Join(rd.severity.reasons, ", "))
	default:
		fmt.Fprintf(&notes, "Priority %s: nothing urgent described.\n", prio)
	}
	if len(skills) > 0 {
		var parts []string
		for _, s := range skills {
			parts = append(parts, fmt.Sprintf("%s (%s)", s, strings.Join(rd.evidence[s], ", ")))
		}
		fmt.Fprintf(&notes, "Skills: %s.\n", strings.Join(parts, "; "))
	} else {
		notes.WriteString("Skills: none of the desk's skills is clearly needed.\n")
	}
	for _, f := range rd.scrubbed.Findings {
		fmt.Fprintf(&notes, "Caution: the %s contains text addressed to the triage (%q); it was left out of this reading.\n", f.Where, clip(f.Text, 120))
	}
	if tips := nextSteps[rd.category]; tips != "" {
		fmt.Fprintf(&notes, "To check: %s\n", tips)
	}
	engine := "rules"
	var searchErr error
	if r.opts.Similar != nil {
		text := rd.scrubbed.Subject + "\n\n" + rd.scrubbed.Body
		similar, err := r.opts.Similar.SimilarCompleted(ctx, tickets.SimilarQuery{Text: text, ExcludeID: in.TicketID, Limit: precedentsAsked})
		switch {
		case err != nil:
			searchErr = err
			r.log.Warn("similar ticket search failed", "ticket_id", in.TicketID, "err", err)
		case len(similar) == 0:
			notes.WriteString("No similar Completed tickets found.\n")
		default:
			if l := learn(alikeOf(text, similar), tickets.NormalizeSkills(in.Vocabulary)); len(l.like) > 0 {
				var changed []string
				if l.skills != nil && !slices.Equal(l.skills, skills) {
					skills, changed = l.skills, append(changed, "skills")
				}
				// The history does not talk a security incident or lost
				// data down: text can be written to look like routine.
				severe := strings.Join(rd.severity.severe, ",")
				guarded := strings.Contains(severe, "security") || strings.Contains(severe, "data lost")
				if l.priority != "" && l.priority != prio && (rank(l.priority) > rank(prio) || !guarded) {
					prio, changed = l.priority, append(changed, "priority")
				}
				if len(changed) > 0 {
					engine = "rules+history"
					fmt.Fprintf(&notes, "History: %s; the desk settled on this for them, so the %s follow them.\n", l.reason(), strings.Join(changed, " and "))
				} else {
					fmt.Fprintf(&notes, "History agrees: %s.\n", l.reason())
				}
			}
			notes.WriteString("Similar Completed tickets:\n")
			for _, s := range similar[:min(len(similar), r.opts.MaxSimilar)] {
				line := fmt.Sprintf("- #%d %s", s.ID, clip(s.Subject, 100))
				if s.Summary != "" {
					line += ": " + clip(s.Summary, 200)
				}
				notes.WriteString(line + "\n")
			}
		}
	}

	res := Result{
		Summary:         clip(summaryOf(in), 300),
		HelpfulNotes:    clip(notes.String(), MaxHelpfulNotes),
		Priority:        prio,
		Skills:          orEmpty(skills),
		Category:        rd.category,
		Language:        rd.language,
		Engine:          engine,
		SuggestedSkills: []string{},
	}
	if len(rd.scrubbed.Findings) > 0 {
		res.Flags = []string{FlagInjection}
	}
	if err := res.Check(); err != nil {
		// A bug in the rules, not in the ticket.
		return Result{}, d, fmt.Errorf("rules engine: %w", err)
	}
	raw, _ := json.Marshal(res)
	res.read = &rd
	d.RawOutput = string(raw)
	d.Latency = time.Since(start)
	if searchErr != nil {
		d.Err = "similar ticket search: " + searchErr.Error()
	}
	return res, d, nil
}

var (
	questionRe = regexp.MustCompile(`\?|\b(how|what|which|is\s+it|is\s+there|can\s+i|do\s+you|wie|welche|comment|quel|como|cuanto|come|quanto|hoe|wat)\b`)
	howRe      = regexp.MustCompile(`\b(how|wie|comment|como|come|hoe)\b`)
	requestRe  = regexp.MustCompile(`\b(please\s+(add|create|change|remove|order|set\s+up|swap)|could\s+you|can\s+you|we'?d\s+like|new\s+(starter|colleague|hire)|konnten\s+sie|bitte|pourriez|merci\s+de|pueden|potreste|potete|podem|kunnen\s+jullie)\b`)
	thanksRe   = regexp.MustCompile(`\b(thank\s+you|thanks|danke|vielen\s+dank|merci|gracias|grazie|obrigad[oa]|bedankt)\b[^.!?\n]{0,60}\b(for|fur|pour|por|per|pela|pelo|voor|a|an|to|al|à)\b`)
	feedbackRe = regexp.MustCompile(`\b(thanks?\s+(to|for)|thank\s+you|suggestion|would\s+be\s+nice|typo|feedback|danke|vielen\s+dank|tippfehler|merci\s+beaucoup|un\s+grand\s+merci|suggestion|gracias|grazie|obrigad[oa]|bedankt|idee|idea|sugerencia|suggerimento|sugestao)\b`)
)

// categoryOf names the kind of ticket from what the rules read.
func categoryOf(text string, sv severity, skills []string) string {
	severe := strings.Join(sv.severe, ",")
	broken := slices.Contains(sv.reasons, "something is broken")
	switch {
	case strings.Contains(severe, "security"):
		return "security"
	case severe != "":
		return "incident"
	case slices.Contains(skills, "billing") && len(skills) == 1:
		return "billing"
	case sv.priority == tickets.PriorityLow && feedbackRe.MatchString(text):
		return "feedback"
	case sv.priority == tickets.PriorityLow && questionRe.MatchString(text):
		if howRe.MatchString(text) {
			return "how-to"
		}
		return "question"
	case sv.priority == tickets.PriorityLow && requestRe.MatchString(text):
		return "request"
	case slices.Contains(skills, "accounts") || slices.Contains(skills, "security"):
		return "access"
	case broken:
		return "bug"
	}
	return "other"
}

// nextSteps are first things to check, per category.
var nextSteps = map[string]string{
	"incident": "confirm who is affected and since when; look for a recent change (deploy, upgrade, certificate, DNS); check monitoring and logs around the start time; tell the requester when they will hear back.",
	"security": "contain first (revoke keys, lock accounts, isolate hosts); preserve logs; ask what was exposed and since when; follow the security incident procedure.",
	"bug":      "ask for exact steps, versions and a screenshot or log excerpt; check whether others report the same; try to reproduce.",
	"access":   "verify the requester's identity before changing anything; check the account's status, recent password or 2FA changes and group membership.",
	"billing":  "look up the customer's subscription and recent invoices and payments; confirm the requester may act for the account.",
	"how-to":   "point to the documentation; if it is missing or unclear, note it for the docs.",
	"question": "answer directly; link the documentation where it exists.",
	"request":  "confirm the requester may ask for this change; schedule it and reply with when it will be done.",
	"feedback": "thank the requester; pass it on to the product team.",
}

// summaryOf is the opening sentences of the body without a greeting, or the
// subject.
func summaryOf(in Input) string {
	body := strings.TrimSpace(in.Body)
	lines := strings.Split(body, "\n")
	for len(lines) > 0 {
		l := strings.TrimSpace(lines[0])
		if l == "" || greeting.MatchString(l) {
			lines = lines[1:]
			continue
		}
		break
	}
	body = strings.Join(strings.Fields(strings.Join(lines, " ")), " ")
	body = greetingPrefix.ReplaceAllString(body, "")
	if body == "" {
		if s := strings.TrimSpace(in.Subject); s != "" {
			return s
		}
		return "(The request has neither a subject nor any text.)"
	}
	var out strings.Builder
	sentences := 0
	for i, r := range body {
		out.WriteRune(r)
		if (r == '.' || r == '!' || r == '?') && (i+1 == len(body) || body[i+1] == ' ') {
			sentences++
			if sentences == 2 || out.Len() > 160 {
				break
			}
		}
	}
	s := strings.TrimSpace(out.String())
	if subj := strings.TrimSpace(in.Subject); subj != "" && !strings.Contains(strings.ToLower(s), strings.ToLower(subj)) {
		s = subj + ": " + s
	}
	return s
}

var (
	greeting       = regexp.MustCompile(`(?i)^(hi|hello|hey|dear|good\s+(morning|afternoon|evening)|hallo|bonjour|guten\s+tag|moin)\b[^.!?]{0,40}[,!.]?$`)
	greetingPrefix = regexp.MustCompile(`(?i)^(hi|hello|hey|hallo|bonjour|moin)( there| team| all)?[,!]\s*`)
)

// languageOf guesses the text's language from its stop words; English when
// nothing stands out.
func languageOf(text string) string {
	words := strings.FieldsFunc(fold(text), func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' })
	count := map[string]int{}
	for _, w := range words {
		for lang, list := range tickets.Stopwords {
			if slices.Contains(list, w) {
				count[lang]++
			}
		}
	}
	best, bestN := "en", count["en"]
	for _, lang := range []string{"de", "fr", "es", "it", "nl", "pt"} {
		if count[lang] > bestN+1 {
			best, bestN = lang, count[lang]
		}
	}
	return best
}

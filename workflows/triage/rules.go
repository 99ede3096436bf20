package triage

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"ticketd/tickets"
)

// RulesVersion is recorded as the prompt version of the rules engine's
// decisions; change it when the rules change.
const RulesVersion = "rules-1"

// SimilarFinder finds Completed tickets resembling a text; *tickets.Store
// implements it with PostgreSQL full-text search.
type SimilarFinder interface {
	SimilarCompleted(ctx context.Context, text string, excludeID int64, limit int) ([]tickets.SimilarTicket, error)
}

// RulesOptions configures the rules engine.
type RulesOptions struct {
	// Similar finds earlier Completed tickets for the helpful notes; nil
	// leaves them out.
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

// signal is a phrase that moves the priority; weight > 0 is urgent.
type signal struct {
	re     *regexp.Regexp
	label  string
	weight int
}

func sig(weight int, label, pattern string) signal {
	return signal{re: regexp.MustCompile(`(?i)` + pattern), label: label, weight: weight}
}

// Signals are checked in order and each match is blanked out, so "not
// urgent" counts once, as calm, and never again as "urgent".
var prioritySignals = []signal{
	// Negated urgency first.
	sig(-3, "not urgent", `\b(not|no|nothing)\s+(urgent|critical|a\s+rush|rush|hurry)\b|\bno\s+rush\b|\bwhen(ever)?\s+you\s+(have|get|find)\s+(the\s+)?time\b|\bjust\s+(wondering|curious|a\s+suggestion)\b|\bout\s+of\s+curiosity\b|\bcosmetic\b|\bnot\s+a\s+big\s+deal\b`),
	sig(-2, "question", `\b(how\s+(do|can|should)\s+(i|we)|how\s+to|is\s+it\s+possible|is\s+there\s+(a|an|any)|what(’|')?s\s+the\s+(recommended|best)|would\s+you\s+recommend|do\s+you\s+(have|recommend)|should\s+we|what\s+information|could\s+you\s+(tell|explain|send)|can\s+you\s+send|pourriez-vous|wie\s+kann\s+ich)\b`),
	sig(-2, "feature request or feedback", `\b(feature\s+request|suggestion|would\s+be\s+nice|it\s+would\s+help|typo|documentation|docs|feedback|keep\s+it\s+up|looks\s+great|general\s+advice|recommendation|guide|template)\b`),
	sig(-1, "planned change", `\b(next\s+(week|month)|this\s+week|schedule|for\s+our\s+records|in\s+advance|plan\s+our)\b`),

	sig(6, "outage", `\b(outage|is\s+down|are\s+down|went\s+down|goes\s+down|down\s+for\s+(everyone|all)|site\s+down|website\s+down|tunnel\s+down|down\s+since|is\s+down\s+since|nicht\s+erreichbar|steht\b|panne)\b`),
	sig(6, "security incident", `\b(breach|compromised|hacked|ransomware|ransom|malware|phishing|leaked|leak|vulnerabilit(y|ies)|xss|sql\s+injection|attack|intrusion|stolen\s+credentials)\b`),
	sig(6, "data loss", `\b(data\s+loss|lost\s+data|records?\s+(are\s+)?missing|missing\s+from\s+the\s+database|corrupt(ed|ion)?|wiped)\b`),
	sig(3, "everyone affected", `\b(nobody|no\s+one|none\s+of\s+us|every\s*(one|body|user)|all\s+(users|customers|staff|employees|our\s+customers)|whole\s+(company|team|office|site|application|organisation|organization)|entire\s+(company|team|office|site)|(\d+|many)\s+(people|users|customers)\s+(are\s+)?(unable|can'?t|cannot)|die\s+ganze)\b`),
	sig(3, "production impact", `\b(production|prod\b|customers\s+(are\s+)?(complaining|affected|can'?t)|checkout\s+fails?|orders\s+(are\s+)?failing|costing\s+us|losing\s+(money|sales)|cannot\s+ship|can'?t\s+ship|blocked|blocks\b|suspended|unable\s+to\s+work|can'?t\s+work)\b`),
	sig(3, "urgency", `\b(urgent(ly)?|asap|as\s+soon\s+as\s+possible|emergency|critical|immediately|right\s+now|dringend|urgence)\b`),
	sig(3, "deadline", `\b(deadline|in\s+an?\s+hour|within\s+the\s+hour|by\s+(today|tonight|tomorrow|monday|tuesday|wednesday|thursday|friday|end\s+of\s+day)|due\s+(today|tomorrow)|before\s+(\d|today|tonight|tomorrow|monday))\b`),
	sig(2, "service failing", `\b(crash\s*loop\w*|kernel\s+panic|blue\s+screen|bsod|5\d\d\s+(error|bad\s+gateway)|\b50[0234]\b|bad\s+gateway|fails?\s+to\s+boot|too\s+many\s+connections|rejects?\s+every|not\s+accepting\s+connections|stopped\s+(working|accepting|writing))`),
	sig(1, "failure", `\b(error|errors|fail(s|ed|ing|ure)?|crash(es|ed|ing)?|broken|not\s+working|doesn'?t\s+work|stopped|can'?t|cannot|unable|locked|denied|missing|rejected|timeouts?|times\s+out)\b`),
}

// priorityFromScore maps the summed signal weights to a priority.
func priorityFromScore(score int) tickets.Priority {
	switch {
	case score >= 5:
		return tickets.PriorityHigh
	case score <= -1:
		return tickets.PriorityLow
	}
	return tickets.PriorityMedium
}

// skillTerms are words and phrases in a ticket's text that point at a skill,
// beyond the skill's own name and aliases. Weak terms (prefixed "~") count
// half.
var skillTerms = map[string][]string{
	"postgres":   {"postgres", "postgresql", "psql", "pg_\\w+", "pgbouncer", "vacuum", "autovacuum", "wal", "read replica", "replication", "sequential scan", "explain", "too many connections", "~database", "~datenbank", "~query", "~queries", "~port 5432"},
	"networking": {"network", "dns", "vpn", "firewall", "router", "routing", "packet loss", "latency", "traceroute", "wifi", "wi-fi", "ipsec", "tunnel", "load balancer", "bad gateway", "proxy", "subnet", "ip range", "~port \\d+", "~ip", "~isp", "~502"},
	"email":      {"e-?mails?", "mail server", "mailbox", "smtp", "imap", "spam", "dkim", "spf", "dmarc", "bounces?", "outlook", "newsletter", "webmail", "mailing list", "~mail", "~inbox"},
	"billing":    {"invoices?", "billing", "payments?", "charged", "refund", "vat", "subscription", "pricing", "price", "credit card", "licenses", "factures?", "rechnung", "contract", "service agreement", "~plan", "~seats", "~month end"},
	"accounts":   {"accounts?", "log ?in", "logged out", "sign ?in", "password", "locked", "unlock", "two-factor", "2fa", "mfa", "authenticator", "sso", "permission", "access", "invite", "new hires", "~user", "~users", "~seats", "~credentials"},
	"security":   {"security", "breach", "compromised", "hacked", "phishing", "ransomware", "malware", "vulnerabilit(y|ies)", "xss", "cve", "leaked", "api key", "certificates?", "tls", "ssl", "attack", "suspicious", "two-factor", "2fa", "~ca", "~credentials"},
	"linux":      {"linux", "ubuntu", "debian", "centos", "rhel", "ssh", "cron", "kernel", "systemd", "oom", "bash", "~disk", "~server"},
	"kubernetes": {"kubernetes", "k8s", "kubectl", "pods?", "helm", "ingress", "crashloopbackoff", "notready", "evicted", "worker nodes?", "~node", "~cluster"},
	"windows":    {"windows", "blue screen", "bsod", "active directory", "~pcs?", "~desktops?", "~laptops?", "~outlook"},
	"mobile":     {"mobile", "android", "ios", "iphone", "ipad", "tablet", "push notifications", "~phone", "~app"},
}

type skillMatcher struct {
	skill string
	terms []*regexp.Regexp
	lits  []string // what a match must start with, to skip most terms cheaply
	weak  []bool
	names []string
}

// matcherCache keeps compiled matchers per vocabulary; the vocabulary
// changes only when moderators' skills do.
var matcherCache = struct {
	sync.Mutex
	m map[string][]skillMatcher
}{m: map[string][]skillMatcher{}}

// matchers compiles the terms of each vocabulary skill: its keywords when it
// is a skill ticketd knows, and always its own name, stem and aliases. They
// match lower-cased text.
func matchers(vocabulary []string) []skillMatcher {
	vocabulary = tickets.NormalizeSkills(vocabulary)
	key := strings.Join(vocabulary, ",")
	matcherCache.Lock()
	defer matcherCache.Unlock()
	if m, ok := matcherCache.m[key]; ok {
		return m
	}
	if len(matcherCache.m) > 32 {
		clear(matcherCache.m)
	}
	var out []skillMatcher
	for _, v := range vocabulary {
		m := skillMatcher{skill: v}
		add := func(term string, weak bool) {
			m.terms = append(m.terms, regexp.MustCompile(`\b`+term+`\b`))
			lit, _ := regexp.MustCompile(term).LiteralPrefix()
			m.lits = append(m.lits, lit)
			m.weak = append(m.weak, weak)
			m.names = append(m.names, strings.ReplaceAll(term, `\`, ""))
		}
		own := []string{v, stem(v)}
		own = append(own, skillAliases[v]...)
		for _, name := range own {
			words := strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' })
			for i, w := range words {
				words[i] = regexp.QuoteMeta(w)
			}
			add(strings.Join(words, `[\s-]+`)+`(s|es|ing)?`, false)
		}
		for _, t := range skillTerms[v] {
			weak := strings.HasPrefix(t, "~")
			add(strings.TrimPrefix(t, "~"), weak)
		}
		out = append(out, m)
	}
	matcherCache.m[key] = out
	return out
}

// Analyze triages by rules. It fails only when the similar-ticket search
// fails, and then still returns a result without that part.
func (r *Rules) Analyze(ctx context.Context, in Input) (Result, Decision, error) {
	start := time.Now()
	text := in.Text()
	d := Decision{Provider: "rules", PromptVersion: RulesVersion, InputHash: in.Hash(RulesVersion)}

	prio, reasons := priorityOf(text)
	skills, evidence := skillsOf(text, in.Vocabulary)
	category := categoryOf(text, prio, skills, reasons)
	lang := languageOf(text)

	var notes strings.Builder
	notes.WriteString("Triaged by the rules engine (keyword rules, no language model).\n")
	if len(reasons) > 0 {
		fmt.Fprintf(&notes, "Priority %s: %s.\n", prio, strings.Join(reasons, ", "))
	} else {
		fmt.Fprintf(&notes, "Priority %s: no urgency signals found.\n", prio)
	}
	if len(skills) > 0 {
		var parts []string
		for _, s := range skills {
			parts = append(parts, fmt.Sprintf("%s (%s)", s, strings.Join(evidence[s], ", ")))
		}
		fmt.Fprintf(&notes, "Skills: %s.\n", strings.Join(parts, "; "))
	} else {
		notes.WriteString("Skills: none of the moderators' skills is mentioned.\n")
	}
	if bad, quote := SuspectInjection(text); bad {
		fmt.Fprintf(&notes, "Caution: the ticket contains text addressed to the triage (%q); it was treated as the requester's text, nothing more.\n", clip(quote, 80))
	}
	if tips := nextSteps[category]; tips != "" {
		fmt.Fprintf(&notes, "To check: %s\n", tips)
	}
	var searchErr error
	if r.opts.Similar != nil {
		similar, err := r.opts.Similar.SimilarCompleted(ctx, text, in.TicketID, r.opts.MaxSimilar)
		switch {
		case err != nil:
			searchErr = err
			r.log.Warn("similar ticket search failed", "ticket_id", in.TicketID, "err", err)
		case len(similar) == 0:
			notes.WriteString("No similar Completed tickets found.\n")
		default:
			notes.WriteString("Similar Completed tickets:\n")
			for _, s := range similar {
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
		FirstResponse:   firstResponse(in.Subject, prio),
		Priority:        prio,
		Skills:          orEmpty(skills),
		Category:        category,
		Language:        lang,
		Engine:          "rules",
		SuggestedSkills: []string{},
	}
	if bad, _ := SuspectInjection(text); bad {
		res.Flags = []string{FlagInjection}
	}
	if err := res.Check(); err != nil {
		// A bug in the rules, not in the ticket.
		return Result{}, d, fmt.Errorf("rules engine: %w", err)
	}
	raw, _ := json.Marshal(res)
	d.RawOutput = string(raw)
	d.Latency = time.Since(start)
	if searchErr != nil {
		d.Err = "similar ticket search: " + searchErr.Error()
	}
	return res, d, nil
}

// priorityOf sums the urgency signals in the text.
func priorityOf(text string) (tickets.Priority, []string) {
	score := 0
	var reasons []string
	for _, s := range prioritySignals {
		n := 0
		text = s.re.ReplaceAllStringFunc(text, func(m string) string {
			n++
			return strings.Repeat(" ", len(m))
		})
		if n == 0 {
			continue
		}
		if s.weight == 1 && n > 2 {
			n = 2 // many small complaints are not an outage
		}
		if s.weight != 1 {
			n = 1
		}
		score += s.weight * n
		reasons = append(reasons, s.label)
	}
	return priorityFromScore(score), reasons
}

// skillsOf finds vocabulary skills in the text, strongest first, at most
// three.
func skillsOf(text string, vocabulary []string) ([]string, map[string][]string) {
	type scored struct {
		skill string
		score float64
	}
	var found []scored
	evidence := map[string][]string{}
	text = strings.ToLower(text)
	for _, m := range matchers(vocabulary) {
		score := 0.0
		for i, re := range m.terms {
			if !strings.Contains(text, m.lits[i]) {
				continue
			}
			hit := re.FindString(text)
			if hit == "" {
				continue
			}
			if m.weak[i] {
				score += 0.5
			} else {
				score++
			}
			hit = strings.ToLower(hit)
			if !slices.Contains(evidence[m.skill], hit) {
				evidence[m.skill] = append(evidence[m.skill], hit)
			}
		}
		if score >= 1 {
			found = append(found, scored{m.skill, score})
		}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].score > found[j].score })
	var skills []string
	for i, f := range found {
		// Keep the strongest, and others only when they are nearly as clear.
		if i >= 3 || (i > 0 && f.score < found[0].score/2) {
			break
		}
		skills = append(skills, f.skill)
	}
	return tickets.NormalizeSkills(skills), evidence
}

var (
	questionRe = regexp.MustCompile(`(?i)\b(how|what|where|when|which|why|is\s+it|is\s+there|can\s+i|could\s+you|would\s+you|do\s+you)\b[^.!?\n]*\?`)
	requestRe  = regexp.MustCompile(`(?i)\b(please\s+(add|open|change|update|point|send|create|remove|renew|correct|reactivate)|could\s+you\s+(add|open|change|send|renew)|we\s+need|we(’|')d\s+like|we\s+would\s+like|request)\b`)
	bugRe      = regexp.MustCompile(`(?i)\b(error|crash(es|ed)?|bug|broken|fails?|not\s+working|wrong|overlap)\b`)
	billingRe  = regexp.MustCompile(`(?i)\b(invoice|billing|payment|charged|refund|vat|subscription|price|licen[cs]es?|facture|rechnung)\b`)
	accessRe   = regexp.MustCompile(`(?i)\b(log\s?in|sign\s?in|password|locked|permission|access|2fa|two-factor|authenticator)\b`)
	howRe      = regexp.MustCompile(`(?i)\bhow\b`)
	feedbackRe = regexp.MustCompile(`(?i)\b(feedback|suggestion|looks\s+great|thanks?\s+for|keep\s+it\s+up|feature\s+request|would\s+be\s+nice)\b`)
)

func categoryOf(text string, p tickets.Priority, skills []string, reasons []string) string {
	has := func(label string) bool { return slices.Contains(reasons, label) }
	switch {
	case has("security incident"):
		return "security"
	case p == tickets.PriorityHigh && (has("outage") || has("data loss") || has("everyone affected") || has("production impact") || has("service failing")):
		return "incident"
	case feedbackRe.MatchString(text) && p == tickets.PriorityLow:
		return "feedback"
	case billingRe.MatchString(text):
		return "billing"
	case accessRe.MatchString(text):
		return "access"
	case questionRe.MatchString(text) && p == tickets.PriorityLow:
		if howRe.MatchString(text) {
			return "how-to"
		}
		return "question"
	case bugRe.MatchString(text):
		return "bug"
	case requestRe.MatchString(text):
		return "request"
	case questionRe.MatchString(text):
		return "question"
	case p == tickets.PriorityHigh:
		return "incident"
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

func firstResponse(subject string, p tickets.Priority) string {
	subject = clip(strings.Join(strings.Fields(subject), " "), 120)
	about := "your request"
	if subject != "" {
		about = fmt.Sprintf("your request %q", subject)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Thank you for contacting us. We have received %s and a member of our support team will look into it.", about)
	switch p {
	case tickets.PriorityHigh:
		b.WriteString(" We are treating it as urgent.")
	case tickets.PriorityLow:
		b.WriteString(" We will get back to you as soon as we can.")
	default:
		b.WriteString(" We will get back to you shortly.")
	}
	b.WriteString(" If you have more details, such as error messages, screenshots or when the problem started, just reply to this email.")
	return b.String()
}

// stopwords of a few languages, to tell them apart.
var stopwords = map[string][]string{
	"en": {"the", "and", "is", "to", "of", "in", "it", "we", "our", "you", "for", "not", "with", "this", "can", "please", "since"},
	"de": {"der", "die", "das", "und", "ist", "nicht", "ich", "wir", "unsere", "unser", "sie", "mit", "seit", "bitte", "ein", "eine", "auf"},
	"fr": {"le", "la", "les", "et", "est", "pas", "je", "nous", "notre", "vous", "avec", "pour", "une", "des", "sur", "merci"},
	"es": {"el", "la", "los", "las", "y", "es", "no", "yo", "nosotros", "nuestro", "usted", "con", "para", "una", "por", "gracias"},
	"it": {"il", "lo", "la", "gli", "e", "è", "non", "io", "noi", "nostro", "con", "per", "una", "grazie", "che"},
	"nl": {"de", "het", "een", "en", "is", "niet", "ik", "wij", "onze", "u", "met", "voor", "op", "bedankt", "sinds"},
	"pt": {"o", "a", "os", "as", "e", "é", "não", "eu", "nós", "nosso", "com", "para", "uma", "obrigado", "por"},
}

// languageOf guesses the text's language from its stop words; English when
// nothing stands out.
func languageOf(text string) string {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) })
	count := map[string]int{}
	for _, w := range words {
		for lang, list := range stopwords {
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

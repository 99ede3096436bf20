package triage

import (
	"regexp"
	"slices"
	"strings"

	"golang.org/x/net/idna"

	"ticketd/tickets"
)

// The first response goes to the requester with the acknowledgement. It
// says something useful or nothing: a saved reply that fits the ticket well,
// or a model's answer that passed the guards, or, from the rules engine,
// nothing (the acknowledgement alone).

// savedReplyFit is how well a saved reply fits a ticket.
type savedReplyFit struct {
	reply tickets.SavedReply
	score float64
	words []string
}

// fitsWell is the score a saved reply needs: one of its terms in the
// subject, or two in the text, or one in the opening with a skill in
// common.
const fitsWell = 3.0

// bestSavedReply returns the saved reply that fits the ticket well, if one
// does and no other fits as well: its terms are in the ticket (the subject
// and the opening sentences weigh more), its skills (when it has any) are
// among the ticket's, and its language (when it has one) is the ticket's.
func bestSavedReply(segs []segment, skills []string, language string, replies []tickets.SavedReply) (savedReplyFit, bool) {
	var best, second savedReplyFit
	for _, r := range replies {
		if r.Language != "" && r.Language != language {
			continue
		}
		shared := false
		for _, s := range r.Skills {
			if slices.Contains(skills, s) {
				shared = true
			}
		}
		if len(r.Skills) > 0 && !shared {
			continue
		}
		fit := savedReplyFit{reply: r}
		for _, t := range r.Terms {
			p := plainTerm(t, "")
			if p == "" {
				continue
			}
			re, err := regexp.Compile(p)
			if err != nil {
				continue
			}
			w := 0.0
			for _, sg := range segs {
				if re.MatchString(sg.text) {
					w = max(w, sg.weight)
				}
			}
			if w > 0 {
				fit.score += w
				fit.words = append(fit.words, t)
			}
		}
		if len(fit.words) == 0 {
			continue // skills alone are too broad a fit
		}
		if shared {
			fit.score++
		}
		switch {
		case fit.score > best.score:
			best, second = fit, best
		case fit.score > second.score:
			second = fit
		}
	}
	if best.score < fitsWell || best.score == second.score {
		return savedReplyFit{}, false
	}
	return best, true
}

// What a first response may not hold unless the operator allowed it
// (FIRST_RESPONSE_ALLOWED_DOMAINS): a link or mail address to another
// domain, or a phone number. A requester's planted text can make a model
// write these, and the mail goes out from the support address.
var (
	urlRe   = regexp.MustCompile(`(?i)\b(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>"'()\[\]]+`)
	emailRe = regexp.MustCompile(`(?i)[a-z0-9._%+-]+@([a-z0-9-]+(?:\.[a-z0-9-]+)+)`)
	// hostRe: a bare domain, such as "secure-check.com/login": labels
	// and a top-level domain people register names under.
	hostRe = regexp.MustCompile(`(?i)\b((?:[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?\.)+(?:com|net|org|info|biz|io|co|app|dev|xyz|online|site|top|shop|store|me|ly|gl|link|click|live|page|support|help|cloud|tech|[a-z]{2}))\b`)
	// phoneRe: seven digits or more, with the separators phone numbers
	// are written with.
	phoneRe  = regexp.MustCompile(`\+?\(?\d[\d\s().\-/]{5,}\d`)
	isoDate  = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	defanged = strings.NewReplacer("[.]", ".", "(.)", ".", "{.}", ".", "[dot]", ".", "(dot)", ".", " dot ", ".", "[@]", "@", "(at)", "@", "[at]", "@", "hxxp", "http")
)

// unallowed lists the links, addresses and phone numbers in text that the
// allowed domains do not cover. Defanged forms ("example[.]com", "hxxp")
// count as what they stand for.
func unallowed(text string, allowed []string) []string {
	text = defanged.Replace(text)
	var bad []string
	host := func(h string) {
		h = strings.TrimSuffix(strings.ToLower(h), ".")
		if a, err := idna.ToASCII(h); err == nil {
			h = a
		}
		for _, d := range allowed {
			d = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(d)), ".")
			if d != "" && (h == d || strings.HasSuffix(h, "."+d)) {
				return
			}
		}
		if !slices.Contains(bad, h) {
			bad = append(bad, h)
		}
	}
	for _, u := range urlRe.FindAllString(text, -1) {
		rest := u
		if i := strings.Index(rest, "://"); i >= 0 {
			rest = rest[i+3:]
		}
		rest, _, _ = strings.Cut(rest, "/")
		rest, _, _ = strings.Cut(rest, "?")
		rest, _, _ = strings.Cut(rest, "#")
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			rest = rest[i+1:]
		}
		rest, _, _ = strings.Cut(rest, ":")
		host(rest)
	}
	for _, m := range emailRe.FindAllStringSubmatch(text, -1) {
		host(m[1])
	}
	for _, h := range hostRe.FindAllString(urlRe.ReplaceAllString(emailRe.ReplaceAllString(text, " "), " "), -1) {
		host(h)
	}
	for _, p := range phoneRe.FindAllString(text, -1) {
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, p)
		if len(digits) >= 7 && !isoDate.MatchString(strings.TrimSpace(p)) {
			bad = append(bad, strings.TrimSpace(p))
		}
	}
	return bad
}

// UnallowedInText lists the links, addresses and phone numbers in text that
// the allowed domains do not cover, as the guards find them.
func UnallowedInText(text string, allowed []string) []string { return unallowed(text, allowed) }

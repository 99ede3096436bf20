package triage

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"ticketd/tickets"
)

// GuardOptions configure what code decides after an engine has spoken.
type GuardOptions struct {
	// AllowedDomains are the domains (and their subdomains) whose links
	// and mail addresses a model's first response may hold:
	// FIRST_RESPONSE_ALLOWED_DOMAINS. Phone numbers are never allowed in
	// it; the operator's own numbers belong in saved replies.
	AllowedDomains []string
}

// Guarded holds what an engine proposes to what code decides. An engine's
// output is untrusted text on its way to staff and to a customer: the
// ticket it read may have been written to steer it.
//
//   - A ticket whose text tries to instruct the triage gets no first
//     response (the requester gets the plain acknowledgement), and a model's
//     priority, skills and category are not used for it: the rules engine's
//     reading of the text with the planted part taken out decides.
//   - A model never lowers a ticket the rules read as high.
//   - A skill a model names stands only when the ticket's text speaks of it;
//     otherwise it stays a suggestion.
//   - A model's first response with a link, mail address or phone number
//     the operator has not allowed is not sent.
//   - A saved reply that fits the ticket well is the first response; the
//     rules engine writes none of its own.
type Guarded struct {
	engine Analyzer
	opts   GuardOptions
}

// Guard wraps an engine (a model, or the rules) in the guards.
func Guard(engine Analyzer, o GuardOptions) *Guarded {
	return &Guarded{engine: engine, opts: o}
}

// Analyze runs the engine and applies the guards to its result.
func (g *Guarded) Analyze(ctx context.Context, in Input) (Result, Decision, error) {
	res, d, err := g.engine.Analyze(ctx, in)
	if err != nil {
		return res, d, err
	}
	return g.Apply(in, res), d, nil
}

// byRules reports whether the rules engine (with or without the desk's
// history) decided a result.
func byRules(r Result) bool { return r.Engine == "rules" || r.Engine == "rules+history" }

// Apply holds a result to the guards; see Guarded.
func (g *Guarded) Apply(in Input, res Result) Result {
	rd := res.read
	if rd == nil {
		r := read(in)
		rd = &r
	}
	res.read = nil
	flagged := len(rd.scrubbed.Findings) > 0
	var notes []string
	if flagged && !slices.Contains(res.Flags, FlagInjection) {
		res.Flags = append(res.Flags, FlagInjection)
	}
	if !byRules(res) {
		switch {
		case flagged:
			res.Priority, res.Skills, res.SuggestedSkills, res.Category = rd.severity.priority, orEmpty(rd.skills), []string{}, rd.category
			notes = append(notes, fmt.Sprintf("Caution: the %s contains text addressed to the triage (%q). The model's priority, skills and first response are not used: the rules' reading of the ticket without that text decides (%s; %s).",
				rd.scrubbed.Findings[0].Where, clip(rd.scrubbed.Findings[0].Text, 120), rd.severity.priority, skillList(rd.skills)))
		default:
			if rd.severity.priority == tickets.PriorityHigh && res.Priority != tickets.PriorityHigh {
				notes = append(notes, fmt.Sprintf("Priority high: the rules read %s; the model said %s, and a model does not lower that.",
					strings.Join(rd.severity.severe, ", "), res.Priority))
				res.Priority = tickets.PriorityHigh
			}
			var kept, moved []string
			for _, s := range res.Skills {
				if supported(s, rd.segs, in.Vocabulary, in.SkillTerms) {
					kept = append(kept, s)
				} else {
					moved = append(moved, s)
				}
			}
			if len(moved) > 0 {
				res.SuggestedSkills = tickets.NormalizeSkills(append(slices.Clone(res.SuggestedSkills), moved...))
				res.Skills = orEmpty(kept)
				note := fmt.Sprintf("The model named %s, which the ticket does not speak of: suggestions only.", strings.Join(moved, ", "))
				if len(kept) == 0 && len(rd.skills) > 0 {
					res.Skills = rd.skills
					note += fmt.Sprintf(" The rules' skills stand: %s.", strings.Join(rd.skills, ", "))
				}
				notes = append(notes, note)
			}
			if bad := unallowed(res.FirstResponse, g.opts.AllowedDomains); len(bad) > 0 {
				notes = append(notes, fmt.Sprintf("The model's first response was not sent: it holds %s, which the operator has not allowed.", strings.Join(quoted(bad), ", ")))
				res.FirstResponse = ""
			}
		}
	}
	switch fit, ok := bestSavedReply(rd.segs, res.Skills, res.Language, in.SavedReplies); {
	case flagged:
		res.FirstResponse = ""
	case ok:
		res.FirstResponse = fit.reply.Body
		notes = append(notes, fmt.Sprintf("First response: the saved reply %q (its words %s).", fit.reply.Title, strings.Join(quoted(fit.words), ", ")))
	case byRules(res):
		res.FirstResponse = ""
	}
	if len(notes) > 0 {
		res.HelpfulNotes = clip(strings.Join(notes, "\n")+"\n"+res.HelpfulNotes, MaxHelpfulNotes)
	}
	return res
}

func skillList(skills []string) string {
	if len(skills) == 0 {
		return "no skills"
	}
	return strings.Join(skills, ", ")
}

func quoted(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

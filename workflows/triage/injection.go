package triage

import (
	"regexp"
	"strings"
)

// FlagInjection marks a ticket whose text tries to instruct the triage.
const FlagInjection = "suspected-prompt-injection"

// Planted instructions are recognised by what a requester describing a
// problem has no reason to write, in any of the languages the rules read:
// telling a reader to disregard its instructions or to become something
// else, addressing the triage itself ("Note for the AI:"), setting the
// ticket's fields (its priority, its assignee, what the reply to the
// customer says), fences and role markers of a prompt, and an answer in the
// triage's own JSON form. The patterns match folded text (see fold).
var (
	// overrideRe: "ignore all previous instructions", "you are now", and
	// their kin.
	overrideRe = compilePatterns(`\b(ignore|disregard|forget|override|skip|bypass)\s+(all\s+|any\s+|the\s+|your\s+|of\s+)*(previous|prior|above|earlier|preceding|former|system|original|existing|initial)?\s*(instructions?|prompts?|rules|directions|guidelines|directives|orders|context)\b` +
		`|\byou\s+are\s+now\b|\bfrom\s+now\s+on\s+you\b|\bact\s+as\s+(an?\s+)?(admin|administrator|system|assistant|ai)\b|\bpretend\s+(to\s+be|you\s+are)\b|\bnew\s+instructions?\b|\bsystem\s+prompt\b|\bdeveloper\s+mode\b|\bjailbreak|\bmaintenance\s+mode\b` +
		`|\b(ignorier\w*|vergiss|vergessen\s+sie|missachte\w*)\s+(\w+\s+){0,3}(anweisungen|instruktionen|regeln|vorgaben|befehle|anordnungen)\b|\bdu\s+bist\s+(jetzt|nun|ab\s+sofort)\b|\bneue\s+anweisung` +
		`|\b(ignore[rsz]?|oublie[rsz]?|ne\s+tiens?\s+pas\s+compte\s+de)\s+(\w+\s+){0,3}(instructions|consignes|regles|directives|ordres)\b|\b(tu\s+es|vous\s+etes)\s+(maintenant|desormais)\b|\bnouvelles?\s+(instructions|consignes)\b` +
		`|\b(ignora[rd]?|olvida[rd]?|omite|descarta)\s+(\w+\s+){0,3}(instrucciones|indicaciones|reglas|ordenes)\b|\bahora\s+eres\b|\bnuevas?\s+instrucciones\b` +
		`|\b(ignora(re)?|dimentica(re)?)\s+(\w+\s+){0,3}(istruzioni|indicazioni|regole|ordini)\b|\bora\s+sei\b|\bnuove\s+istruzioni\b` +
		`|\b(ignore|ignora[rs]?|esqueca|desconsidere)\s+(\w+\s+){0,3}(instrucoes|orientacoes|regras|ordens)\b|\bagora\s+voce\s+e\b|\bnovas?\s+instruc` +
		`|\b(negeer|vergeet)\s+(\w+\s+){0,3}(instructies|aanwijzingen|regels|opdrachten)\b|\bje\s+bent\s+nu\b|\bnieuwe\s+instructies\b`)

	// addresseeRe: text addressed to the triage rather than to people.
	addresseeRe = compilePatterns(`\b(note|message|instructions?|reminder|attention|hint)s?\s+(to|for)\s+(the\s+|any\s+)?(ai|a\.i\.|assistant|model|bot|triage|system|llm|gpt|chatgpt|language\s+model)\b` +
		`|\b(dear|hey|hello)\s+(ai|assistant|model|bot|chatgpt|gpt)\b|\b(ai|assistant|llm|gpt|chatgpt)\s+(reading|processing|triaging)\s+this\b` +
		`|\b(hinweis|anweisung|nachricht|info)\s+(an|fur)\s+(die|das|den)\s+(ki|system|assistent\w*|bot|modell)\b|\ban\s+die\s+ki\b` +
		`|\b(pour|a)\s+l'(assistant|ia)\b|\bnote\s+(pour|a)\s+l'ia\b` +
		`|\b(para|al)\s+(el\s+)?asistente\b|\bpara\s+la\s+ia\b` +
		`|\bper\s+l'(assistente|ia)\b|\ball'(assistente|ia)\b` +
		`|\bpara\s+o\s+assistente\b|\bpara\s+a\s+ia\b` +
		`|\bvoor\s+de\s+(ai|assistent)\b|\bai-assistent\b` +
		`|^\s*(ai|a\.i\.|assistant|system|llm|gpt|ki|ia)\s*[:>]`)

	// directiveRe: setting the ticket's fields or the reply to the
	// customer, which a requester cannot do and has no reason to ask of a
	// reader in these words.
	directiveRe = compilePatterns(`\b(set|change|mark|make|classify|categori[sz]e|label|flag|rate|escalate|upgrade|downgrade|tag)\s+(the\s+|this\s+|it\s+|my\s+)?(ticket\s+|request\s+|issue\s+)?(priority\s+)?(as\s+|to\s+|at\s+)?(high|urgent|critical|highest|top|p1|low|lowest|medium|normal)(\s+priority)?\b` +
		`|\bwith\s+(high|highest|top|urgent|critical)\s+priority\b|\bpriority\s+(to\s+)?(high|urgent|critical|low)\b` +
		`|\bassign\s+(this|it|the\s+ticket|this\s+ticket|the\s+request)?\s*to\s+(the\s+)?(admin|administrator|root|ceo|manager|supervisor|[\w.+-]+@)` +
		`|\b(don'?t|do\s+not)\s+assign\b|\b(reply|respond|answer|write\s+back)\s+to\s+the\s+(customer|client|requester|user)\b|\b(reply|respond|answer)\s+(only\s+)?with\s+(the\s+)?(link|url|following|this\s+(link|text|json)|json|")|\btell\s+the\s+(customer|client|requester|user)\s+to\b|\binclude\s+(this|the\s+following)\s+(link|url|number)\b` +
		`|\bsetze\s+(die\s+)?prioritat|\bweise\s+(das\s+ticket|es|dieses\s+ticket)\s+(\w+\s+)?(dem|der|an)\b|\bstufe\s+(\w+\s+){0,3}(als|auf)\s+(hoch|dringend|kritisch|niedrig)\b|\bantworte\s+(dem\s+kunden\s+)?mit\b|\b(skills?|kategorie)\s+auf\b` +
		`|\bmet[sz]?\s+(la\s+)?priorite|\battribue[sz]?\s+(ce|le)\s+ticket|\bclasse[sz]?\s+(ce\s+ticket\s+)?en\s+(priorite\s+)?(haute|urgente|critique|basse)|\breponds?\s+(au\s+client\s+)?(uniquement\s+)?avec\b|\bdis\s+au\s+client\b` +
		`|\b(establece|pon|pone|cambia|marca)\s+(la\s+)?prioridad|\basigna\s+(este|el)\s+ticket|\bresponde\s+(al\s+cliente\s+)?(solo\s+)?con\b|\bdile\s+al\s+cliente\b` +
		`|\bimposta\s+(la\s+)?priorita|\bassegna\s+(il|questo)\s+ticket|\brispondi\s+(al\s+cliente\s+)?con\b|\bdi'?\s+al\s+cliente\b` +
		`|\b(defina|coloque|mude|marque)\s+(a\s+)?prioridade|\batribua\s+(este|o)\s+ticket|\bresponda\s+(ao\s+cliente\s+)?com\b|\bdiga\s+ao\s+cliente\b` +
		`|\bzet\s+de\s+prioriteit|\bwijs\s+(dit|het)\s+ticket\b|\bantwoord\s+de\s+klant\b|\bzeg\s+tegen\s+de\s+klant\b`)

	// markerRe: the fences and role markers of a prompt.
	markerRe = compilePatterns(`<\|?\s*(im_start|im_end|system|endoftext|assistant|user)\s*\|?>|\[/?inst\]|<<+\s*(end\s+)?ticket|(end|begin)\s+(of\s+)?(ticket|system\s+prompt|prompt|instructions)\s*>>|###\s*(instruction|system|response)|</?\s*(system|instructions?|ticket|prompt)\s*>`)

	// fieldRe: the fields of a triage answer, as JSON or "field=value".
	fieldRe = regexp.MustCompile(`"(priority|skills|category|first_response|summary|helpful_notes|language|assignee|suggested_skills)"\s*:` +
		`|\b(priority|skills|category|assign|assignee|first_response)\s*[=:]\s*\S`)

	// psRe: a postscript, the common place to hide an instruction.
	psRe = compilePatterns(`^\s*(p\.?\s?s\.?|p\.?\s?d\.?|n\.?\s?b\.?)\s*[:\-]?\s`)
)

// Finding is text that tries to instruct the triage.
type Finding struct {
	// Where: "subject" or "body".
	Where string
	// Text is what was found: a sentence, a paragraph, or the subject.
	Text string
}

// scrubbed is a ticket's text with what tries to instruct the triage taken
// out, and what was taken out.
type scrubbed struct {
	Subject  string
	Body     string
	Findings []Finding
}

// plantedSentence reports whether one sentence (folded) tries to instruct
// the triage.
func plantedSentence(s string) bool {
	return overrideRe.MatchString(s) || directiveRe.MatchString(s) || markerRe.MatchString(s) ||
		(addresseeRe.MatchString(s) && (strings.Contains(s, "priorit") || strings.Contains(s, "assign") ||
			strings.Contains(s, "critic") || strings.Contains(s, "urgen") || strings.Contains(s, "ticket") ||
			strings.Contains(s, "customer") || strings.Contains(s, "client") || strings.Contains(s, "klant") ||
			strings.Contains(s, "kunde") || strings.Contains(s, "test") || strings.Contains(s, "ignor")))
}

// answerShaped reports whether a paragraph (folded) is a triage answer
// written in advance: two or more of the answer's fields.
func answerShaped(p string) bool {
	seen := map[string]bool{}
	for _, m := range fieldRe.FindAllStringSubmatch(p, -1) {
		k := m[1] + m[2]
		seen[strings.TrimPrefix(k, "assign")] = true
	}
	return len(seen) >= 2
}

// scrub finds planted instructions in a ticket and takes them out: a
// flagged subject entirely; in the body, the flagged sentence and the rest
// of its paragraph (an instruction seldom comes before the problem it
// hides in), or the whole paragraph when it is a postscript, a note to the
// triage, or an answer in the triage's JSON form.
func scrub(subject, body string) scrubbed {
	out := scrubbed{Subject: subject}
	fs := fold(subject)
	if plantedSentence(fs) || answerShaped(fs) {
		out.Subject = ""
		out.Findings = append(out.Findings, Finding{Where: "subject", Text: subject})
	}
	var kept []string
	for _, p := range paragraphs(body) {
		whole := fold(p.text())
		if answerShaped(whole) || markerRe.MatchString(whole) {
			out.Findings = append(out.Findings, Finding{Where: "body", Text: p.text()})
			continue
		}
		cut := -1
		for i, s := range p.sentences {
			if plantedSentence(fold(s)) {
				cut = i
				break
			}
		}
		if cut < 0 {
			kept = append(kept, p.text())
			continue
		}
		if cut == 0 || psRe.MatchString(fold(p.sentences[0])) || addresseeRe.MatchString(fold(p.sentences[0])) {
			cut = 0
		}
		out.Findings = append(out.Findings, Finding{Where: "body", Text: strings.Join(p.sentences[cut:], " ")})
		if cut > 0 {
			kept = append(kept, strings.Join(p.sentences[:cut], " "))
		}
	}
	out.Body = strings.Join(kept, "\n\n")
	return out
}

// SuspectInjection reports whether the text tries to instruct whoever
// triages it, and quotes what it found first.
func SuspectInjection(text string) (bool, string) {
	subject, body, _ := strings.Cut(text, "\n")
	sc := scrub(subject, body)
	if len(sc.Findings) == 0 {
		return false, ""
	}
	return true, sc.Findings[0].Text
}

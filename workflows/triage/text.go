package triage

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// fold lower-cases text and takes the accents off its letters ("Priorität"
// becomes "prioritat", "échoué" "echoue"), so that one pattern matches a
// word however it is accented, and typographic quotes and dashes become
// ASCII ones. The rules' patterns are written in this form.
func fold(s string) string {
	out := s
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
			if f, _, err := transform.String(t, s); err == nil {
				out = f
			}
			break
		}
	}
	out = strings.ReplaceAll(out, "ß", "ss")
	out = strings.Map(func(r rune) rune {
		switch r {
		case '’', '‘', '`', '´':
			return '\''
		case '“', '”', '„', '«', '»':
			return '"'
		case '–', '—', '‑':
			return '-'
		case '\u00a0':
			return ' '
		}
		return unicode.ToLower(r)
	}, out)
	return out
}

// A paragraph is the text between blank lines, and a sentence what ends in
// . ! ? or a line break.
type paragraph struct {
	sentences []string
}

var (
	sentenceEnd = regexp.MustCompile(`[.!?]+(\s+|$)|\n`)
	blankLine   = regexp.MustCompile(`\n\s*\n`)
)

// paragraphs splits a text into paragraphs of sentences, keeping every
// sentence's own text (without its line break).
func paragraphs(text string) []paragraph {
	var out []paragraph
	for _, block := range blankLine.Split(strings.ReplaceAll(text, "\r\n", "\n"), -1) {
		block = strings.TrimSpace(block)
		if block == "" {
			continue
		}
		var p paragraph
		last := 0
		for _, loc := range sentenceEnd.FindAllStringIndex(block, -1) {
			if s := strings.TrimSpace(block[last:loc[1]]); s != "" {
				p.sentences = append(p.sentences, s)
			}
			last = loc[1]
		}
		if s := strings.TrimSpace(block[last:]); s != "" {
			p.sentences = append(p.sentences, s)
		}
		if len(p.sentences) > 0 {
			out = append(out, p)
		}
	}
	return out
}

func (p paragraph) text() string { return strings.Join(p.sentences, " ") }

// disclaimerRe finds the legal notices companies append to every mail: a
// paragraph that says the message is confidential and what to do if you
// are not its recipient.
var disclaimerRe = regexp.MustCompile(`(confidential|vertraulich|confidentiel|confidencial|riservat|vertrouwelijk|privileg)` +
	`[\s\S]*(recipient|addressee|destinatair|destinatari|empfanger|adressat|geadresseerde|mittente|absender|afzender|remetente|remitente|sender|intended|erroneamente|per errore|par erreur|por error|irrtumlich)`)

// closingRe is a line that closes a mail ("Best regards,", "Mit freundlichen
// Grüßen"): what follows it is a name and a signature.
var closingRe = regexp.MustCompile(`^((best|kind|warm|many)?\s*(regards|wishes)|thanks( (a lot|again|in advance))?|thank you|cheers|sincerely|yours( truly| sincerely)?|best` +
	`|(mit )?(freundlichen |besten |viele |liebe |schone )?gru(ss|sse|ssen)|vg|lg|mfg|danke( und gru(ss|sse))?|danke schon` +
	`|cordialement|bien (a vous|cordialement)|salutations|merci( beaucoup| d'avance)?|bonne journee` +
	`|un saludo|saludos( cordiales)?|atentamente|gracias|un abrazo` +
	`|cordiali saluti|distinti saluti|saluti|grazie( mille)?|buona giornata` +
	`|atenciosamente|abracos?|obrigad[oa]|cumprimentos|att\.?` +
	`|(met )?(vriendelijke|hartelijke) groet(en)?|groeten|groet|bedankt|mvg)[,.!]*(\s+[\pL.'-]+){0,3}$`)

// body is what of a ticket's text is the requester's own writing: legal
// notices are dropped, and so is what follows a closing line ("Regards,"):
// the name, job title, company and phone number of a signature the parser
// did not recognise as one.
func bodyText(text string) string {
	var kept []string
	for _, block := range blankLine.Split(strings.ReplaceAll(text, "\r\n", "\n"), -1) {
		if disclaimerRe.MatchString(fold(block)) {
			continue
		}
		lines := strings.Split(block, "\n")
		cut := -1
		for i, l := range lines {
			if i > 0 && closing(l) {
				cut = i
				break
			}
		}
		if cut >= 0 {
			kept = append(kept, strings.Join(lines[:cut], "\n"))
			break
		}
		if len(kept) > 0 && closing(lines[0]) {
			break
		}
		kept = append(kept, block)
	}
	return strings.TrimSpace(strings.Join(kept, "\n\n"))
}

// closing reports whether a line closes a mail; such lines are short.
func closing(line string) bool {
	line = strings.TrimSpace(line)
	return len(line) <= 60 && closingRe.MatchString(fold(line))
}

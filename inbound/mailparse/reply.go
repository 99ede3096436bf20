package mailparse

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ExtractReply returns the new part of a reply, without the quoted history
// and without the signature, and the signature it removed.
//
// History is recognised as mail clients write it: "> " quoted lines (RFC
// 3676 4.5) with the attribution line before them ("On ... wrote:" in many
// languages, also split over several lines), Outlook's header blocks
// (From/Sent/To/Subject, localised), "-----Original Message-----" and
// underscore separators. Text written between quoted blocks (inline and
// bottom-posted answers) is kept. Signatures are the RFC 3676 4.3 "-- "
// delimiter and what follows, "Sent from my ..." lines of mobile clients,
// and a short trailing block of a name with contact details.
func ExtractReply(text string) (reply, signature string) {
	return extractReply(text, "")
}

func extractReply(text, sender string) (string, string) {
	text = cleanText(text)
	if text == "" {
		return "", ""
	}
	lines := strings.Split(text, "\n")
	if len(lines) > 20000 {
		lines = lines[:20000]
	}
	lines = lines[:historyStart(lines)]
	lines = dropQuotes(lines)
	lines = trimBlank(lines)
	for len(lines) > 0 && isSeparatorLine(lines[len(lines)-1]) {
		lines = trimBlank(lines[:len(lines)-1])
	}
	body, sig := splitSignature(lines, sender)
	return strings.Join(trimBlank(body), "\n"), strings.Join(trimBlank(sig), "\n")
}

// quoteDepth counts the leading '>' of a quoted line (RFC 3676 4.5);
// spaces between them, as some clients write "> > ", are allowed.
func quoteDepth(l string) int {
	d := 0
	i := 0
	for i < len(l) && (l[i] == ' ' || l[i] == '\t') && i < 4 {
		i++
	}
	for i < len(l) {
		switch l[i] {
		case '>':
			d++
		case ' ', '\t':
			if d == 0 {
				return 0
			}
		default:
			return d
		}
		i++
	}
	return d
}

func isBlank(l string) bool { return strings.TrimSpace(l) == "" }

func trimBlank(lines []string) []string {
	for len(lines) > 0 && isBlank(lines[0]) {
		lines = lines[1:]
	}
	for len(lines) > 0 && isBlank(lines[len(lines)-1]) {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// historyStart finds the line where unquoted history starts: everything
// from there on is the earlier message.
func historyStart(lines []string) int {
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if isBlank(l) || quoteDepth(l) > 0 {
			continue
		}
		if originalMessage.MatchString(l) {
			return i
		}
		if isUnderscoreLine(l) && (headerBlockAfter(lines, i+1) || shortTail(lines[i+1:], 10)) {
			return i
		}
		if headerBlockAt(lines, i) && !forwardAbove(lines, i) {
			return i
		}
		if n := attributionAt(lines, i); n > 0 {
			next := i + n
			for next < len(lines) && isBlank(lines[next]) {
				next++
			}
			if next < len(lines) && quoteDepth(lines[next]) > 0 {
				i = next - 1 // the attribution of a quoted block: dropQuotes removes both
				continue
			}
			return i
		}
	}
	return len(lines)
}

// dropQuotes removes quoted blocks and the attribution line before each,
// keeping the text written between them.
func dropQuotes(lines []string) []string {
	var out []string
	afterQuote := false
	for i := 0; i < len(lines); i++ {
		if quoteDepth(lines[i]) == 0 {
			if afterQuote && isBlank(lines[i]) {
				continue // the blank line put in place of the quote is enough
			}
			afterQuote = false
			out = append(out, lines[i])
			continue
		}
		afterQuote = true
		// Remove the attribution that introduces this quote.
		j := len(out)
		for j > 0 && isBlank(out[j-1]) {
			j--
		}
		for k := 3; k >= 1; k-- {
			if j-k < 0 {
				continue
			}
			block := out[j-k : j]
			if anyBlank(block) {
				continue
			}
			joined := strings.Join(trimAll(block), " ")
			if isAttribution(joined) && (k == 1 || startsAttribution(block[0])) {
				j -= k
				out = out[:j]
				break
			}
		}
		// Skip the quoted block, blank lines inside it included.
		for i+1 < len(lines) {
			n := i + 1
			for n < len(lines) && isBlank(lines[n]) {
				n++
			}
			if n < len(lines) && quoteDepth(lines[n]) > 0 {
				i = n
				continue
			}
			break
		}
		if len(out) > 0 && !isBlank(out[len(out)-1]) {
			out = append(out, "")
		}
	}
	return out
}

func anyBlank(ls []string) bool {
	for _, l := range ls {
		if isBlank(l) {
			return true
		}
	}
	return false
}

func trimAll(ls []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = strings.TrimSpace(l)
	}
	return out
}

// originalMessage matches the separators Outlook, AOL, Yahoo, Zimbra and
// mobile clients put above the message being answered, in several
// languages.
var originalMessage = regexp.MustCompile(`(?i)^\s*[-=_*]{2,}\s*(original message|original e-?mail|reply message|ursprüngliche (nachricht|e-?mail)|originalnachricht|message d'origine|message original|mensaje original|messaggio originale|oorspronkelijk bericht|origineel bericht|originalmeddelande|ursprungligt meddelande|oprindelig meddelelse|opprinnelig melding|alkuperäinen viesti|wiadomość oryginalna|oryginalna wiadomość|исходное сообщение|пересланное сообщение|mensagem original|původní zpráva|eredeti üzenet|orijinal mesaj|原始邮件|原始郵件|元のメッセージ)\s*[-=_*]{2,}\s*$`)

// forwardMarker matches the line above a forwarded message. A forward is
// what the sender wants read, so it is not cut as history.
var forwardMarker = regexp.MustCompile(`(?i)^\s*[-=_*]*\s*(forwarded message|begin forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|vidarebefordrat meddelande|videresendt meddelelse|пересылаемое сообщение|mensagem encaminhada)`)

func forwardAbove(lines []string, i int) bool {
	for j := i - 1; j >= 0 && j >= i-3; j-- {
		if forwardMarker.MatchString(lines[j]) {
			return true
		}
	}
	return false
}

func isUnderscoreLine(l string) bool {
	l = strings.TrimSpace(l)
	return len(l) >= 20 && strings.Trim(l, "_") == ""
}

// isSeparatorLine is a line of only dashes, underscores, equals signs or
// asterisks.
func isSeparatorLine(l string) bool {
	l = strings.TrimSpace(l)
	return len(l) >= 2 && strings.Trim(l, "-_=*~—–") == ""
}

// shortTail reports whether at most max non-blank lines follow: a list
// footer rather than an answer.
func shortTail(lines []string, max int) bool {
	n := 0
	for _, l := range lines {
		if !isBlank(l) {
			n++
		}
	}
	return n <= max
}

// The header fields Outlook writes above a message it answers, as
// localised clients label them.
var fieldLabels = map[string]string{}

func init() {
	add := func(field string, labels ...string) {
		for _, l := range labels {
			fieldLabels[l] = field
		}
	}
	add("from", "from", "von", "de", "da", "van", "från", "fra", "od", "от", "от кого", "lähettäjä", "feladó",
		"kimden", "发件人", "寄件者", "差出人", "afzender", "remitente", "expéditeur", "mittente", "nadawca",
		"odesílatel", "frá", "saatja", "kinden", "gönderen", "de la", "absender")
	add("sent", "sent", "gesendet", "envoyé", "envoye", "enviado", "enviada", "inviato", "verzonden", "skickat",
		"sendt", "wysłano", "wysłane", "отправлено", "lähetetty", "elküldve", "gönderildi", "gönderilme tarihi",
		"发送时间", "寄件日期", "送信日時", "date", "datum", "fecha", "data", "dato", "päivämäärä", "дата",
		"日期", "envoyé le", "sent at", "odesláno", "verstuurd")
	add("to", "to", "an", "à", "a", "para", "aan", "till", "til", "do", "кому", "vastaanottaja", "címzett",
		"kime", "收件人", "宛先", "destinataire", "destinatario", "komu", "alıcı")
	add("cc", "cc", "kopie", "copie", "cópia", "kopia", "копия", "抄送", "bcc", "kopio", "másolat")
	add("subject", "subject", "betreff", "objet", "asunto", "oggetto", "onderwerp", "ämne", "emne", "temat",
		"тема", "aihe", "tárgy", "konu", "主题", "主旨", "件名", "assunto", "sujet", "předmět")
}

// fieldLabel returns the header field a line starts with ("from", "sent",
// "to", "cc", "subject"), "" when none. Bold markers (*From:*) and
// full-width colons are allowed.
func fieldLabel(l string) string {
	l = strings.TrimSpace(l)
	l = strings.TrimLeft(l, "*_ ")
	i := strings.IndexAny(l, ":：")
	if i <= 0 || i > 40 {
		return ""
	}
	label := strings.ToLower(strings.Trim(strings.TrimSpace(l[:i]), "*_ "))
	return fieldLabels[label]
}

// headerBlockAt reports whether an Outlook-style header block starts at
// line i: a From (or Date/Sent) field followed by at least two more of
// Sent/Date, To, Cc, Subject, allowing wrapped values.
func headerBlockAt(lines []string, i int) bool {
	first := fieldLabel(lines[i])
	if first != "from" && first != "sent" {
		return false
	}
	seen := map[string]bool{first: true}
	other := 0
	for j := i + 1; j < len(lines) && j <= i+10; j++ {
		if isBlank(lines[j]) {
			if len(seen) >= 3 {
				break
			}
			if j+1 < len(lines) && fieldLabel(lines[j+1]) != "" {
				continue // some clients leave a blank line between fields
			}
			break
		}
		f := fieldLabel(lines[j])
		if f == "" {
			other++
			if other > 2 {
				break
			}
			continue
		}
		seen[f] = true
	}
	if !seen["from"] {
		return false
	}
	return len(seen) >= 3 || (seen["from"] && seen["subject"] && len(seen) >= 2 && (seen["sent"] || seen["to"]))
}

func headerBlockAfter(lines []string, i int) bool {
	for j := i; j < len(lines) && j < i+3; j++ {
		if isBlank(lines[j]) {
			continue
		}
		return headerBlockAt(lines, j)
	}
	return false
}

// onWords start attribution lines in many languages.
var onLine = regexp.MustCompile(`(?i)^\s*(on|le|am|el|op|il|em|den|på|w dniu|dne|el día|in|在|quoting|citando|zitat von|am \d)\b`)

// dateish matches a time or a numeric date, which attribution lines carry.
var dateish = regexp.MustCompile(`\d{1,2}:\d{2}|\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{4}`)

// wroteVerbs end attribution lines: "On <date>, <name> wrote:" and its
// translations.
var wroteVerbs = []string{"wrote", "writes", "escribió", "escribio", "escreveu", "a écrit", "a ecrit",
	"schrieb", "schreef", "ha scritto", "scrisse", "skrev", "kirjoitti", "napisał", "napisal", "napisała",
	"написал(а)", "написала", "написал", "пишет", "yazdı", "írta", "napsal", "napísal", "kirjutas",
	"rakstīja", "rašė", "έγραψε", "写道", "寫道", "wrote on"}

// endsWithWrote reports whether s ends with one of wroteVerbs, then an
// optional colon.
func endsWithWrote(s string) bool {
	s = strings.TrimRight(s, " \t")
	s = strings.TrimSuffix(s, ":")
	s = strings.TrimSuffix(s, "：")
	s = strings.TrimRight(s, " \t")
	const tail = 32
	if len(s) > tail {
		i := len(s) - tail
		for i < len(s) && !utf8.RuneStart(s[i]) {
			i++
		}
		s = s[i:]
	}
	s = strings.ToLower(s)
	for _, v := range wroteVerbs {
		if strings.HasSuffix(s, v) {
			rest := s[:len(s)-len(v)]
			r, _ := utf8.DecodeLastRuneInString(rest)
			// A word of its own: "rewrote:" is not an attribution.
			return rest == "" || !unicode.IsLetter(r) || v == "写道" || v == "寫道"
		}
	}
	return false
}

func startsAttribution(l string) bool {
	l = strings.TrimSpace(l)
	if onLine.MatchString(l) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(l)
	return unicode.IsDigit(r)
}

// isAttribution reports whether s (one or more joined lines) introduces a
// quote: an "... wrote:" line that names a date or an address, or a line
// ending in a colon that holds an address and a date, as Yandex and
// Mail.ru write "26.06.2014, 14:41, "Name" <a@b>:".
func isAttribution(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) > 400 || len(s) < 6 {
		return false
	}
	if endsWithWrote(s) {
		return onLine.MatchString(s) || strings.Contains(s, "@") || dateish.MatchString(s)
	}
	if strings.HasSuffix(s, ":") || strings.HasSuffix(s, "：") {
		return strings.Contains(s, "@") && dateish.MatchString(s)
	}
	return false
}

// attributionAt returns how many lines (1 to 3) starting at i form an
// attribution, 0 when they do not.
func attributionAt(lines []string, i int) int {
	if !startsAttribution(lines[i]) && !strings.Contains(lines[i], "@") {
		// A single line can still be "Name <a@b> wrote:".
		if isAttribution(lines[i]) && endsWithWrote(lines[i]) {
			return 1
		}
		return 0
	}
	joined := ""
	for k := 0; k < 3 && i+k < len(lines); k++ {
		if isBlank(lines[i+k]) {
			break
		}
		if k == 0 {
			joined = strings.TrimSpace(lines[i])
		} else {
			joined += " " + strings.TrimSpace(lines[i+k])
		}
		if isAttribution(joined) && (endsWithWrote(joined) || k == 0 && quotedNext(lines, i+1)) {
			return k + 1
		}
	}
	return 0
}

func quotedNext(lines []string, i int) bool {
	for i < len(lines) && isBlank(lines[i]) {
		i++
	}
	return i < len(lines) && quoteDepth(lines[i]) > 0
}

// mobileSig matches the signature lines mobile and web clients add.
var mobileSig = regexp.MustCompile(`(?i)^\s*(` +
	`(sent|envoyé|envoye|gesendet|enviado|enviada|inviato|verzonden|verstuurd|skickat|sendt|lähetetty|wysłane|odesláno|отправлено|sent using|sent via)\s+(from|with|via|using|on|de|depuis|von|mit|desde|da|dal|vanaf|met|från|fra|z|из|с)\s[^,!?]{1,70}[.!]?` +
	`|get outlook for [^,]{1,40}` +
	`|von meinem [^,]{1,40} gesendet\.?` +
	`|envoyé de mon [^,]{1,40}` +
	`|enviado desde mi [^,]{1,40}` +
	`|inviato da(l mio)? [^,]{1,40}` +
	`|verzonden (vanaf|met) (mijn )?[^,]{1,40}` +
	`|skickat från (min )?[^,]{1,40}` +
	`|sendt fra (min )?[^,]{1,40}` +
	`|sent from my [^,]{1,40}` +
	`)\s*$`)

var (
	emailLike   = regexp.MustCompile(`[^\s@<>()]+@[^\s@<>()]+\.[a-zA-Z]{2,}`)
	urlLike     = regexp.MustCompile(`(?i)https?://|www\.|\.(com|org|net|io|co|de|fr|uk)\b`)
	phoneLike   = regexp.MustCompile(`\+?\(?\d[\d\s().-]{6,}\d`)
	contactWord = regexp.MustCompile(`(?i)^\s*(tel|phone|mobile|mob|cell|fax|skype|linkedin|twitter|direct|office|m|t|f|p)\b\.?\s*[:.]|\b(via mobile|mobile|phone)\b`)
)

func contactLike(l string) bool {
	return emailLike.MatchString(l) || urlLike.MatchString(l) || phoneLike.MatchString(l) || contactWord.MatchString(l)
}

var closingWords = map[string]bool{
	"thanks": true, "thank": true, "regards": true, "cheers": true, "best": true, "sincerely": true,
	"kind": true, "warm": true, "yours": true, "greetings": true, "love": true, "respectfully": true,
	"cordially": true, "bye": true, "ciao": true, "gruß": true, "grüße": true, "cordialement": true,
	"saludos": true, "atentamente": true, "groeten": true, "hälsningar": true, "hilsen": true,
	"pozdrawiam": true, "merci": true, "danke": true, "gracias": true, "grazie": true, "obrigado": true,
	"hi": true, "hello": true, "dear": true, "hey": true, "the": true, "see": true, "talk": true,
	"many": true, "all": true, "have": true, "good": true, "take": true, "with": true, "mit": true,
}

// nameLike reports whether a line looks like a person's name: two to four
// capitalised words of letters.
func nameLike(l string) bool {
	l = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "-–—~ "))
	words := strings.Fields(l)
	if len(words) < 2 || len(words) > 4 || len(l) > 40 {
		return false
	}
	for i, w := range words {
		if closingWords[strings.ToLower(strings.Trim(w, ",.!"))] {
			return false
		}
		r, _ := utf8.DecodeRuneInString(w)
		if !unicode.IsUpper(r) {
			if i > 0 && (w == "van" || w == "de" || w == "von" || w == "da" || w == "di" || w == "le" || w == "la" || w == "der") {
				continue
			}
			return false
		}
		for _, c := range w {
			if !unicode.IsLetter(c) && c != '.' && c != '\'' && c != '-' {
				return false
			}
		}
	}
	return true
}

// splitSignature finds where the signature starts in the reply lines.
func splitSignature(lines []string, sender string) (body, sig []string) {
	start := len(lines)
	hasTextBefore := func(i int) bool {
		for _, l := range lines[:i] {
			if !isBlank(l) {
				return true
			}
		}
		return false
	}
	// RFC 3676 4.3: "-- " alone on a line starts the signature; "--" is
	// the same with its space lost on the way.
	for i, l := range lines {
		if (l == "-- " || strings.TrimSpace(l) == "--") && hasTextBefore(i) && len(lines)-i <= 30 {
			start = i
			break
		}
	}
	// "Sent from my iPhone" among the last lines.
	seen := 0
	for i := len(lines) - 1; i >= 0 && seen < 3; i-- {
		if isBlank(lines[i]) {
			continue
		}
		seen++
		if mobileSig.MatchString(lines[i]) && hasTextBefore(i) && i < start {
			start = i
		}
	}
	// A separator line followed by a short block with contact details.
	for i := len(lines) - 1; i >= 0 && i >= len(lines)-30; i-- {
		if i >= start || !isSeparatorLine(lines[i]) || !hasTextBefore(i) {
			continue
		}
		if sigBlock(lines[i+1:], 15, 80) {
			start = i
		}
	}
	// A trailing block of a name and contact details.
	if start == len(lines) {
		last := len(lines)
		first := last
		for first > 0 && !isBlank(lines[first-1]) {
			first--
		}
		block := lines[first:last]
		if first > 0 && hasTextBefore(first) && len(block) >= 2 && len(block) <= 6 {
			if senderNamed(block[0], sender) && shortLines(block, 60) || nameLike(block[0]) && sigBlock(block[1:], 6, 60) {
				start = first
			}
		}
	}
	return lines[:start], lines[start:]
}

func senderNamed(l, sender string) bool {
	sender = strings.TrimSpace(strings.Trim(sender, `"'`))
	if len(strings.Fields(sender)) < 2 {
		return false
	}
	return strings.EqualFold(strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "-–— ")), sender)
}

func shortLines(ls []string, max int) bool {
	for _, l := range ls {
		if utf8.RuneCountInString(strings.TrimSpace(l)) > max {
			return false
		}
	}
	return true
}

// sigBlock reports whether ls is short and holds contact details.
func sigBlock(ls []string, maxLines, maxLen int) bool {
	n := 0
	contact := false
	for _, l := range ls {
		if isBlank(l) {
			continue
		}
		n++
		if utf8.RuneCountInString(strings.TrimSpace(l)) > maxLen {
			return false
		}
		if contactLike(l) || nameLike(l) {
			contact = true
		}
	}
	return n > 0 && n <= maxLines && contact
}

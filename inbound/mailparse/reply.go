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
// 3676 4.5), also prefixed with initials ("KL> ") or rewrapped so that
// their continuations lost the ">", with the attribution line before them
// ("On ... wrote:" in many languages, also split over several lines with
// blank lines inside, beginning with the date, and attributions followed
// by unquoted history), Outlook's header blocks (From/Sent/To/Subject,
// localised, also starting with the date), "-----Original Message-----",
// underscore separators, and what follows a mobile client's "Sent from
// my iPhone". An attribution that is the first line, with the answer
// written below it, is dropped rather than taken for the history. A
// quote that is answered (new text follows it) stays in the reply, because
// the answer needs it; its attribution line goes. Quotes with nothing new
// after them, and a quote above an answer written below it all, are
// history and go. Signatures are the RFC 3676 4.3 "-- "
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
	// Lines read as quoted are given back as written (restore).
	lines, written := initialsQuotes(lines)
	lines = rewrappedQuotes(lines, written)
	lines = dropLeadingAttribution(lines)
	lines = lines[:historyStart(lines)]
	lines = dropAttributions(lines)
	lines = dropTrailingQuotes(lines)
	body, sig := splitSignature(lines, sender)
	// A quote between the answer and the signature is history too.
	body = dropLeadingQuote(dropTrailingQuotes(body))
	return strings.Join(written.restore(trimBlank(body)), "\n"), strings.Join(written.restore(trimBlank(sig)), "\n")
}

// initialsPrefix matches a quote prefix made of the quoted writer's
// initials, as The Bat!, FidoNet-era and some Usenet clients write it:
// " KL> text", "SD>> text".
var initialsPrefix = regexp.MustCompile(`^( {0,2})(\p{Lu}{1,3})>(>|\s|$)`)

// quotedLines maps lines rewritten for reading back to the lines as
// written.
type quotedLines map[string]string

// initialsQuotes rewrites quote prefixes made of initials to ">", so that
// the rules for quotes apply to them; restore gives the lines that stay
// in the reply back as written. Initials count as a quote prefix under an
// attribution, or when the same ones start two lines or more after a
// leading space (the FidoNet form) or nested: a console prompt ("SQL> ")
// at the end of a mail stays text.
func initialsQuotes(lines []string) ([]string, quotedLines) {
	count := map[string]int{}
	first := map[string]int{}
	nested := map[string]bool{}
	spaced := map[string]bool{}
	for i, l := range lines {
		if j := strings.IndexByte(l, '>'); j < 1 || j > 5 {
			continue // no initials before a '>' near the start
		}
		m := initialsPrefix.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if count[m[2]] == 0 {
			first[m[2]] = i
		}
		count[m[2]]++
		nested[m[2]] = nested[m[2]] || m[3] == ">"
		spaced[m[2]] = spaced[m[2]] || m[1] != ""
	}
	ok := map[string]bool{}
	for in, n := range count {
		if attributionAbove(lines, first[in]) || n >= 2 && (spaced[in] || nested[in]) {
			ok[in] = true
		}
	}
	orig := quotedLines{}
	if len(ok) == 0 {
		return lines, orig
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l
		if j := strings.IndexByte(l, '>'); j < 1 || j > 5 {
			continue
		}
		if m := initialsPrefix.FindStringSubmatch(l); m != nil && ok[m[2]] {
			out[i] = ">" + l[len(m[1])+len(m[2])+1:]
			if _, seen := orig[out[i]]; !seen {
				orig[out[i]] = l
			}
		}
	}
	return out, orig
}

// rewrappedQuotes finds quoted lines that the sender's client wrapped
// again after quoting them, so that their continuation lines lost the
// ">", and quotes those too (restore gives them back as written): else a
// quote read as answered stays in the reply whole.
//
// A run of unquoted lines continues the quoted line above it when that
// line is about as long as the longest and the run's first word would not have fitted on it
// within the width the quote was wrapped at (the longest quoted line),
// every line of the run but the last is about as long, and the run ends
// at a quoted line, a blank line or the end. The continuation is certain
// when the quoted line breaks off in mid-sentence (no full stop, question
// mark or colon at its end, or a small letter after it); at a sentence's
// end it may be an answer written right below a quoted question, and
// counts only in a quote where another line certainly was wrapped.
func rewrappedQuotes(lines []string, orig quotedLines) []string {
	width := 0
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); quoteDepth(l) > 0 && n <= 120 && n > width {
			width = n
		}
	}
	// The width is that of a wrapped text only when more than one line
	// reaches it: a single long quoted line says nothing.
	full := 0
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n <= width && n >= width-10 {
			full++
		}
	}
	if width < 60 || full < 2 {
		return lines
	}
	type run struct{ quoted, from, to int } // lines[from:to] continue lines[quoted]
	var sure, maybe []run
	for i := 0; i+1 < len(lines); i++ {
		q := lines[i]
		qn := utf8.RuneCountInString(q)
		if quoteDepth(q) == 0 || qn < width-20 || isBlank(unquote(q)) {
			continue
		}
		j := i + 1
		for j < len(lines) && !isBlank(lines[j]) && quoteDepth(lines[j]) == 0 {
			j++
		}
		if j == i+1 {
			continue
		}
		first := strings.Fields(lines[i+1])[0]
		if qn+1+utf8.RuneCountInString(first) <= width {
			continue // the word would have fitted: not wrapped here
		}
		ok := true
		for k := i + 1; k < j; k++ {
			n := utf8.RuneCountInString(lines[k])
			if n > width+2 || (k < j-1 && n < width-20) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		r := run{i, i + 1, j}
		end := strings.TrimRight(unquote(q), " ")
		c, _ := utf8.DecodeRuneInString(first)
		if !strings.ContainsAny(end[len(end)-1:], ".?!:;") || unicode.IsLower(c) {
			sure = append(sure, r)
		} else {
			maybe = append(maybe, r)
		}
		i = j - 1
	}
	if len(sure) == 0 {
		return lines
	}
	out := append([]string(nil), lines...)
	quote := func(r run) {
		q := lines[r.quoted]
		prefix := q[:len(q)-len(strings.TrimLeft(strings.TrimLeft(q, " \t"), "> \t"))]
		if !strings.HasSuffix(prefix, " ") {
			prefix += " "
		}
		for k := r.from; k < r.to; k++ {
			out[k] = prefix + lines[k]
			if _, seen := orig[out[k]]; !seen {
				orig[out[k]] = lines[k]
			}
		}
	}
	for _, r := range sure {
		quote(r)
	}
	// A possible continuation counts in a quote with a certain one: the
	// quoted lines between them, blank quoted lines included, join them.
	block := make([]int, len(out)) // quote block of each line, 0: none
	inMaybe := make([]bool, len(out))
	for _, r := range maybe {
		for k := r.from; k < r.to; k++ {
			inMaybe[k] = true
		}
	}
	id := 0
	for k := range out {
		switch {
		case quoteDepth(out[k]) == 0 && !inMaybe[k]:
		case k > 0 && block[k-1] != 0:
			block[k] = block[k-1]
		default:
			id++
			block[k] = id
		}
	}
	certain := map[int]bool{}
	for _, r := range sure {
		certain[block[r.quoted]] = true
	}
	for _, r := range maybe {
		if certain[block[r.quoted]] {
			quote(r)
		}
	}
	return out
}

// attributionAbove reports whether one of the three lines above line i,
// blank lines aside, is an attribution.
func attributionAbove(lines []string, i int) bool {
	seen := 0
	for j := i - 1; j >= 0 && seen < 3; j-- {
		if isBlank(lines[j]) {
			continue
		}
		seen++
		if isAttribution(lines[j]) {
			return true
		}
	}
	return false
}

// restore gives lines rewritten by initialsQuotes back as written.
func (q quotedLines) restore(lines []string) []string {
	if len(q) == 0 {
		return lines
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l
		if o, ok := q[l]; ok {
			out[i] = o
		}
	}
	return out
}

// dropLeadingAttribution removes an attribution that is the first thing
// in the text when the sender wrote below it without quoting: some
// clients put the attribution at the top and the cursor under it. Taking
// it for the start of history would leave nothing, the worst reading of a
// reply. An attribution above a quote (bottom-posting) stays for
// dropAttributions.
func dropLeadingAttribution(lines []string) []string {
	i := 0
	for i < len(lines) && isBlank(lines[i]) {
		i++
	}
	if i == len(lines) || quoteDepth(lines[i]) > 0 {
		return lines
	}
	n := attributionAt(lines, i)
	if n == 0 || quotedNext(lines, i+n) {
		return lines
	}
	rest := lines[i+n:]
	for _, l := range rest {
		if !isBlank(l) {
			return rest
		}
	}
	return lines
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
		if isUnderscoreLine(l) && (headerBlockAfter(lines, i+1) || footerTail(lines[i+1:])) {
			return i
		}
		if headerBlockAt(lines, i) && !forwardAbove(lines, i) {
			return i
		}
		if deviceLineAbove(lines, i) {
			// "Sent from my iPhone" ends what the sender wrote: what
			// follows is the mail being answered, copied unquoted.
			return i + 1
		}
		if n := attributionAt(lines, i); n > 0 {
			next := i + n
			for next < len(lines) && isBlank(lines[next]) {
				next++
			}
			if next < len(lines) && quoteDepth(lines[next]) > 0 {
				i = next - 1 // the attribution of a quoted block: dropAttributions removes it
				continue
			}
			return attributionTop(lines, i, n)
		}
	}
	return len(lines)
}

// deviceLineAbove reports whether line i is a mobile client's sign-off
// ("Sent from my iPhone") below text of the sender's, with more than a
// signature after it: a copy of the mail being answered, which some
// mobile clients put below unquoted. A forward below it is what the
// sender wants read, and a run of sign-offs and contact lines is the
// signature (splitSignature).
func deviceLineAbove(lines []string, i int) bool {
	// A sign-off stands apart from the text above it.
	if i == 0 || !isBlank(lines[i-1]) || !isMobileSig(lines[i]) {
		return false
	}
	before := false
	for _, l := range lines[:i] {
		if !isBlank(l) {
			before = true
			break
		}
	}
	if !before || signatureRun(lines[i+1:]) {
		return false
	}
	seen := 0
	for _, l := range lines[i+1:] {
		if isBlank(l) {
			continue
		}
		if forwardMarker.MatchString(l) {
			return false
		}
		if seen++; seen == 5 {
			break
		}
	}
	return seen > 0
}

// attributionTop extends an attribution found at line i (n lines) upwards
// by the line before it when clients wrapped the date onto a line of its
// own: "pe 20. lokakuuta 2017 klo 17.50 Name" / "<a@b> kirjoitti:".
func attributionTop(lines []string, i, n int) int {
	p := i - 1
	if p < 0 || isBlank(lines[p]) || quoteDepth(lines[p]) > 0 || (p > 0 && !isBlank(lines[p-1])) {
		return i
	}
	if utf8.RuneCountInString(lines[p]) > 100 || !dateish.MatchString(lines[p]) {
		return i
	}
	joined := strings.TrimSpace(lines[p]) + " " + strings.Join(trimAll(lines[i:i+n]), " ")
	if isAttribution(joined) {
		return p
	}
	return i
}

// dropAttributions removes the attribution line ("On ... wrote:") before
// each quoted block, and one that a client put inside the quote, keeping
// the quoted text itself: what is quoted and then answered stays readable.
func dropAttributions(lines []string) []string {
	var out []string
	for i := 0; i < len(lines); i++ {
		if quoteDepth(lines[i]) == 0 || (i > 0 && quoteDepth(lines[i-1]) > 0) {
			out = append(out, lines[i])
			continue
		}
		// The first line of a quoted block: remove the attribution that
		// introduces it, with the blank lines between them.
		j := len(out)
		for j > 0 && isBlank(out[j-1]) {
			j--
		}
		if k := attributionBefore(out, j); k >= 0 {
			out = out[:k]
		}
		// Apple Mail quotes its own attribution: "> On ..., Name wrote:".
		if isAttribution(unquote(lines[i])) && endsWithWrote(unframe(unquote(lines[i]))) {
			for i+1 < len(lines) && quoteDepth(lines[i+1]) > 0 && isBlank(unquote(lines[i+1])) {
				i++
			}
			continue
		}
		out = append(out, lines[i])
	}
	return out
}

// attributionBefore returns where an attribution ending just before line
// j of lines starts, -1 when none does: 1 to 3 lines in a row, or up to 4
// lines with blank lines between them that end with "wrote:" (as
// attributionAt reads them forwards).
func attributionBefore(lines []string, j int) int {
	// With blank lines inside: the last piece ends with the verb, the
	// first starts like an attribution.
	if j > 0 && endsWithWrote(unframe(lines[j-1])) {
		var pieces []string
		gap := false
		for s, blanks := j-1, 0; s >= 0 && len(pieces) < 4; s-- {
			if isBlank(lines[s]) {
				if blanks++; blanks > 2 {
					break
				}
				gap = true
				continue
			}
			if quoteDepth(lines[s]) > 0 {
				break
			}
			blanks = 0
			pieces = append([]string{strings.TrimSpace(lines[s])}, pieces...)
			if gap && startsAttribution(lines[s]) && isAttribution(strings.Join(pieces, " ")) {
				return s
			}
		}
	}
	for k := 3; k >= 1; k-- {
		if j-k < 0 {
			continue
		}
		block := lines[j-k : j]
		if anyBlank(block) {
			continue
		}
		joined := strings.Join(trimAll(block), " ")
		if isAttribution(joined) && (k == 1 || attributionHead(block[0])) {
			return j - k
		}
	}
	return -1
}

// unquote removes the quote markers of a quoted line.
func unquote(l string) string {
	l = strings.TrimLeft(l, " \t")
	for strings.HasPrefix(l, ">") {
		l = strings.TrimLeft(l[1:], " \t")
	}
	return l
}

// attributionHead reports whether l can be the first line of an
// attribution split over several lines.
func attributionHead(l string) bool {
	return startsAttribution(l) || strings.Contains(l, "@") || dateish.MatchString(l)
}

// dropLeadingQuote removes a quoted block at the very start when it is the
// only quote left: the answer was written below the whole earlier message
// (bottom-posting). A quote answered between other quotes, or one that
// follows new text, is a selected part being answered and stays.
func dropLeadingQuote(lines []string) []string {
	lines = trimBlank(lines)
	if len(lines) == 0 || quoteDepth(lines[0]) == 0 {
		return lines
	}
	end := 0
	for end < len(lines) && (quoteDepth(lines[end]) > 0 || isBlank(lines[end])) {
		end++
	}
	for _, l := range lines[end:] {
		if quoteDepth(l) > 0 {
			return lines
		}
	}
	return trimBlank(lines[end:])
}

// dropTrailingQuotes removes the quoted blocks at the end of the reply, and
// the separator lines left before them: nothing new follows them, so they
// are the history being answered.
func dropTrailingQuotes(lines []string) []string {
	for {
		lines = trimBlank(lines)
		n := len(lines)
		switch {
		case n == 0:
			return lines
		case quoteDepth(lines[n-1]) > 0:
			for n > 0 && (quoteDepth(lines[n-1]) > 0 || isBlank(lines[n-1])) {
				n--
			}
			lines = lines[:n]
		case isSeparatorLine(lines[n-1]):
			lines = lines[:n-1]
		default:
			return lines
		}
	}
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
var originalMessage = regexp.MustCompile(`(?i)^\s*[-=_*]{2,}\s*(original message|original e-?mail|reply message|ursprüngliche (nachricht|e-?mail)|originalnachricht|message d'origine|message original|mensaje original|messaggio originale|oorspronkelijk bericht|origineel bericht|originalmeddelande|ursprungligt meddelande|oprindelig meddelelse|oprindelig besked|original besked|opprinnelig melding|opprinnelig e-post|pôvodná správa|mesaj original|αρχικό μήνυμα|원본 메시지|alkuperäinen viesti|wiadomość oryginalna|oryginalna wiadomość|исходное сообщение|пересланное сообщение|mensagem original|původní zpráva|eredeti üzenet|orijinal mesaj|原始邮件|原始郵件|元のメッセージ)\s*[-=_*]{2,}\s*$`)

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
	// A lone dash or bullet is a list item, not a separator.
	return utf8.RuneCountInString(l) >= 2 && strings.Trim(l, "-_=*~—–") == ""
}

// footerTail reports whether lines, after an underscore line, are a list
// or service footer (a few lines with a link or an address) rather than
// more of the answer.
func footerTail(lines []string) bool {
	n := 0
	footer := false
	for _, l := range lines {
		if isBlank(l) || quoteDepth(l) > 0 {
			continue
		}
		if isAttribution(l) {
			break // the answer went on down to the quoted history
		}
		n++
		if n > 10 {
			return false
		}
		if emailLike.MatchString(l) || urlLike.MatchString(l) || footerWords.MatchString(l) {
			footer = true
		}
	}
	return footer
}

var footerWords = regexp.MustCompile(`(?i)mailing list|unsubscribe|listinfo|abbestellen|désabonner|darse de baja`)

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
		"odesílatel", "frá", "saatja", "kinden", "gönderen", "de la", "absender", "από", "від", "보낸 사람",
		"보낸사람", "送信者", "寄件人", "afsender", "avsändare", "avsender", "remetente", "pošiljatelj",
		"siuntėjas", "sūtītājs", "odosielateľ", "من", "מאת", "dari")
	add("sent", "sent", "gesendet", "envoyé", "envoye", "enviado", "enviada", "inviato", "verzonden", "skickat",
		"sendt", "wysłano", "wysłane", "отправлено", "lähetetty", "elküldve", "gönderildi", "gönderilme tarihi",
		"发送时间", "寄件日期", "送信日時", "date", "datum", "fecha", "data", "dato", "päivämäärä", "дата",
		"日期", "envoyé le", "sent at", "odesláno", "verstuurd", "dátum", "ημερομηνία", "στάλθηκε", "tarih",
		"날짜", "보낸 날짜", "päiväys", "wysłany", "надіслано", "trimis", "datums", "日付", "تاريخ", "תאריך",
		"tanggal", "enviada em", "enviado em")
	add("to", "to", "an", "à", "a", "para", "aan", "till", "til", "do", "кому", "vastaanottaja", "címzett",
		"kime", "收件人", "宛先", "destinataire", "destinatario", "komu", "alıcı", "προς", "către", "catre",
		"받는 사람", "받는사람", "mottagare", "modtager", "mottaker", "destinatário", "adresát", "إلى", "אל",
		"kepada", "prejemnik")
	add("cc", "cc", "kopie", "copie", "cópia", "kopia", "копия", "抄送", "bcc", "kopio", "másolat",
		"κοιν.", "κοιν", "másolatot kap", "bilgi", "참조", "копія", "kopi", "dw", "副本")
	add("subject", "subject", "betreff", "objet", "asunto", "oggetto", "onderwerp", "ämne", "emne", "temat",
		"тема", "aihe", "tárgy", "konu", "主题", "主旨", "件名", "assunto", "sujet", "předmět", "θέμα",
		"subiect", "제목", "predmet", "موضوع", "נושא", "subjek")
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
	// Under a separator line any field may come first, as Lotus Notes
	// starts with To.
	if first == "" || (first != "from" && first != "sent" && !separatorAbove(lines, i)) {
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

// separatorAbove reports whether the line before line i, blank lines
// aside, is a separator line (isSeparatorLine).
func separatorAbove(lines []string, i int) bool {
	for j := i - 1; j >= 0 && j >= i-3; j-- {
		if !isBlank(lines[j]) {
			return isSeparatorLine(lines[j])
		}
	}
	return false
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
	"schrieb", "schreef", "ha scritto", "scrisse", "skrev", "kirjoitti", "napisał(a)", "napisał", "napisal", "napisała",
	"pisze", "napsal(a)", "a scris",
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
	l = strings.TrimSpace(unframe(l))
	if onLine.MatchString(l) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(l)
	return unicode.IsDigit(r)
}

// unframe removes the dashes some clients put around an attribution:
// Zoho writes "---- On <date> <a@b> wrote ----".
func unframe(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "--") && !strings.HasPrefix(t, "==") {
		return s
	}
	return strings.Trim(t, "-=_* \t")
}

// timeOfDay matches the time attribution lines carry: 15:12, 17.50.
var timeOfDay = regexp.MustCompile(`\b\d{1,2}[:.]\d{2}\b`)

// weekdayStart matches a line that starts with a day name or an
// abbreviation of one ("Wednesday,", "So.,", "ср,").
var weekdayStart = regexp.MustCompile(`(?i)^\s*(\pL{2,4}[.,]|(mon|tues|wednes|thurs|fri|satur|sun)day\b|(montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|lunes|martes|miércoles|jueves|viernes|sábado|domingo)\b)`)

// isAttribution reports whether s (one or more joined lines) introduces a
// quote: an "... wrote:" line that names a date or an address, a line
// ending in a colon that holds an address and a date, as Yandex and
// Mail.ru write "26.06.2014, 14:41, "Name" <a@b>:", or one where the verb
// comes before the name, as German and Dutch clients write "Am <date> um
// <time> schrieb Name:".
func isAttribution(s string) bool {
	s = strings.TrimSpace(unframe(s))
	if len(s) > 400 || len(s) < 6 {
		return false
	}
	if endsWithWrote(s) {
		return strings.Contains(s, "@") || dateish.MatchString(s)
	}
	if strings.Contains(s, "@") && dateFirst.MatchString(s) {
		return true
	}
	if strings.HasSuffix(s, ":") || strings.HasSuffix(s, "：") {
		if strings.Contains(s, "@") && dateish.MatchString(s) {
			return true
		}
		return timeOfDay.MatchString(s) && hasWroteWord(s)
	}
	return false
}

// dateFirst matches an attribution that begins with the date and time
// and ends with the sender's address, with no verb and no colon needed:
// "2025-03-04 15:12 GMT+01:00 Name <a@b>", "04/03/2025 15:12, a@b",
// "Tue, 4 Mar 2025 15:12:07 +0100 Name <a@b>". The name before the
// address is a few capitalised or quoted words, so a log line ("... 15:12
// connection from a@b") is not one.
var dateFirst = regexp.MustCompile(`^(\pL{2,12}\.?,?\s+)?` +
	`(\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{1,2}\.?\s+\pL{3,12}\.?\s+\d{4}|\pL{3,12}\.?\s+\d{1,2},?\s+\d{4})` +
	`(,|\s)\s*(\pL{1,5}\.?\s+)?\d{1,2}[:.]\d{2}([:.]\d{2})?(\s*([AaPp]\.?[Mm]\.?))?` +
	`(\s*\(?((GMT|UTC)\s*)?[+-]\d{1,2}(:?\d{2})?\)?|\s+[A-Z]{2,5})?` +
	`\s*,?\s*(("[^"]{1,60}"|'[^']{1,60}'|\p{Lu}[\pL.'-]*(\s+\p{Lu}[\pL.'-]*){0,4})\s*,?\s*)?` +
	`(<[^\s<>@]+@[^\s<>@]+>|\(?[^\s<>@()]+@[^\s<>@()]+\.[^\s<>@()]+\)?)\s*:?$`)

// standaloneAttribution reports whether s is an attribution even when no
// quoted line follows it: clients that do not quote put the earlier
// message right after "<date> <time>, Name <a@b>:". It must carry a time
// of day and an address or a "wrote" verb, and start like an attribution.
func standaloneAttribution(s string) bool {
	s = strings.TrimSpace(unframe(s))
	if !isAttribution(s) || !timeOfDay.MatchString(s) {
		return false
	}
	verb := hasWroteWord(s)
	if !verb && !strings.Contains(s, "@") {
		return false
	}
	if verb || startsAttribution(s) || weekdayStart.MatchString(s) {
		return true
	}
	// "Name <a@b> ...": a short name before the address.
	if i := strings.IndexAny(s, "<@"); i > 0 {
		return len(strings.Fields(s[:i])) <= 5
	}
	return false
}

// hasWroteWord reports whether one of wroteVerbs stands in s as a word.
func hasWroteWord(s string) bool {
	s = strings.ToLower(s)
	for _, v := range wroteVerbs {
		for off := 0; ; {
			j := strings.Index(s[off:], v)
			if j < 0 {
				break
			}
			j += off
			before, _ := utf8.DecodeLastRuneInString(s[:j])
			after, _ := utf8.DecodeRuneInString(s[j+len(v):])
			if (j == 0 || !unicode.IsLetter(before)) && (j+len(v) == len(s) || !unicode.IsLetter(after)) {
				return true
			}
			off = j + len(v)
		}
	}
	return false
}

// attributionAt returns how many lines starting at i form an attribution,
// 0 when they do not: 1 to 3 lines in a row, or up to 4 lines with blank
// lines between them, as clients that wrap the attribution and mail
// programs that double line breaks write it; an attribution with blank
// lines inside must end with "wrote:" or its translation.
func attributionAt(lines []string, i int) int {
	if !startsAttribution(lines[i]) && !strings.Contains(lines[i], "@") {
		// A single line can still be "Name <a@b> wrote:".
		if endsWithWrote(unframe(lines[i])) && isAttribution(lines[i]) {
			return 1
		}
		return 0
	}
	joined := ""
	pieces, blanks := 0, 0
	for j := i; j < len(lines) && pieces < 4; j++ {
		if isBlank(lines[j]) {
			if blanks++; blanks > 2 {
				break
			}
			continue
		}
		if quoteDepth(lines[j]) > 0 {
			break
		}
		gap := blanks > 0
		if gap && j-i > pieces+2 {
			break // more than one run of blank lines
		}
		blanks = 0
		pieces++
		if pieces == 1 {
			joined = strings.TrimSpace(lines[i])
		} else {
			joined += " " + strings.TrimSpace(lines[j])
		}
		if !isAttribution(joined) {
			continue
		}
		wrote := endsWithWrote(unframe(joined))
		if j+1-i > pieces { // blank lines inside
			if wrote {
				return j + 1 - i
			}
			continue
		}
		if pieces <= 3 && (wrote || quotedNext(lines, j+1) || standaloneAttribution(joined)) {
			return j + 1 - i
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

// isMobileSig reports whether l is a signature line of a mobile or web
// client. Such lines are short and name one of a few words, which is
// checked first: the full pattern is slow to try on every line.
func isMobileSig(l string) bool {
	if len(l) > 200 {
		return false
	}
	low := strings.ToLower(l)
	for _, w := range mobileSigWords {
		if strings.Contains(low, w) {
			return mobileSig.MatchString(l)
		}
	}
	return false
}

var mobileSigWords = []string{"sent", "sendt", "envoy", "gesendet", "enviad", "inviato", "verzonden", "verstuurd", "skickat",
	"lähetetty", "wysłane", "odesláno", "отправлено", "outlook", "from my", "傳送", "发送", "送信", "get ", "download", "gönderildi",
	"trimis", "στάλθηκε", "发自", "傳自", "來自", "来自", "보냄", "küldve", "odoslané", "poslano", "послано", "надіслано"}

// mobileSig matches the signature lines mobile and web clients add, in
// several languages, with the link some of them append and the excuse for
// brevity some people add. The forms: a "sent" verb, a preposition and
// the device or app ("Sent from my iPhone", "Envoyé depuis mon
// smartphone Samsung Galaxy"); the device first and the verb last
// ("Von meinem iPhone gesendet", "iPhone'umdan gönderildi",
// "iPhoneから送信"); and the app stores' "Get Outlook for iOS".
var mobileSig = regexp.MustCompile(`(?i)^\s*[(<]*\s*(` +
	`(sent|envoyé|envoye|gesendet|enviado|enviada|inviato|verzonden|verstuurd|skickat|sendt|lähetetty|wysłane|wysłano|odesláno|odoslané|poslano|отправлено|послано|надіслано|trimis|στάλθηκε|sent using|sent via)\s+` +
	`(from|with|via|using|on|by|de|depuis|à partir de|a partir de|à partir d’|von|mit|mit der|desde|do|da|dal|dalla|vanaf|met|från|fra|z|ze|iz|из|с|со|з|de pe|din|cu|από|από το)\s[^,!?<>()]{1,70}` +
	`|(get|download|télécharger|telecharger|obtenir|descargar|obtener|scarica|baixe|baixar|obter|holen sie sich|hol dir)( o| la| el)? (outlook|bluemail|blue mail|spark|aqua mail|\S*mail) (for|pour|para|per|für|voor|dla|pro|för|til) [^,]{1,40}` +
	`|(outlook|bluemail) (für|voor|for|pour|para|per) \S+( \S+)? (herunterladen|downloaden|baixar|scaricare|télécharger)` +
	`|(von|vom) meine[mn]?r? [^,]{1,40} gesendet` +
	`|diese nachricht wurde von meinem [^,]{1,60} gesendet` +
	`|envoyé de mon [^,]{1,40}` +
	`|enviado (desde|do|de) (mi|meu|o meu) [^,]{1,40}` +
	`|inviato da(l mio)? [^,]{1,40}` +
	`|verzonden (vanaf|met) (mijn )?[^,]{1,40}` +
	`|skickat från (min )?[^,]{1,40}` +
	`|sendt fra (min )?[^,]{1,40}` +
	`|lähetetty \S+(sta|stä|lta|ltä)( \S+)?` +
	`|\S+(dan|den|tan|ten) gönderildi` +
	`|\S+(ról|ről) küldve` +
	`|from my (iphone|ipad|ipod|android|blackberry|mobile|phone|samsung|galaxy|smartphone)[^,]{0,30}` +
	`|從我的 ?\S+ ?傳送|从我的 ?\S+ ?发送|\S+から送信|(发自|傳自|來自|来自|发送自)我的 ?\S+( \S+)?|(내 )?\S+에서 보냄` +
	`)(, an? [^,]{1,50})?([.!]|[,.;]?\s*(please )?(excuse|pardon|forgive) [^.]{1,40}\.?)?\s*(\S*(https?://|www\.)\S*)?[)>]*\s*$`)

var (
	emailLike   = regexp.MustCompile(`[^\s@<>()]+@[^\s@<>()]+\.[a-zA-Z]{2,}`)
	urlLike     = regexp.MustCompile(`(?i)https?://|www\.|\.(com|org|net|io|co|de|fr|uk)\b`)
	phoneLike   = regexp.MustCompile(`\+?\(?\d[\d\s().-]{6,}\d`)
	contactWord = regexp.MustCompile(`(?i)^\s*(tel|phone|mobile|mob|cell|fax|skype|linkedin|twitter|direct|office|m|t|f|p)\b\.?\s*[:.]|\b(via mobile|mobile|phone)\b`)
)

// roleAt matches "Founder @ Company", a title and an employer.
var roleAt = regexp.MustCompile(`\S\s+@\s+\S`)

func contactLike(l string) bool {
	return emailLike.MatchString(l) || urlLike.MatchString(l) || phoneLike.MatchString(l) || contactWord.MatchString(l) || roleAt.MatchString(l)
}

// closingLine matches a sign-off on a line of its own.
var closingLine = regexp.MustCompile(`(?i)^\s*((best|kind|warm|warmest|many|with best|with kind)\s+)?(regards|wishes|thanks|thank you|cheers|sincerely|cordially|respectfully|yours( truly| sincerely| faithfully)?|greetings|cordialement|bien à vous|saludos|un saludo|atentamente|grüße|viele grüße|liebe grüße|beste grüße|mit freundlichen grüßen|freundliche grüße|groeten|met vriendelijke groet|hälsningar|med vänlig hälsning|hilsen|venlig hilsen|pozdrawiam|cordiali saluti|distinti saluti|saluti|atenciosamente|abraços)\s*[,.!]?\s*$`)

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
		if isMobileSig(lines[i]) && hasTextBefore(i) && i < start {
			start = i
		}
	}
	// A run of such lines, as people who mail from several devices end
	// up with: the first starts the signature when what follows it is
	// short lines, mostly of the same kind.
	for i := 0; i < start; i++ {
		if isMobileSig(lines[i]) && hasTextBefore(i) && signatureRun(lines[i+1:]) {
			start = i
			break
		}
	}
	// A separator line followed by a short block with contact details.
	for i := len(lines) - 1; i >= 0 && i >= len(lines)-30; i-- {
		if i >= start || !isSeparatorLine(lines[i]) || !hasTextBefore(i) {
			continue
		}
		if sigBlock(lines[i+1:], 15, 80) && anyContact(lines[i+1:]) {
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
		prev := first - 1
		for prev >= 0 && isBlank(lines[prev]) {
			prev--
		}
		introduced := prev >= 0 && strings.HasSuffix(strings.TrimSpace(lines[prev]), ":")
		if first > 0 && hasTextBefore(first) && len(block) >= 2 && len(block) <= 6 && !introduced {
			if senderNamed(block[0], sender) && shortLines(block, 60) || nameLike(block[0]) && sigBlock(block[1:], 6, 60) || contactCard(block) {
				start = first
				// The sign-off above it ("Regards,") belongs to it, when
				// the block carries contact details.
				p := first - 1
				for p >= 0 && p >= first-2 && isBlank(lines[p]) {
					p--
				}
				if p >= 0 && closingLine.MatchString(lines[p]) && hasTextBefore(p) && anyContact(block) {
					start = p
				}
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

// contactCard reports whether a trailing block is a card of short lines
// with at least two contact details (address, link, phone), and no line
// that introduces something (a colon) or asks (a question mark).
func contactCard(block []string) bool {
	contacts := 0
	for _, l := range block {
		t := strings.TrimSpace(l)
		if utf8.RuneCountInString(t) > 50 || strings.HasSuffix(t, ":") || strings.HasSuffix(t, "?") {
			return false
		}
		if i := strings.IndexAny(t, ":："); i > 0 && !contactWord.MatchString(t) && !emailLike.MatchString(t) && !urlLike.MatchString(t) {
			continue // "Order number: 123456789": data, not a contact detail
		}
		if emailLike.MatchString(t) || urlLike.MatchString(t) || phoneLike.MatchString(t) || contactWord.MatchString(t) {
			contacts++
		}
	}
	return contacts >= 2
}

// signatureRun reports whether the lines after a mobile signature line
// are a few short lines, mostly signature or contact lines.
func signatureRun(ls []string) bool {
	n, sig := 0, 0
	for _, l := range ls {
		if isBlank(l) {
			continue
		}
		n++
		if n > 30 || utf8.RuneCountInString(l) > 100 || quoteDepth(l) > 0 {
			return false
		}
		if isMobileSig(l) || contactLike(l) {
			sig++
		}
	}
	return sig*2 >= n
}

func anyContact(ls []string) bool {
	for _, l := range ls {
		if contactLike(l) {
			return true
		}
	}
	return false
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

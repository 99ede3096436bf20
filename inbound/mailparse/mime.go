package mailparse

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// parser walks the MIME tree of one message.
type parser struct {
	opt    Options
	msg    *Message
	parts  *int // shared with nested messages, to bound the work per mail
	depth  int
	mdepth int // multipart nesting

	html     string     // the first text/html body part
	tnefBody content    // the body of a TNEF part (winmail.dat), for a mail without other text
	rtfBytes int        // rich text decompressed from TNEF parts so far, bounded by maxRTFBytes per mail
	nested   []*Message // attached messages (message/rfc822)
	report   report     // what multipart/report parts said
	topType  string
	topParam map[string]string
	charset  string // the message's charset, for 8-bit headers
}

// shareTextBytes is the size from which a body part's text shares the
// bytes of the mail instead of being copied (bodyText).
const shareTextBytes = 1 << 20

// bodyText is the text of a text/plain body part: charsetText, except that
// a large part whose bytes are its text as they are shares them, so that a
// mail of 25 MB of text is not held twice while it is delivered. Small
// parts are copied, so that their text does not keep a large mail alive.
func bodyText(data []byte, cs string, m *Message) string {
	if len(data) >= shareTextBytes && textAsIs(data, cs) {
		return unsafe.String(unsafe.SliceData(data), len(data))
	}
	return charsetText(data, cs, m)
}

// content is the readable text of one entity.
type content struct {
	text   string
	html   string // the HTML source when text came from HTML
	isHTML bool
}

func (p *parser) parse(raw []byte) {
	if p.parts == nil {
		p.parts = new(int)
	}
	m := p.msg
	raw = normalizeRaw(raw, m)
	var h header
	var body []byte
	if looksLikeHeader(raw) || (len(raw) > 0 && (raw[0] == ' ' || raw[0] == '\t') && looksLikeHeader(bytes.TrimLeft(raw, " \t"))) {
		var head []byte
		head, body = splitHeader(raw)
		h = parseHeader(head, m, "message header")
		if body == nil && len(head) > 0 && !bytes.Contains(head, []byte("\n\n")) && len(h) == 0 {
			body = head
		}
	} else {
		if p.depth == 0 {
			m.problem("no header: the whole mail read as its body")
		}
		body = raw
	}
	if len(h) == 0 && p.depth == 0 && len(raw) > 0 && looksLikeHeader(raw) {
		m.problem("no header fields found")
	}
	p.topType, p.topParam = parseParams(h.get("Content-Type"), m)
	p.charset = p.topParam["charset"]
	p.headers(h)
	c := p.entity(h, body, partPos{})
	if strings.TrimSpace(c.text) == "" && strings.TrimSpace(p.tnefBody.text) != "" {
		c = p.tnefBody
		if p.html == "" {
			p.html = c.html
		}
	}
	m.Text = cleanText(c.text)
	m.HTML = p.html
	if strings.TrimSpace(m.Text) == "" {
		for _, n := range p.nested {
			if strings.TrimSpace(n.Text) != "" {
				m.Text = n.Text
				if n.HTML != "" && m.HTML == "" {
					m.HTML = n.HTML
				}
				c = content{text: n.Text}
				if n.HTML != "" && n.Text == cleanText(htmlToText(n.HTML, false)) {
					c = content{text: n.Text, html: n.HTML, isHTML: true}
				}
				break
			}
		}
	}
	if c.isHTML && c.html != "" {
		m.Reply, m.Signature = extractReply(htmlToText(c.html, true), m.From.Name)
	} else {
		m.Reply, m.Signature = extractReply(m.Text, m.From.Name)
	}
	if p.depth == 0 {
		classify(p, h) // reads the reply: what is quoted is not the sender's
	}
	m.finish()
}

// headers fills the Message fields read from the top-level header.
func (p *parser) headers(h header) {
	m := p.msg
	cs := p.charset
	m.Subject = strings.TrimSpace(headerText(h.get("Subject"), cs, m))
	if from := parseAddressList(h.get("From"), cs, m); len(from) > 0 {
		m.From = from[0]
	}
	if s := parseAddressList(h.get("Sender"), cs, m); len(s) > 0 {
		m.Sender = s[0]
	}
	m.ReplyTo = parseAddressList(h.get("Reply-To"), cs, m)
	for _, v := range h.values("To") {
		m.To = append(m.To, parseAddressList(v, cs, m)...)
	}
	for _, v := range h.values("Cc") {
		m.Cc = append(m.Cc, parseAddressList(v, cs, m)...)
	}
	if d := h.get("Date"); d != "" {
		if t, ok := parseDate(d); ok {
			m.Date = t
		} else {
			m.problem("unreadable Date %.60q", d)
		}
	}
	m.MessageID = parseMsgID(h.get("Message-ID"))
	if ids := parseMsgIDs(h.get("In-Reply-To")); len(ids) > 0 {
		// RFC 5322 3.6.4: In-Reply-To names the parent(s); the first
		// is the one we thread on.
		m.InReplyTo = ids[0]
	}
	m.References = parseMsgIDs(h.get("References"))
	if rp := h.values("Return-Path"); len(rp) > 0 {
		// RFC 5321 4.4: the final delivery MTA adds Return-Path; the
		// top one is the newest.
		v := strings.TrimSpace(rp[0])
		if l, r := strings.IndexByte(v, '<'), strings.LastIndexByte(v, '>'); l >= 0 && r > l {
			v = v[l+1 : r]
		}
		m.ReturnPath = normAddr(v)
	}
	m.AuthenticationResults = h.values("Authentication-Results")
	if id := h.get("List-Id"); id != "" {
		// RFC 2919 2: the list-id is in angle brackets after a phrase.
		if ids := msgIDRe.FindStringSubmatch(id); ids != nil {
			m.ListID = ids[1]
		} else {
			m.ListID = strings.TrimSpace(id)
		}
	}
}

// partPos is where an entity stands in the MIME tree.
type partPos struct {
	parent string // subtype of the enclosing multipart, "" at the top
	index  int    // position among the parent's parts
	inAlt  bool   // inside a multipart/alternative, at any depth
}

// entity reads one MIME entity and returns its readable text.
func (p *parser) entity(h header, body []byte, pos partPos) content {
	parent := pos.parent
	m := p.msg
	*p.parts++
	if *p.parts > maxParts {
		if *p.parts == maxParts+1 {
			m.problem("more than %d MIME parts: the rest ignored", maxParts)
		}
		return content{}
	}
	ctRaw := h.get("Content-Type")
	ct, params := parseParams(ctRaw, m)
	if ct == "" || !strings.Contains(ct, "/") {
		if ctRaw != "" {
			m.problem("unreadable Content-Type %.40q: read as text/plain", ctRaw)
		}
		ct = "text/plain"
		if parent == "digest" {
			ct = "message/rfc822" // RFC 2046 5.1.5
		}
	}
	disp, dparams := parseParams(h.get("Content-Disposition"), m)
	cte := strings.ToLower(strings.TrimSpace(h.get("Content-Transfer-Encoding")))

	switch {
	case strings.HasPrefix(ct, "multipart/"):
		return p.multipart(ct, params, body, pos)
	case ct == "message/rfc822" || ct == "message/global" || ct == "message/news":
		data := p.decode(body, cte)
		p.messagePart(h, data, ct, params, dparams)
		return content{}
	case ct == "text/rfc822-headers" || ct == "message/rfc822-headers":
		data := p.decode(body, cte)
		p.report.originalHeader = parseHeader(firstHeaderBlock(normalizeRaw(data, m)), &Message{}, "")
		p.attach(h, data, ct, params, dparams, disp)
		return content{}
	case ct == "message/delivery-status" || ct == "message/global-delivery-status":
		data := p.decode(body, cte)
		p.report.parseDSN(normalizeRaw(data, m))
		p.attach(h, data, ct, params, dparams, disp)
		return content{}
	case ct == "message/feedback-report":
		p.report.feedback = true
		data := p.decode(body, cte)
		p.attach(h, data, ct, params, dparams, disp)
		return content{}
	case ct == "message/disposition-notification":
		p.report.mdn = true
		data := p.decode(body, cte)
		p.attach(h, data, ct, params, dparams, disp)
		return content{}
	}

	filename := dparams["filename"]
	if filename == "" {
		filename = params["name"]
	}
	isText := ct == "text/plain" || ct == "text/html" || ct == "text/enriched" || ct == "text/richtext" || ct == "text/x-plain"
	media := strings.HasPrefix(ct, "image/") || strings.HasPrefix(ct, "audio/") || strings.HasPrefix(ct, "video/")
	// RFC 8621 4.1.4: a part belongs to the body rather than the
	// attachments when it is not marked as an attachment, is text or
	// media, and is the first part of its multipart or, outside
	// multipart/related (where only the root is body), media or a text
	// part without a file name. Media inside an alternative is offered as
	// an attachment, as only one of the alternatives would show it.
	inline := disp != "attachment" && (isText || media) &&
		(pos.index == 0 || (parent != "related" && (media || filename == "")))
	if media && pos.inAlt {
		inline = false
	}
	data := p.decode(body, cte)
	if !isText && isTNEF(ct, filename) && p.tnef(data) {
		return content{}
	}
	if !inline || media {
		p.attachPart(h, data, ct, params, dparams, disp, inline)
		return content{}
	}
	cs := params["charset"]
	if ct == "text/html" {
		if cs == "" {
			cs = htmlMetaCharset(data)
		}
		html := normalizeNewlines(charsetText(data, cs, m))
		if p.html == "" {
			p.html = html
		}
		return content{text: htmlToText(html, false), html: html, isHTML: true}
	}
	text := normalizeNewlines(bodyText(data, cs, m))
	if strings.EqualFold(params["format"], "flowed") {
		text = unflow(text, strings.EqualFold(params["delsp"], "yes"))
	}
	if ct == "text/enriched" || ct == "text/richtext" {
		text = stripEnriched(text)
	}
	return content{text: text}
}

// multipart reads a multipart entity (RFC 2046 5.1).
func (p *parser) multipart(ct string, params map[string]string, body []byte, pos partPos) content {
	m := p.msg
	sub := strings.TrimPrefix(ct, "multipart/")
	p.mdepth++
	defer func() { p.mdepth-- }()
	if p.mdepth > maxDepth*2 {
		m.problem("multiparts nested too deep: inner parts ignored")
		return content{}
	}
	boundary := params["boundary"]
	parts, ok := splitMultipart(body, boundary)
	if !ok {
		if g := guessBoundary(body); g != "" && g != boundary {
			m.problem("%s: boundary %q not found; using %q seen in the body", ct, boundary, g)
			parts, ok = splitMultipart(body, g)
		}
	}
	if !ok {
		m.problem("%s without usable boundary: body read as text", ct)
		text := normalizeNewlines(charsetText(body, "", m))
		return content{text: text}
	}
	if !parts.closed {
		m.problem("%s: closing boundary missing; read to the end", ct)
	}
	var kids []content
	for i, raw := range parts.bodies {
		var h header
		var b []byte
		switch {
		case len(raw) == 0:
		case raw[0] == '\n':
			b = raw[1:]
		case looksLikeHeader(raw):
			var head []byte
			head, b = splitHeader(raw)
			h = parseHeader(head, m, "part header")
		default:
			m.problem("%s: part %d has no header", ct, i+1)
			b = raw
		}
		kids = append(kids, p.entity(h, b, partPos{parent: sub, index: i, inAlt: pos.inAlt || sub == "alternative"}))
	}
	switch sub {
	case "alternative":
		// RFC 2046 5.1.4: parts are in increasing order of preference;
		// ticketd prefers text/plain, as the sender wrote it, and falls
		// back to the richest other part.
		var best content
		found := false
		for _, k := range kids {
			if !k.isHTML && strings.TrimSpace(k.text) != "" {
				best, found = k, true
				break
			}
		}
		if !found {
			for i := len(kids) - 1; i >= 0; i-- {
				if strings.TrimSpace(kids[i].text) != "" {
					best, found = kids[i], true
					break
				}
			}
		}
		return best
	case "related":
		// RFC 2387 3.2: the root is the start part, by default the first.
		if len(kids) > 0 {
			return kids[0]
		}
		return content{}
	default:
		// mixed, report, signed, digest, parallel and unknown subtypes
		// (RFC 2046 5.1.7: read as mixed): all readable parts in order.
		var texts []string
		var c content
		allHTML := true
		n := 0
		for _, k := range kids {
			if strings.TrimSpace(k.text) == "" {
				continue
			}
			texts = append(texts, strings.Trim(k.text, "\n"))
			if !k.isHTML {
				allHTML = false
			}
			if n == 0 {
				c = k
			}
			n++
		}
		if n <= 1 {
			return c
		}
		c = content{text: strings.Join(texts, "\n\n")}
		if allHTML {
			c.isHTML = false // several HTML parts: reply from the joined text
		}
		return c
	}
}

type multiparts struct {
	bodies [][]byte
	closed bool
}

// splitMultipart cuts a multipart body at its boundary lines (RFC 2046
// 5.1.1). The line break before a boundary belongs to the boundary.
// Transport padding after a boundary is allowed; a missing close boundary
// leaves the last part running to the end.
func splitMultipart(body []byte, boundary string) (multiparts, bool) {
	var res multiparts
	if boundary == "" {
		return res, false
	}
	delim := []byte("--" + boundary)
	var starts []int // start offsets of delimiter lines
	pos := 0
	for pos <= len(body) {
		var i int
		if pos == 0 && bytes.HasPrefix(body, delim) {
			i = 0
		} else {
			j := bytes.Index(body[pos:], append([]byte("\n"), delim...))
			if j < 0 {
				break
			}
			i = pos + j + 1
		}
		starts = append(starts, i)
		pos = i + len(delim)
		if pos > len(body) {
			break
		}
	}
	if len(starts) == 0 {
		return res, false
	}
	// RFC 2046 5.1.1: a delimiter line is "--" boundary, and the close
	// delimiter "--" boundary "--", each followed only by white space. A
	// nested multipart's boundary may begin with this one's text, so
	// "--boundary--more" is a line of the nested part, not the close;
	// only when no real delimiter follows it is it read as a close
	// delimiter with trailing garbage.
	const (
		notDelim = iota
		delimLine
		closeLine
		looseClose
	)
	kinds := make([]int, len(starts))
	lastReal := -1
	for k, s := range starts {
		line := body[s:]
		if lineEnd := bytes.IndexByte(line, '\n'); lineEnd >= 0 {
			line = line[:lineEnd]
		}
		rest := bytes.TrimRight(line[len(delim):], " \t\r")
		switch {
		case len(rest) == 0:
			kinds[k] = delimLine
		case string(rest) == "--":
			kinds[k] = closeLine
		case bytes.HasPrefix(rest, []byte("--")):
			kinds[k] = looseClose
		}
		if kinds[k] == delimLine || kinds[k] == closeLine {
			lastReal = k
		}
	}
	open := -1 // offset where the current part's content starts
	for k, s := range starts {
		if kinds[k] == notDelim || (kinds[k] == looseClose && k < lastReal) {
			continue
		}
		next := len(body)
		if lineEnd := bytes.IndexByte(body[s:], '\n'); lineEnd >= 0 {
			next = s + lineEnd + 1
		}
		isClose := kinds[k] != delimLine
		if open >= 0 {
			end := s - 1
			if end < open {
				end = open
			}
			res.bodies = append(res.bodies, body[open:end])
		}
		if isClose {
			res.closed = true
			open = -1
			break
		}
		open = next
	}
	if open >= 0 {
		res.bodies = append(res.bodies, body[min(open, len(body)):])
	}
	if len(res.bodies) == 0 {
		return res, false
	}
	return res, true
}

// guessBoundary finds a boundary from the first line that looks like one,
// for multiparts whose boundary parameter is missing or wrong.
func guessBoundary(body []byte) string {
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimRight(line, " \t")
		if len(line) > 3 && bytes.HasPrefix(line, []byte("--")) && !bytes.ContainsAny(line, " \t") && len(line) < 200 {
			b := string(line[2:])
			return strings.TrimSuffix(b, "--")
		}
	}
	return ""
}

// decode undoes the Content-Transfer-Encoding (RFC 2045 6).
func (p *parser) decode(body []byte, cte string) []byte {
	switch cte {
	case "", "7bit", "8bit", "binary", "none", "7-bit", "8-bit":
		return body
	case "base64", "base-64", "b64":
		out, clean := decodeBase64(body)
		if !clean {
			p.msg.problem("invalid characters in base64 skipped")
		}
		return out
	case "quoted-printable", "quotedprintable", "qp", "quoted_printable":
		return decodeQP(body)
	case "x-uuencode", "uuencode", "x-uue":
		if b, ok := decodeUU(body); ok {
			return b
		}
	}
	p.msg.problem("unknown Content-Transfer-Encoding %q: read as is", cte)
	return body
}

// decodeQP decodes quoted-printable (RFC 2045 6.7) and keeps what does not
// follow the rules: "=" not followed by two hex digits stays as it is.
func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		line := b
		nl := false
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
			nl = true
		} else {
			b = nil
		}
		// Rule 3: trailing white space is not part of the data.
		line = bytes.TrimRight(line, " \t\r")
		soft := false
		if bytes.HasSuffix(line, []byte("=")) {
			soft = true
			line = line[:len(line)-1]
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == '=' && i+2 < len(line) && isHex(line[i+1]) && isHex(line[i+2]) {
				out = append(out, unhex(line[i+1])<<4|unhex(line[i+2]))
				i += 2
				continue
			}
			out = append(out, c)
		}
		if nl && !soft {
			out = append(out, '\n')
		}
	}
	return out
}

// decodeUU decodes a uuencoded body ("begin mode name" ... "end").
func decodeUU(b []byte) ([]byte, bool) {
	lines := bytes.Split(b, []byte("\n"))
	var out []byte
	in := false
	for _, l := range lines {
		l = bytes.TrimRight(l, " \r")
		if !in {
			if bytes.HasPrefix(l, []byte("begin ")) {
				in = true
			}
			continue
		}
		if bytes.Equal(l, []byte("end")) || len(l) == 0 {
			break
		}
		n := int((l[0] - ' ') & 0x3f)
		l = l[1:]
		var dec []byte
		for i := 0; i+3 < len(l)+3 && len(dec) < n; i += 4 {
			var q [4]byte
			for j := 0; j < 4; j++ {
				if i+j < len(l) {
					q[j] = (l[i+j] - ' ') & 0x3f
				}
			}
			dec = append(dec, q[0]<<2|q[1]>>4, q[1]<<4|q[2]>>2, q[2]<<6|q[3])
		}
		if len(dec) > n {
			dec = dec[:n]
		}
		out = append(out, dec...)
	}
	return out, in
}

// messagePart records an attached message and reads it for its text.
func (p *parser) messagePart(h header, data []byte, ct string, params, dparams map[string]string) {
	m := p.msg
	if p.depth >= maxDepth {
		m.problem("messages nested too deep: inner message not read")
		p.attach(h, data, ct, params, dparams, "attachment")
		return
	}
	sub := &parser{opt: p.opt, msg: &Message{}, parts: p.parts, depth: p.depth + 1}
	sub.parse(data)
	for _, pr := range sub.msg.Problems {
		m.problem("attached message: %s", pr)
	}
	p.nested = append(p.nested, sub.msg)
	p.report.nestedDSN = append(append(p.report.nestedDSN, sub.report.dsn...), sub.report.nestedDSN...)
	if p.report.original == nil {
		p.report.original = sub.msg
		p.report.originalHeader = parseHeader(firstHeaderBlock(normalizeRaw(data, &Message{})), &Message{}, "")
	}
	if dparams["filename"] == "" && params["name"] == "" {
		dparams = copyMap(dparams)
		subj := sub.msg.Subject
		if subj == "" {
			subj = "message"
		}
		dparams["filename"] = subj + ".eml"
	}
	p.attach(h, data, ct, params, dparams, "attachment")
}

func copyMap(in map[string]string) map[string]string {
	out := make(map[string]string, len(in)+1)
	for k, v := range in {
		out[k] = v
	}
	return out
}

func firstHeaderBlock(b []byte) []byte {
	head, _ := splitHeader(bytes.TrimLeft(b, "\n"))
	return head
}

// attach records an attachment, within the Options limits.
func (p *parser) attach(h header, data []byte, ct string, params, dparams map[string]string, disp string) {
	p.attachPart(h, data, ct, params, dparams, disp, false)
}

// attachPart records a file part; inBody marks media shown in the body
// where it stands rather than offered as an attachment, which is listed as
// an inline attachment.
func (p *parser) attachPart(h header, data []byte, ct string, params, dparams map[string]string, disp string, inBody bool) {
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	cid := strings.TrimSpace(h.get("Content-ID"))
	cid = strings.TrimSuffix(strings.TrimPrefix(cid, "<"), ">")
	p.addAttachment(name, ct, cid, disp == "inline" || (disp == "" && cid != "") || inBody, data)
}

// addAttachment records a file, within the Options limits.
func (p *parser) addAttachment(name, ct, cid string, inline bool, data []byte) {
	if p.depth > 0 {
		return // attachments of an attached message stay inside it
	}
	m := p.msg
	if len(m.Attachments) >= p.opt.MaxAttachments {
		m.problem("more than %d attachments: the rest not recorded", p.opt.MaxAttachments)
		return
	}
	name = cleanFilename(name)
	sum := sha256.Sum256(data)
	a := Attachment{
		Filename:    name,
		ContentType: ct,
		ContentID:   cid,
		Inline:      inline,
		Size:        int64(len(data)),
		SHA256:      hex.EncodeToString(sum[:]),
	}
	if a.Size <= p.opt.MaxAttachmentBytes {
		a.Data = bytes.Clone(data)
		if a.Data == nil {
			a.Data = []byte{}
		}
	} else {
		m.problem("attachment %q is %d bytes, over the limit of %d: content not kept", name, a.Size, p.opt.MaxAttachmentBytes)
	}
	m.Attachments = append(m.Attachments, a)
}

// tnef reads an Outlook TNEF part (winmail.dat, MS-OXTNEF): the files in
// it are the mail's attachments, and its body is kept for when the mail
// has no other text. It reports whether it took files out of the part; a
// part that is no TNEF stream, or holds no file, is kept as the file it
// is.
func (p *parser) tnef(data []byte) bool {
	t, err := readTNEF(data)
	if err != nil {
		return false
	}
	m := p.msg
	for _, pr := range t.Problems {
		m.problem("winmail.dat: %s", pr)
	}
	files := 0
	for _, a := range t.Attachments {
		if a.Data == nil && a.filename() == "" {
			continue // rendering data alone, or an OLE object without contents
		}
		name := a.filename()
		if a.Embedded && name != "" && path.Ext(name) == "" {
			name += ".tnef"
		}
		p.addAttachment(name, a.contentType(), a.ContentID, a.Hidden || a.ContentID != "", a.Data)
		files++
	}
	if p.tnefBody.text != "" {
		return files > 0
	}
	switch {
	case strings.TrimSpace(t.Body) != "":
		p.tnefBody = content{text: normalizeNewlines(t.Body)}
	case strings.TrimSpace(t.HTML) != "":
		html := normalizeNewlines(t.HTML)
		p.tnefBody = content{text: htmlToText(html, false), html: html, isHTML: true}
	case len(t.RTF) > 0 && p.rtfBytes < maxRTFBytes:
		rtf, err := decompressRTF(t.RTF, maxRTFBytes-p.rtfBytes)
		p.rtfBytes += len(rtf)
		if err != nil {
			m.problem("winmail.dat: rich-text body: %v", err)
			break
		}
		text, isHTML := rtfText(rtf)
		text = normalizeNewlines(text)
		if isHTML {
			p.tnefBody = content{text: htmlToText(text, false), html: text, isHTML: true}
		} else {
			p.tnefBody = content{text: text}
		}
	}
	return files > 0
}

// cleanFilename keeps the last path element of a file name and drops
// control characters, so a name never points outside where it is saved.
func cleanFilename(s string) string {
	s = strings.ReplaceAll(s, "\\", "/")
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	s = path.Base(s)
	if s == "." || s == "/" || s == ".." {
		return ""
	}
	return cleanControl(s)
}

// htmlMetaCharset finds <meta charset> in the start of an HTML document
// whose MIME part declares none.
func htmlMetaCharset(b []byte) string {
	if len(b) > 2048 {
		b = b[:2048]
	}
	low := bytes.ToLower(b)
	i := bytes.Index(low, []byte("charset="))
	if i < 0 {
		return ""
	}
	s := low[i+len("charset="):]
	s = bytes.TrimLeft(s, `"' `)
	end := bytes.IndexAny(s, `"'; />`)
	if end < 0 {
		return ""
	}
	return string(s[:end])
}

// unflow joins the soft line breaks of format=flowed text (RFC 3676 4.2):
// a line ending in a space continues on the next line of the same quote
// depth. Space-stuffing (4.4) is removed; the signature separator "-- "
// is never flowed.
func unflow(s string, delsp bool) string {
	lines := strings.Split(s, "\n")
	var out []string
	var cur strings.Builder
	curDepth := -1
	open := false
	for _, l := range lines {
		depth := 0
		for depth < len(l) && l[depth] == '>' {
			depth++
		}
		content := l[depth:]
		content = strings.TrimPrefix(content, " ") // space-stuffing or the space after '>'
		if open && depth != curDepth {
			out = append(out, quotePrefix(curDepth)+cur.String())
			cur.Reset()
			open = false
		}
		flowed := strings.HasSuffix(content, " ") && content != "-- "
		if flowed && delsp {
			content = content[:len(content)-1]
		}
		cur.WriteString(content)
		curDepth = depth
		if flowed {
			open = true
			continue
		}
		out = append(out, quotePrefix(depth)+cur.String())
		cur.Reset()
		open = false
	}
	if open {
		out = append(out, quotePrefix(curDepth)+cur.String())
	}
	return strings.Join(out, "\n")
}

func quotePrefix(depth int) string {
	if depth <= 0 {
		return ""
	}
	return strings.Repeat(">", depth) + " "
}

// stripEnriched removes the formatting commands of text/enriched (RFC 1896).
func stripEnriched(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '<' {
			if i+1 < len(s) && s[i+1] == '<' {
				b.WriteByte('<')
				i++
				continue
			}
			if j := strings.IndexByte(s[i:], '>'); j >= 0 {
				i += j
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// textRune keeps line breaks and tabs, drops NUL, other control characters
// and byte order marks, and makes no-break spaces plain ones.
func textRune(r rune) rune {
	switch {
	case r == '\n' || r == '\t':
		return r
	case r < 0x20 || r == 0x7f, r == '\ufeff':
		return -1
	case r == '\u00a0':
		return ' '
	}
	return r
}

// cleanText makes decoded text presentable: LF line breaks, no NUL or
// other control characters, no trailing white space on lines, nor the
// invisible characters that trackers and some clients leave there.
func cleanText(s string) string {
	s = strings.Map(textRune, normalizeNewlines(s))
	if !strings.Contains(s, " \n") && !strings.Contains(s, "\t\n") && !invisibleAtLineEnd(s) {
		// No line but the last ends in blanks, as in most text: trim
		// without copying a large text.
		return strings.Trim(strings.TrimRightFunc(s, isTrailingBlank), "\n")
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRightFunc(l, isTrailingBlank)
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}

// isTrailingBlank is white space, or a character that shows nothing and
// means nothing at the end of a line: zero-width spaces and joiners, word
// joiners, soft hyphens, direction marks and the other format characters
// (Unicode category Cf), the combining grapheme joiner, and the blank
// glyphs (Hangul fillers, the empty Braille pattern) that tracking
// pixels' text and mass mailers' preheaders are padded with.
func isTrailingBlank(r rune) bool {
	switch r {
	case ' ', '\t', '\u034f', '\u115f', '\u1160', '\u17b4', '\u17b5', '\u2800', '\u3164', '\uffa0':
		return true
	}
	return r >= 0x80 && (unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Zs, r) || r == '\u2028' || r == '\u2029')
}

// invisibleAtLineEnd reports whether a line of s ends in a non-ASCII
// trailing blank (isTrailingBlank).
func invisibleAtLineEnd(s string) bool {
	for {
		i := strings.IndexByte(s, '\n')
		line := s
		if i >= 0 {
			line = s[:i]
		}
		if r, _ := utf8.DecodeLastRuneInString(line); r >= 0x80 && isTrailingBlank(r) {
			return true
		}
		if i < 0 {
			return false
		}
		s = s[i+1:]
	}
}

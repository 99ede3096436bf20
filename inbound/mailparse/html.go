package mailparse

import (
	"strconv"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlToText makes an HTML body readable as plain text: block elements
// break lines, paragraphs and headings are separated by a blank line,
// list items get a dash, links keep their text, scripts, styles and the
// head are dropped, and blockquotes become "> " quoted lines.
//
// With forReply, the quote containers that mail clients wrap around the
// message being answered (Gmail's gmail_quote, Thunderbird's moz-cite-
// prefix, Yahoo's yahoo_quoted, Apple's blockquote type=cite) are quoted
// too, and Outlook's reply header (divRplyFwdMsg, appendonsend) ends the
// text: everything after it is the earlier message.
func htmlToText(src string, forReply bool) string {
	src = stripFormatting(src)
	doc, err := html.Parse(strings.NewReader(src))
	if err != nil {
		// Deeper than the parser goes (512 open elements): the text
		// alone, a line per block.
		return tokensToText(src)
	}
	r := &htmlRenderer{forReply: forReply}
	r.lines = []*textLine{{}}
	r.walk(doc)
	return r.String()
}

// formatting are HTML's formatting elements (HTML 13.2.4.3) but a. They
// carry nothing the text needs, and the parser copies every one left open
// into each new block it starts: a 40 KB mail of unclosed <b class=...>
// and paragraphs took a gigabyte, and 600 unclosed <font> tags were too
// deep to parse at all.
var formatting = map[atom.Atom]bool{
	atom.B: true, atom.Big: true, atom.Code: true, atom.Em: true, atom.Font: true, atom.I: true, atom.Nobr: true,
	atom.S: true, atom.Small: true, atom.Strike: true, atom.Strong: true, atom.Tt: true, atom.U: true,
}

// stripFormatting removes the tags of formatting elements, keeping the rest
// of src byte for byte.
func stripFormatting(src string) string {
	z := html.NewTokenizer(strings.NewReader(src))
	var b strings.Builder
	b.Grow(len(src))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return b.String()
		}
		if tt == html.StartTagToken || tt == html.EndTagToken || tt == html.SelfClosingTagToken {
			if name, _ := z.TagName(); formatting[atom.Lookup(name)] {
				continue
			}
		}
		b.Write(z.Raw())
	}
}

// tokensToText is the text of HTML the parser refused: its text, without
// scripts and styles, with a line break at each block element.
func tokensToText(src string) string {
	z := html.NewTokenizer(strings.NewReader(src))
	var b strings.Builder
	skip := 0
	for {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			return cleanText(b.String())
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		case html.StartTagToken, html.EndTagToken:
			name, _ := z.TagName()
			switch a := atom.Lookup(name); {
			case a == atom.Script || a == atom.Style || a == atom.Head:
				if tt == html.EndTagToken {
					skip = max(skip-1, 0)
				} else {
					skip++
				}
			case isBlock(a), a == atom.P, a == atom.Br, a == atom.H1, a == atom.H2, a == atom.H3, a == atom.H4,
				a == atom.H5, a == atom.H6, a == atom.Pre, a == atom.Table, a == atom.Ul, a == atom.Ol:
				b.WriteByte('\n')
			}
		case html.SelfClosingTagToken:
			if name, _ := z.TagName(); atom.Lookup(name) == atom.Br {
				b.WriteByte('\n')
			}
		}
	}
}

type textLine struct {
	depth int
	text  strings.Builder
}

type htmlRenderer struct {
	forReply bool
	lines    []*textLine
	depth    int // quote depth
	pre      int // inside <pre>
	stopped  bool
	lists    []int // item counters of open lists; -1 for <ul>
}

type step struct {
	n    *html.Node
	exit bool
	// what entering did, undone on exit
	quoted bool
}

func (r *htmlRenderer) walk(root *html.Node) {
	stack := []step{{n: root}}
	for len(stack) > 0 && !r.stopped {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if s.exit {
			r.leave(s.n, s.quoted)
			continue
		}
		n := s.n
		switch n.Type {
		case html.TextNode:
			r.text(n.Data)
			continue
		case html.CommentNode, html.DoctypeNode:
			continue
		case html.ElementNode:
			if skipElement(n) {
				continue
			}
			if r.forReply && isCutMarker(n) {
				r.stopped = true
				continue
			}
		}
		quoted := r.enter(n)
		stack = append(stack, step{n: n, exit: true, quoted: quoted})
		var kids []*html.Node
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			kids = append(kids, c)
		}
		for i := len(kids) - 1; i >= 0; i-- {
			stack = append(stack, step{n: kids[i]})
		}
	}
}

func skipElement(n *html.Node) bool {
	switch n.DataAtom {
	case atom.Head, atom.Script, atom.Style, atom.Title, atom.Noscript, atom.Template,
		atom.Object, atom.Iframe, atom.Svg, atom.Math, atom.Select, atom.Button, atom.Textarea, atom.Audio, atom.Video:
		return true
	}
	if n.DataAtom == 0 && (n.Data == "xml" || strings.HasPrefix(n.Data, "v:")) {
		return true // Office <xml> islands and VML shapes
	}
	if strings.Contains(strings.ReplaceAll(strings.ToLower(attr(n, "style")), " ", ""), "display:none") {
		return true
	}
	return false
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// isCutMarker finds where Outlook starts the message being answered:
// Outlook on the web and new Outlook write <div id="appendonsend"></div>
// followed by <div id="divRplyFwdMsg"> holding the From/Sent/To header;
// Outlook for Mac writes OLK_SRC_BODY_SECTION; Hotmail wrote
// <hr id="stopSpelling">.
func isCutMarker(n *html.Node) bool {
	id := strings.ToLower(attr(n, "id"))
	if id == "" {
		return false
	}
	return strings.Contains(id, "divrplyfwdmsg") || strings.Contains(id, "appendonsend") ||
		strings.Contains(id, "olk_src_body_section") || id == "stopspelling"
}

// isQuoteContainer finds the element a mail client wraps around quoted
// history, attribution line included.
func isQuoteContainer(n *html.Node) bool {
	if n.DataAtom == atom.Blockquote {
		return true
	}
	class := strings.ToLower(attr(n, "class"))
	id := strings.ToLower(attr(n, "id"))
	for _, c := range []string{"gmail_quote", "gmail_attr", "yahoo_quoted", "moz-cite-prefix", "protonmail_quote", "zmail_extra", "ms-outlook-mobile-reference-message"} {
		if strings.Contains(class, c) || strings.Contains(id, c) {
			return true
		}
	}
	return false
}

func (r *htmlRenderer) cur() *textLine { return r.lines[len(r.lines)-1] }

func (r *htmlRenderer) newline() {
	r.lines = append(r.lines, &textLine{depth: r.depth})
}

// ensureNewline starts a new line unless the current one is empty.
func (r *htmlRenderer) ensureNewline() {
	if r.cur().text.Len() > 0 {
		r.newline()
	}
	r.cur().depth = r.depth
}

// ensureBlank makes sure a blank line separates what follows.
func (r *htmlRenderer) ensureBlank() {
	r.ensureNewline()
	if len(r.lines) >= 2 && r.lines[len(r.lines)-2].text.Len() > 0 {
		r.newline()
	}
}

func (r *htmlRenderer) text(s string) {
	if r.stopped {
		return
	}
	if r.pre > 0 {
		parts := strings.Split(normalizeNewlines(s), "\n")
		for i, p := range parts {
			if i > 0 {
				r.newline()
			}
			r.write(strings.ReplaceAll(p, "\u00a0", " "))
		}
		return
	}
	s = strings.ReplaceAll(s, "\u00a0", " ")
	s = collapseSpace(s)
	if s == "" {
		return
	}
	l := r.cur()
	if l.text.Len() == 0 {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return
		}
		l.depth = r.depth
	} else if strings.HasSuffix(l.text.String(), " ") && strings.HasPrefix(s, " ") {
		s = s[1:]
	}
	l.text.WriteString(s)
}

func (r *htmlRenderer) write(s string) {
	l := r.cur()
	if l.text.Len() == 0 {
		l.depth = r.depth
	}
	l.text.WriteString(s)
}

func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, c := range s {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(c)
	}
	return b.String()
}

// enter handles an opening tag; it reports whether it raised the quote depth.
func (r *htmlRenderer) enter(n *html.Node) bool {
	if n.Type != html.ElementNode {
		return false
	}
	quoted := false
	if n.DataAtom == atom.Blockquote || (r.forReply && isQuoteContainer(n)) {
		r.ensureNewline()
		r.depth++
		r.cur().depth = r.depth
		quoted = true
	}
	switch n.DataAtom {
	case atom.Br:
		r.newline()
	case atom.P:
		if strings.Contains(strings.ToLower(attr(n, "class")), "msonormal") {
			r.ensureNewline()
		} else {
			r.ensureBlank()
		}
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Table:
		r.ensureBlank()
	case atom.Pre:
		r.ensureNewline()
		r.pre++
	case atom.Ul:
		r.ensureNewline()
		r.lists = append(r.lists, -1)
	case atom.Ol:
		r.ensureNewline()
		start := 0
		if v, err := strconv.Atoi(attr(n, "start")); err == nil {
			start = v - 1
		}
		r.lists = append(r.lists, start)
	case atom.Li:
		r.ensureNewline()
		marker := "- "
		if len(r.lists) > 0 && r.lists[len(r.lists)-1] >= 0 {
			r.lists[len(r.lists)-1]++
			marker = strconv.Itoa(r.lists[len(r.lists)-1]) + ". "
		}
		if len(r.lists) > 1 {
			marker = strings.Repeat("  ", len(r.lists)-1) + marker
		}
		r.write(marker)
	case atom.Hr:
		r.ensureNewline()
		r.write("----")
		r.newline()
	case atom.Td, atom.Th:
		if l := r.cur(); l.text.Len() > 0 && !strings.HasSuffix(l.text.String(), " ") {
			l.text.WriteString(" ")
		}
	case atom.Img:
		// An image alone tells nothing readable; its alt text may.
		if alt := strings.TrimSpace(attr(n, "alt")); alt != "" && len(alt) < 80 && n.Parent != nil && n.Parent.DataAtom != atom.A {
			r.text(" " + alt + " ")
		}
	default:
		if isBlock(n.DataAtom) {
			r.ensureNewline()
		}
	}
	return quoted
}

func (r *htmlRenderer) leave(n *html.Node, quoted bool) {
	if n.Type != html.ElementNode {
		return
	}
	switch n.DataAtom {
	case atom.P:
		if strings.Contains(strings.ToLower(attr(n, "class")), "msonormal") {
			r.ensureNewline()
		} else {
			r.ensureBlank()
		}
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6, atom.Table:
		r.ensureBlank()
	case atom.Pre:
		r.pre--
		r.ensureNewline()
	case atom.Ul, atom.Ol:
		if len(r.lists) > 0 {
			r.lists = r.lists[:len(r.lists)-1]
		}
		r.ensureNewline()
	default:
		if isBlock(n.DataAtom) {
			r.ensureNewline()
		}
	}
	if quoted {
		r.ensureNewline()
		r.depth--
		r.cur().depth = r.depth
	}
}

func isBlock(a atom.Atom) bool {
	switch a {
	case atom.Div, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Nav, atom.Aside,
		atom.Main, atom.Address, atom.Center, atom.Form, atom.Fieldset, atom.Figure, atom.Figcaption,
		atom.Dd, atom.Dt, atom.Dl, atom.Tr, atom.Tbody, atom.Thead, atom.Tfoot, atom.Caption,
		atom.Details, atom.Summary, atom.Blockquote, atom.Li, atom.Body, atom.Html, atom.Legend:
		return true
	}
	return false
}

// String renders the lines, quoted lines prefixed with '>' per depth, with
// at most one blank line in a row.
func (r *htmlRenderer) String() string {
	var b strings.Builder
	blank := 0
	started := false
	for _, l := range r.lines {
		t := strings.TrimRight(l.text.String(), " ")
		if strings.TrimSpace(t) == "" {
			if !started {
				continue
			}
			blank++
			if blank > 1 {
				continue
			}
			if l.depth > 0 {
				b.WriteString(strings.Repeat(">", l.depth))
			}
			b.WriteByte('\n')
			continue
		}
		blank = 0
		started = true
		if l.depth > 0 {
			b.WriteString(strings.Repeat(">", l.depth))
			b.WriteByte(' ')
		}
		b.WriteString(t)
		b.WriteByte('\n')
	}
	return cleanText(b.String())
}

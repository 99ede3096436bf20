package admin

import (
	"html"
	"html/template"
	"net/url"
	"regexp"
	"strings"

	"github.com/microcosm-cc/bluemonday"
)

// Sanitizer makes a mail's HTML safe to show inside a page: bluemonday's
// UGC policy (no script, no event handler, no style, no form, no frame, only
// http, https and mailto links), links opened without referrer, and images
// only from inline data and the mail's own parts (cid: URLs, RFC 2392)
// unless the viewer asked for remote ones. The pages' Content-Security-Policy
// forbids inline script as a second wall.
type Sanitizer struct {
	blocked *bluemonday.Policy
	remote  *bluemonday.Policy
}

// NewSanitizer builds the two policies once; they are safe for concurrent use.
func NewSanitizer() *Sanitizer {
	return &Sanitizer{blocked: mailPolicy(false), remote: mailPolicy(true)}
}

func mailPolicy(remoteImages bool) *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowDataURIImages()
	// cid: names a part of the same mail; HTML resolves it to that part's
	// address on this site, or drops it.
	p.AllowURLSchemeWithCustomPolicy("cid", func(u *url.URL) bool { return u.Opaque != "" })
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.RewriteSrc(func(u *url.URL) {
		switch {
		case u.Scheme == "data", u.Scheme == "cid":
		case remoteImages && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "":
		default:
			// A remote image tells the sender that, when and where the mail
			// was read; a relative one would request this site's own pages.
			*u = url.URL{}
		}
	})
	return p
}

// cidSrc matches an image's cid: address in sanitised HTML, whose attribute
// values come out quoted and escaped.
var cidSrc = regexp.MustCompile(` src="cid:([^"]*)"`)

// HTML sanitises a mail's HTML body for a page. part gives the address of
// the mail's part with a Content-ID (without <>), "" when there is none;
// nil shows no parts.
func (s *Sanitizer) HTML(body string, remoteImages bool, part func(contentID string) string) template.HTML {
	p := s.blocked
	if remoteImages {
		p = s.remote
	}
	out := cidSrc.ReplaceAllStringFunc(p.Sanitize(body), func(attr string) string {
		cid := html.UnescapeString(cidSrc.FindStringSubmatch(attr)[1])
		if u, err := url.PathUnescape(cid); err == nil {
			cid = u
		}
		if part != nil {
			if u := part(cid); u != "" {
				return ` src="` + html.EscapeString(u) + `"`
			}
		}
		return ` src=""`
	})
	// A blocked image keeps its alt text and loses its src: an empty src
	// would resolve to this very page. Attribute values come out quoted and
	// text escaped (a '"' in text is &#34;), so this matches attributes only.
	out = strings.ReplaceAll(out, ` src=""`, "")
	return template.HTML(out) // #nosec G203 -- sanitised by the policy above
}

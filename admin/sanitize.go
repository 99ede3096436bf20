package admin

import (
	"html/template"
	"net/url"
	"strings"

	"github.com/microcosm-cc/bluemonday"
)

// Sanitizer makes a mail's HTML safe to show inside a page: bluemonday's
// UGC policy (no script, no event handler, no style, no form, no frame, only
// http, https and mailto links), links opened without referrer, and images
// only from inline data unless the viewer asked for remote ones. The pages'
// Content-Security-Policy forbids inline script as a second wall.
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
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.RewriteSrc(func(u *url.URL) {
		switch {
		case u.Scheme == "data":
		case remoteImages && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "":
		default:
			// A remote image tells the sender that, when and where the mail
			// was read; a relative one would request this site's own pages.
			*u = url.URL{}
		}
	})
	return p
}

// HTML sanitises a mail's HTML body for a page.
func (s *Sanitizer) HTML(body string, remoteImages bool) template.HTML {
	p := s.blocked
	if remoteImages {
		p = s.remote
	}
	// A blocked image keeps its alt text and loses its src: an empty src
	// would resolve to this very page. Attribute values come out quoted and
	// text escaped (a '"' in text is &#34;), so this matches attributes only.
	out := strings.ReplaceAll(p.Sanitize(body), ` src=""`, "")
	return template.HTML(out) // #nosec G203 -- sanitised by the policy above
}

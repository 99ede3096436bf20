package signing

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// Redacted is what a token becomes in a log line.
const Redacted = "[token]"

// minTokenChars is the length of the shortest token Sign makes: version,
// key id, purpose, three one-byte numbers and the MAC, in base32.
const minTokenChars = (3 + 3 + macLen) * 8 / 5

// Redact replaces every token of this package found in s (in a reply
// address, a return path, a link) with Redacted. A token is a run of
// base32 letters, of either case, that decodes to this package's version
// byte; other text is left as it is.
func Redact(s string) string {
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isBase32(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isBase32(s[j]) {
			j++
		}
		if j-i >= minTokenChars && looksSigned(s[i:j]) {
			if b.Len() == 0 {
				b.Grow(len(s))
			}
			b.WriteString(s[last:i])
			b.WriteString(Redacted)
			last = j
		}
		i = j
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isBase32(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '2' && c <= '7'
}

func looksSigned(run string) bool {
	raw, err := enc.DecodeString(strings.ToLower(run))
	return err == nil && len(raw) >= 3+3+macLen && raw[0] == version
}

// RedactingHandler passes every record to h with the tokens in its message
// and attributes redacted (Redact): the one place where logs lose them,
// whichever component logged an address, a URL or an error holding one.
func RedactingHandler(h slog.Handler) slog.Handler { return redacting{h} }

type redacting struct{ h slog.Handler }

func (r redacting) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redacting) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redacting) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = redactAttr(a)
	}
	return redacting{r.h.WithAttrs(out)}
}

func (r redacting) WithGroup(name string) slog.Handler { return redacting{r.h.WithGroup(name)} }

func redactAttr(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	switch a.Value.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(Redact(a.Value.String()))
	case slog.KindGroup:
		g := a.Value.Group()
		out := make([]slog.Attr, len(g))
		for i, ga := range g {
			out[i] = redactAttr(ga)
		}
		a.Value = slog.GroupValue(out...)
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			a.Value = slog.StringValue(Redact(v.Error()))
		case []string:
			out := make([]string, len(v))
			for i, s := range v {
				out[i] = Redact(s)
			}
			a.Value = slog.AnyValue(out)
		default:
			// Anything else is left as the handler would write it,
			// unless its text holds a token.
			if s := fmt.Sprint(v); Redact(s) != s {
				a.Value = slog.StringValue(Redact(s))
			}
		}
	}
	return a
}

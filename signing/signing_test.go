package signing

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRoundTripAndFailures(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	keys, err := NewKeys("current-secret-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	claims := Claims{Purpose: PurposeReply, TicketID: 42, UserID: 7, Expires: now.Add(30 * 24 * time.Hour)}
	tok := keys.Sign(claims)
	if tok != strings.ToLower(tok) || len(tok) > 50 {
		t.Fatalf("token %q is not short lower-case base32", tok)
	}
	got, err := keys.Verify(PurposeReply, strings.ToUpper(tok), now)
	if err != nil || got != claims {
		t.Fatalf("Verify = %+v, %v; want %+v", got, err, claims)
	}

	other, _ := NewKeys("another-secret-0123456789")
	tampered := []byte(tok)
	if tampered[5] == 'a' {
		tampered[5] = 'b'
	} else {
		tampered[5] = 'a'
	}
	for _, tc := range []struct {
		name    string
		keys    *Keys
		purpose Purpose
		token   string
		now     time.Time
		want    error
	}{
		{"expired", keys, PurposeReply, tok, claims.Expires, ErrExpired},
		{"another key", other, PurposeReply, tok, now, ErrSignature},
		{"tampered", keys, PurposeReply, string(tampered), now, ErrSignature},
		{"other purpose", keys, PurposeLink, tok, now, ErrPurpose},
		{"truncated", keys, PurposeReply, tok[:10], now, ErrMalformed},
		{"not base32", keys, PurposeReply, "hello-world!", now, ErrMalformed},
		{"empty", keys, PurposeReply, "", now, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.keys.Verify(tc.purpose, tc.token, tc.now); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	old, _ := NewKeys("old-secret-0123456789abc")
	tok := old.Sign(Claims{Purpose: PurposeLink, TicketID: 1, UserID: 2, Expires: now.Add(time.Hour)})
	rotated, _ := NewKeys("new-secret-0123456789abc", "old-secret-0123456789abc")
	if _, err := rotated.Verify(PurposeLink, tok, now); err != nil {
		t.Fatalf("a token of the previous key after rotation: %v", err)
	}
	fresh := rotated.Sign(Claims{Purpose: PurposeLink, TicketID: 1, UserID: 2, Expires: now.Add(time.Hour)})
	if _, err := old.Verify(PurposeLink, fresh, now); !errors.Is(err, ErrSignature) {
		t.Fatalf("the old key accepted a token of the new one: %v", err)
	}
	if _, err := NewKeys("short"); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

func TestReplyAddress(t *testing.T) {
	addr := ReplyAddress("support@example.com", "abc123")
	if addr != "support+abc123@example.com" {
		t.Fatalf("ReplyAddress = %q", addr)
	}
	for _, tc := range []struct {
		addr, want string
		ok         bool
	}{
		{"support+abc123@example.com", "abc123", true},
		{"SUPPORT+ABC123@EXAMPLE.COM", "abc123", true},
		{"support@example.com", "", false},
		{"support+@example.com", "", false},
		{"support+abc@other.com", "", false},
		{"sales+abc@example.com", "", false},
		{"nonsense", "", false},
	} {
		got, ok := TokenFromAddress("support@example.com", tc.addr)
		if got != tc.want || ok != tc.ok {
			t.Errorf("TokenFromAddress(%q) = %q, %v; want %q, %v", tc.addr, got, ok, tc.want, tc.ok)
		}
	}
}

func FuzzVerify(f *testing.F) {
	keys, _ := NewKeys("fuzz-secret-0123456789abc")
	signed := Claims{Purpose: PurposeReply, TicketID: 9, UserID: 3, Expires: time.Unix(2e9, 0)}
	f.Add(keys.Sign(signed))
	f.Add("")
	f.Add("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := keys.Verify(PurposeReply, tok, time.Unix(1e9, 0))
		// Nothing but the one token signed here may verify.
		if err == nil && c != signed {
			t.Fatalf("accepted %q with claims %+v that were never signed", tok, c)
		}
	})
}

// TestReturnPathToken: a return path's token names its outbox mail, and is
// good for nothing else; a reply token is no return path.
func TestReturnPathToken(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	keys, _ := NewKeys("current-secret-0123456789")
	c := Claims{Purpose: PurposeBounce, TicketID: 42, UserID: 7, MailID: 123456, Expires: now.Add(30 * 24 * time.Hour)}
	tok := keys.Sign(c)
	addr := ReturnPath("bounces@example.com", tok)
	if len(addr[:strings.IndexByte(addr, '@')]) > 64 {
		t.Errorf("local part of %q is longer than RFC 5321 4.5.3.1.1 allows", addr)
	}
	got, ok := TokenFromAddress("bounces@example.com", addr)
	if !ok {
		t.Fatalf("no token in %q", addr)
	}
	if v, err := keys.Verify(PurposeBounce, got, now); err != nil || v != c {
		t.Fatalf("Verify = %+v, %v; want %+v", v, err, c)
	}
	if _, err := keys.Verify(PurposeReply, got, now); !errors.Is(err, ErrPurpose) {
		t.Errorf("a return path verified as a reply address: %v", err)
	}
	reply := keys.Sign(Claims{Purpose: PurposeReply, TicketID: 42, UserID: 7, Expires: now.Add(time.Hour)})
	if _, err := keys.Verify(PurposeBounce, reply, now); err == nil {
		t.Error("a reply token verified as a return path")
	}
}

// TestRedact: every token, in any case and wherever it sits in a line, is
// replaced; text that merely looks alike is kept.
func TestRedact(t *testing.T) {
	keys, _ := NewKeys("current-secret-0123456789")
	exp := time.Unix(1_800_000_000, 0)
	reply := keys.Sign(Claims{Purpose: PurposeReply, TicketID: 1, UserID: 2, Expires: exp})
	link := keys.Sign(Claims{Purpose: PurposeLink, TicketID: 123456789, UserID: 987654, Expires: exp})
	bounce := keys.Sign(Claims{Purpose: PurposeBounce, TicketID: 3, UserID: 4, MailID: 5, Expires: exp})
	for _, tc := range []struct{ in, want string }{
		{"rcpt=support+" + reply + "@example.com", "rcpt=support+[token]@example.com"},
		{"SUPPORT+" + strings.ToUpper(reply) + "@EXAMPLE.COM", "SUPPORT+[token]@EXAMPLE.COM"},
		{"/t/1?k=" + link + "&x=1", "/t/1?k=[token]&x=1"},
		{"<bounces+" + bounce + "@example.com> and support+" + reply + "@example.com",
			"<bounces+[token]@example.com> and support+[token]@example.com"},
		{"ticket-12.abcdefghijklmnop@example.com", "ticket-12.abcdefghijklmnop@example.com"},
		{"sha256 3f5a0c9e1b7d2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a", "sha256 3f5a0c9e1b7d2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a"},
		{"pneumonoultramicroscopicsilicovolcanoconiosis", "pneumonoultramicroscopicsilicovolcanoconiosis"},
		{"", ""},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestRedactingHandler: tokens leave the message, string, list, error and
// grouped attributes, and attributes added with With.
func TestRedactingHandler(t *testing.T) {
	keys, _ := NewKeys("current-secret-0123456789")
	tok := keys.Sign(Claims{Purpose: PurposeReply, TicketID: 1, UserID: 2, Expires: time.Unix(1_800_000_000, 0)})
	addr := "support+" + tok + "@example.com"
	var buf strings.Builder
	log := slog.New(RedactingHandler(slog.NewJSONHandler(&buf, nil))).With("cid", addr)
	log.Info("mail to "+addr, "rcpt", []string{addr, "ann@example.com"}, "to", addr,
		"err", fmt.Errorf("refused <%s>", addr), slog.Group("env", "mail_from", addr), "n", 3)
	out := buf.String()
	if strings.Contains(out, tok) {
		t.Fatalf("a token reached the log: %s", out)
	}
	if n := strings.Count(out, Redacted); n != 6 {
		t.Errorf("%d redactions, want 6: %s", n, out)
	}
	for _, kept := range []string{`"ann@example.com"`, `"n":3`} {
		if !strings.Contains(out, kept) {
			t.Errorf("%s lost: %s", kept, out)
		}
	}
}

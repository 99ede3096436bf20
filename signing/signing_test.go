package signing

import (
	"errors"
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

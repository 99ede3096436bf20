package inbound

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"ticketd/signing"
	"ticketd/tickets"
)

func TestAuthFailure(t *testing.T) {
	trusted := []string{"mx.ticketd.test"}
	for _, tc := range []struct {
		name   string
		fields []string
		want   string
	}{
		{"no fields", nil, ""},
		{"pass", []string{"mx.ticketd.test; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com"}, ""},
		{"dmarc fail", []string{"mx.ticketd.test; dmarc=fail (p=reject dis=none) header.from=example.com"},
			"dmarc=fail for example.com (reported by mx.ticketd.test)"},
		{"dmarc fail for a subdomain of the From domain", []string{"mx.ticketd.test; dmarc=fail header.from=mail.example.com"},
			"dmarc=fail for example.com (reported by mx.ticketd.test)"},
		{"dmarc fail for another domain", []string{"mx.ticketd.test; dmarc=fail header.from=other.example"}, ""},
		{"dkim fail by header.i", []string{"mx.ticketd.test 1; dkim=fail reason=\"signature did not verify\" header.i=@example.com"},
			"dkim=fail for example.com (reported by mx.ticketd.test)"},
		{"dkim fail for another signer", []string{"mx.ticketd.test; dkim=fail header.d=list.example; dkim=pass header.d=example.com"}, ""},
		{"dkim fail naming no domain counts", []string{"mx.ticketd.test; dkim=fail"}, "dkim=fail (reported by mx.ticketd.test)"},
		{"untrusted server", []string{"evil.example; dmarc=fail header.from=example.com"}, ""},
		{"trusted id in other case, comments and folding", []string{"MX.TicketD.test (our border MTA);\r\n\tdmarc (checked) = fail (p=quarantine) header.from = \"example.com\""},
			"dmarc=fail for example.com (reported by mx.ticketd.test)"},
		{"a forged pass does not cancel a failure", []string{"mx.ticketd.test; dmarc=pass header.from=example.com", "mx.ticketd.test; dmarc=fail header.from=example.com"},
			"dmarc=fail for example.com (reported by mx.ticketd.test)"},
		{"softfail and temperror are not failures", []string{"mx.ticketd.test; dkim=temperror header.d=example.com; spf=fail smtp.mailfrom=example.com; dmarc=none"}, ""},
		{"no result", []string{"mx.ticketd.test; none"}, ""},
		{"garbage", []string{";;;==(((\"", "", "mx.ticketd.test"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := authFailure(trustedVerdict(tc.fields, trusted, "ann@example.com")); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := authFailure(trustedVerdict([]string{"mx.ticketd.test; dmarc=fail header.from=example.com"}, nil, "ann@example.com")); got != "" {
		t.Errorf("with no trusted servers: %q", got)
	}
}

func TestDecide(t *testing.T) {
	mod := &tickets.User{ID: 1, Email: "mod@staff.example", Role: tickets.RoleModerator, Active: true}
	mod2 := &tickets.User{ID: 2, Email: "mod2@staff.example", Role: tickets.RoleModerator, Active: true}
	gone := &tickets.User{ID: 3, Email: "gone@staff.example", Role: tickets.RoleModerator, Active: false}
	req := &tickets.User{ID: 4, Email: "ann@example.com", Role: tickets.RoleUser, Active: true}
	valid := func(u *tickets.User) *replyToken {
		return &replyToken{claims: signing.Claims{Purpose: signing.PurposeReply, TicketID: 9, UserID: u.ID, Expires: time.Now().Add(time.Hour)}}
	}
	expired := &replyToken{claims: signing.Claims{UserID: mod.ID}, err: signing.ErrExpired}
	bad := &replyToken{err: signing.ErrSignature}
	type out struct {
		Attempt, OK bool
		Told        string
		Refusal     string
	}
	for _, tc := range []struct {
		name     string
		tok      *replyToken
		tokUser  *tickets.User
		from     *tickets.User
		authFail string
		want     out
	}{
		{"valid", valid(mod), mod, mod, "", out{true, true, "mod@staff.example", ""}},
		{"forged From", valid(mod), mod, nil, "", out{true, false, "mod@staff.example", refuseMismatch}},
		{"forged From of a known requester", valid(mod), mod, req, "", out{true, false, "mod@staff.example", refuseMismatch}},
		{"no token", nil, nil, mod, "", out{true, false, "mod@staff.example", refuseNoToken}},
		{"another moderator's token", valid(mod2), mod2, mod, "", out{true, false, "mod2@staff.example", refuseOtherPerson}},
		{"expired", expired, mod, mod, "", out{true, false, "mod@staff.example", refuseExpired}},
		{"tampered", bad, nil, mod, "", out{true, false, "mod@staff.example", refuseBadToken}},
		{"tampered from a stranger", bad, nil, nil, "", out{}},
		{"dmarc", valid(mod), mod, mod, refuseAuthFailure + " (dmarc=fail)", out{true, false, "mod@staff.example", refuseAuthFailure + " (dmarc=fail)"}},
		{"not authenticated", valid(mod), mod, mod, refuseNotAuth, out{true, false, "mod@staff.example", refuseNotAuth}},
		{"a forged From is refused whatever DNS says", valid(mod), mod, nil, deferRefusal, out{true, false, "mod@staff.example", refuseMismatch}},
		{"requester's own token", valid(req), req, req, "", out{}},
		{"staff From on the requester's token", valid(req), req, mod, "", out{true, false, "mod@staff.example", refuseOtherPerson}},
		{"inactive staff is nobody's authority", valid(gone), gone, gone, "", out{}},
		{"token of a deleted user", valid(mod), nil, mod, "", out{true, false, "mod@staff.example", refuseBadToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := decide(tc.tok, tc.tokUser, tc.from, tc.authFail)
			got := out{Attempt: a.attempt, OK: a.ok, Refusal: a.refusal}
			if a.user != nil {
				got.Told = a.user.Email
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestInternalMarker(t *testing.T) {
	for _, tc := range []struct {
		name, body, rest string
		internal         bool
	}{
		{"note:", "note:\nsecret", "secret", true},
		{"#note", "  #Note \n\nsecret", "secret", true},
		{"#internal", "#internal\nsecret", "secret", true},
		{"note with text is no marker", "note: this is text", "note: this is text", false},
		{"ordinary", "Hello\nnote:", "Hello\nnote:", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rest, internal := internalMarker(tc.body)
			if rest != tc.rest || internal != tc.internal {
				t.Errorf("got %q %v", rest, internal)
			}
		})
	}
}

func FuzzAuthFailure(f *testing.F) {
	for _, s := range []string{
		"mx.ticketd.test; dmarc=fail (p=reject) header.from=example.com",
		"mx.ticketd.test 1; dkim=fail reason=\"x\\\"y\" header.i=@example.com; spf=pass",
		"MX.ticketd.test (c (nested) c); none",
		"\"mx.ticketd.test\"; dkim/1 = fail header.d=example.com",
		"(((;;;",
	} {
		f.Add(s, "example.com")
	}
	f.Fuzz(func(t *testing.T, field, domain string) {
		got := authFailure(trustedVerdict([]string{field}, []string{"mx.ticketd.test"}, "a@"+domain))
		if got != "" && !strings.Contains(got, "=fail") {
			t.Errorf("authFailure(%q) = %q", field, got)
		}
		if authFailure(trustedVerdict([]string{field}, nil, "a@"+domain)) != "" {
			t.Error("a failure with no trusted server")
		}
	})
}

// Package signing makes and checks the tokens ticketd hands out: the token
// in a signed reply address (support+<token>@domain), which proves which
// ticket and which person a reply comes from, the token in a link to a
// ticket's page, and the token in the return path of every mail ticketd
// sends (bounces+<token>@domain), which proves that a delivery report is
// about a mail ticketd sent and to whom. A token binds a purpose, a ticket,
// a user, an expiry (and for a return path the outbox mail) with an
// HMAC-SHA256 keyed by TICKETD_SECRET. Tokens are keys to a ticket: they
// never reach a log (RedactingHandler).
//
// Tokens are lower-case base32, because mail systems may change the case of
// an address's local part (RFC 5321 2.4 lets them treat it as case-sensitive,
// and some fold it anyway). Keys can be rotated: tokens are signed with the
// first key and verified with any key whose id they carry.
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Purpose keeps a token made for one use from being accepted for another.
type Purpose byte

const (
	PurposeReply  Purpose = 'r' // a reply address
	PurposeLink   Purpose = 'l' // a link to a ticket's page
	PurposeBounce Purpose = 'b' // the return path of one outgoing mail (VERP)
)

// Claims is what a token proves.
type Claims struct {
	Purpose  Purpose
	TicketID int64     // 0: a mail outside any ticket (PurposeBounce only)
	UserID   int64     // 0: a recipient ticketd knows no user for (PurposeBounce only)
	Expires  time.Time // whole seconds
	// MailID is the mail_outbox row a return path was made for; only
	// PurposeBounce tokens carry it.
	MailID int64
}

var (
	ErrMalformed = errors.New("signing: malformed token")
	ErrSignature = errors.New("signing: bad signature")
	ErrExpired   = errors.New("signing: token expired")
	ErrPurpose   = errors.New("signing: token made for another purpose")
)

const (
	version = 1
	macLen  = 12 // 96 bits
)

var enc = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

type key struct {
	id  byte
	mac []byte
}

// Keys signs with the first secret and verifies with all of them.
type Keys struct {
	keys []key
}

// NewKeys derives signing keys from secrets, newest first. Each secret must
// have at least 16 bytes.
func NewKeys(secrets ...string) (*Keys, error) {
	if len(secrets) == 0 {
		return nil, errors.New("signing: no secret")
	}
	k := &Keys{}
	for i, s := range secrets {
		if len(s) < 16 {
			return nil, fmt.Errorf("signing: secret %d is shorter than 16 bytes", i+1)
		}
		sum := sha256.Sum256([]byte("ticketd key id\x00" + s))
		m := hmac.New(sha256.New, []byte(s))
		m.Write([]byte("ticketd token key v1"))
		k.keys = append(k.keys, key{id: sum[0], mac: m.Sum(nil)})
	}
	return k, nil
}

func (k key) sum(payload []byte) []byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write(payload)
	return m.Sum(nil)[:macLen]
}

// Sign makes a token for c.
func (k *Keys) Sign(c Claims) string {
	first := k.keys[0]
	p := []byte{version, first.id, byte(c.Purpose)}
	p = binary.AppendUvarint(p, uint64(c.TicketID))
	p = binary.AppendUvarint(p, uint64(c.UserID))
	p = binary.AppendUvarint(p, uint64(c.Expires.Unix()))
	if c.Purpose == PurposeBounce {
		p = binary.AppendUvarint(p, uint64(c.MailID))
	}
	return enc.EncodeToString(append(p, first.sum(p)...))
}

// Verify checks a token made for purpose and returns its claims. The checks
// run in an order that tells nothing about the key: shape, signature,
// purpose, then expiry against now.
func (k *Keys) Verify(purpose Purpose, token string, now time.Time) (Claims, error) {
	raw, err := enc.DecodeString(strings.ToLower(token))
	if err != nil || len(raw) < 3+3+macLen || raw[0] != version {
		return Claims{}, ErrMalformed
	}
	payload, mac := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	ok := false
	for _, key := range k.keys {
		if key.id == payload[1] && hmac.Equal(mac, key.sum(payload)) {
			ok = true
			break
		}
	}
	if !ok {
		return Claims{}, ErrSignature
	}
	c := Claims{Purpose: Purpose(payload[2])}
	rest := payload[3:]
	vals := make([]uint64, 3, 4)
	if c.Purpose == PurposeBounce {
		vals = vals[:4]
	}
	for i := range vals {
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return Claims{}, ErrMalformed
		}
		vals[i], rest = v, rest[n:]
	}
	if len(rest) != 0 {
		return Claims{}, ErrMalformed
	}
	c.TicketID, c.UserID, c.Expires = int64(vals[0]), int64(vals[1]), time.Unix(int64(vals[2]), 0)
	if len(vals) == 4 {
		c.MailID = int64(vals[3])
	}
	if c.Purpose != purpose {
		return c, ErrPurpose
	}
	if !now.Before(c.Expires) {
		return c, ErrExpired
	}
	return c, nil
}

// ReplyAddress builds the signed reply address for base (support@example.com)
// by sub-addressing: support+<token>@example.com.
func ReplyAddress(base, token string) string {
	local, domain, ok := strings.Cut(base, "@")
	if !ok {
		return base
	}
	return local + "+" + token + "@" + domain
}

// BounceMailbox is the mailbox whose sub-addresses are ticketd's return
// paths, by default: bounces@ at the support address's domain.
func BounceMailbox(supportAddress string) string {
	_, domain, _ := strings.Cut(supportAddress, "@")
	return "bounces@" + strings.ToLower(domain)
}

// ReturnPath builds the return path (RFC 5321 MAIL FROM) of one outgoing
// mail on base (bounces@example.com) by sub-addressing, the way variable
// envelope return paths (VERP) do: bounces+<token>@example.com. Delivery
// reports go to it (RFC 3464 2.2, RFC 5321 4.5.5).
func ReturnPath(base, token string) string { return ReplyAddress(base, token) }

// TokenFromAddress returns the token of a sub-address of base: for base
// support@example.com, "support+abc@Example.com" gives "abc". Addresses of
// another mailbox or domain give ok false.
func TokenFromAddress(base, addr string) (token string, ok bool) {
	bLocal, bDomain, ok1 := strings.Cut(strings.ToLower(base), "@")
	at := strings.LastIndexByte(addr, '@')
	if !ok1 || at < 0 || !strings.EqualFold(addr[at+1:], bDomain) {
		return "", false
	}
	local := strings.ToLower(addr[:at])
	prefix := bLocal + "+"
	if !strings.HasPrefix(local, prefix) || len(local) == len(prefix) {
		return "", false
	}
	return local[len(prefix):], true
}

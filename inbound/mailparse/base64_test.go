package mailparse

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

// decodeBase64Chunks is the reading decodeBase64Lenient keeps: base64
// characters (and the base64url ones) gathered into chunks that padding
// ends, each decoded whole, a lone trailing character dropped.
func decodeBase64Chunks(b []byte) []byte {
	var out, chunk []byte
	flush := func() {
		if len(chunk)%4 == 1 {
			chunk = chunk[:len(chunk)-1]
		}
		dst := make([]byte, base64.RawStdEncoding.DecodedLen(len(chunk)))
		n, _ := base64.RawStdEncoding.Decode(dst, chunk)
		out = append(out, dst[:n]...)
		chunk = chunk[:0]
	}
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
			chunk = append(chunk, c)
		case c == '-':
			chunk = append(chunk, '+')
		case c == '_':
			chunk = append(chunk, '/')
		case c == '=':
			flush()
		}
	}
	flush()
	return out
}

// base64Clean reports whether b holds only base64 characters and white space.
func base64Clean(b []byte) bool {
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/', c == '=', c == '\n', c == '\r', c == ' ', c == '\t':
		default:
			return false
		}
	}
	return true
}

func TestDecodeBase64Lenient(t *testing.T) {
	for name, in := range map[string]string{
		"empty":             "",
		"plain":             "aGVsbG8gd29ybGQK",
		"lines":             "aGVs\r\nbG8g\nd29y bGQK\n",
		"padding":           "aGVsbG8=",
		"concatenated":      "aGVsbG8=IHdvcmxk",
		"no padding":        "aGVsbG8",
		"one left over":     "aGVsbG8gd",
		"base64url":         "-_-_",
		"stray characters":  "aG*Vs!bG\x008=",
		"padding in middle": "aG==Vs==bG8=",
	} {
		if got, want := decodeBase64Lenient([]byte(in)), decodeBase64Chunks([]byte(in)); !bytes.Equal(got, want) {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_=\r\n \t*."
	for i := range 2000 {
		in := make([]byte, r.IntN(200))
		for j := range in {
			in[j] = chars[r.IntN(len(chars))]
		}
		got, clean := decodeBase64(in)
		if want := decodeBase64Chunks(in); !bytes.Equal(got, want) {
			t.Fatalf("input %d %q: %x, want %x", i, in, got, want)
		}
		if want := base64Clean(in); clean != want {
			t.Fatalf("input %d %q: clean %v, want %v", i, in, clean, want)
		}
	}
}

func BenchmarkDecodeBase64Lenient(b *testing.B) {
	raw := make([]byte, 1<<20)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	enc := []byte(base64.StdEncoding.EncodeToString(raw))
	var lines []byte
	for len(enc) > 76 {
		lines = append(append(lines, enc[:76]...), '\r', '\n')
		enc = enc[76:]
	}
	lines = append(lines, enc...)
	b.SetBytes(int64(len(lines)))
	b.ReportAllocs()
	for b.Loop() {
		decodeBase64Lenient(lines)
	}
}

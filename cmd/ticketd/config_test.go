package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPListen != "127.0.0.1:8080" || c.SMTPListen != "127.0.0.1:2525" || c.SupportAddress != "support@localhost" ||
		c.LLMProvider != "rules" || c.SMTPMaxMessageBytes != 25<<20 || c.ReplyTokenTTL != 2160*time.Hour || c.SecureCookies {
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.requireServe(); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), "TICKETD_SECRET") {
		t.Fatalf("serve without a database or secret: %v", err)
	}
}

func TestLoadConfigNamesTheBadVariable(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"listen address", map[string]string{"HTTP_LISTEN": "8080"}, "HTTP_LISTEN"},
		{"duration", map[string]string{"REPLY_TOKEN_TTL": "forever"}, "REPLY_TOKEN_TTL"},
		{"provider", map[string]string{"LLM_PROVIDER": "oracle"}, "LLM_PROVIDER"},
		{"short secret", map[string]string{"TICKETD_SECRET": "short"}, "TICKETD_SECRET"},
		{"relay scheme", map[string]string{"SMTP_RELAY_URL": "http://relay"}, "SMTP_RELAY_URL"},
		{"number", map[string]string{"SMTP_MAX_RECIPIENTS": "0"}, "SMTP_MAX_RECIPIENTS"},
		{"half a certificate", map[string]string{"SMTP_TLS_CERT": "/c.pem"}, "SMTP_TLS_KEY"},
		{"missing secret file", map[string]string{"TICKETD_SECRET_FILE": "/nonexistent/secret"}, "TICKETD_SECRET_FILE"},
		{"previous key without the current", map[string]string{"TICKETD_SECRET_PREVIOUS": "previous-secret-0123456789"}, "TICKETD_SECRET_PREVIOUS"},
		{"no automatic mail at all", map[string]string{"AUTO_REPLY_LIMIT_PER_HOUR": "0"}, "AUTO_REPLY_LIMIT_PER_HOUR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestLoadConfigSecretsFromFilesAndRotation(t *testing.T) {
	dir := t.TempDir()
	cur := filepath.Join(dir, "cur")
	os.WriteFile(cur, []byte("current-secret-0123456789\n"), 0o600)
	c, err := LoadConfig(env(map[string]string{
		"TICKETD_SECRET_FILE":     cur,
		"TICKETD_SECRET_PREVIOUS": "previous-secret-0123456789",
		"TICKETD_BASE_URL":        "https://help.example.com",
		"TICKETD_DOMAIN":          "example.com",
		"IMAP_URL":                "imaps://a:b@mail/INBOX, imap://c:d@mail/Support",
		"LLM_PROVIDER":            "openai",
		"OPENAI_API_KEY":          "sk-test",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Secrets) != 2 || c.Secrets[0] != "current-secret-0123456789" || c.Secrets[1] != "previous-secret-0123456789" {
		t.Fatalf("secrets: %q", c.Secrets)
	}
	if !c.SecureCookies || c.SupportAddress != "support@example.com" || len(c.IMAPURLs) != 2 || c.LLMAPIKey != "sk-test" ||
		c.InngestServeHost != "https://help.example.com" {
		t.Fatalf("config: %+v", c)
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	var b strings.Builder
	usage(&b)
	for _, s := range settings {
		if !strings.Contains(b.String(), s.name) {
			t.Errorf("help does not mention %s", s.name)
		}
	}
}

func TestREADMEListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings {
		if !strings.Contains(string(readme), "`"+s.name+"`") {
			t.Errorf("README.md does not document %s", s.name)
		}
	}
}

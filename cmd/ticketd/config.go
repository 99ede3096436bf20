package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"ticketd/metrics"
	"ticketd/tickets"
	"ticketd/workflows/triage"
)

// Config is every setting of ticketd, read once from the environment. It is
// the only place that reads the environment.
type Config struct {
	DatabaseURL string

	Domain         string
	SupportAddress string
	SupportAliases []string
	SupportName    string
	Secrets        []string // newest first: TICKETD_SECRET, then TICKETD_SECRET_PREVIOUS
	secretSet      bool     // TICKETD_SECRET is among Secrets
	BaseURL        string

	HTTPListen              string
	SecureCookies           bool
	ModeratorsSeeUnassigned bool
	TrustProxy              bool

	SMTPListen          string
	SMTPMaxMessageBytes int64
	SMTPMaxRecipients   int
	SMTPMaxSessions     int
	SMTPMaxPerClient    int
	SMTPFirstCommand    time.Duration
	SMTPTLSCert         string
	SMTPTLSKey          string
	SMTPAuthUsername    string
	SMTPAuthPassword    string
	SMTPAuthRequired    bool
	TrustedAuthServIDs  []string
	DNSResolver         string
	AuthservID          string
	CommandsRequireAuth bool
	commandsAuthSet     bool // COMMANDS_REQUIRE_AUTH was set, so dev keeps it
	ReopenAfter         time.Duration
	MaxParticipants     int
	QuarantineAutoGen   bool
	QuarantineBulk      bool

	SMTPRelayURL          string
	SMTPHeloName          string
	RelayRetryMax         time.Duration
	RelayLease            time.Duration
	Maildir               string
	AutoReplyLimitPerHour int
	ReplyTokenTTL         time.Duration

	IMAPURLs         []string
	IMAPMoveTo       string
	IMAPPollInterval time.Duration
	IMAPCAFile       string

	LLMProvider    string
	LLMModel       string
	LLMBaseURL     string
	LLMAPIKey      string
	LLMTimeout     time.Duration
	LLMConcurrency int

	FirstResponseAllowedDomains []string

	InngestDev        string
	InngestBaseURL    string
	InngestEventKey   string
	InngestSigningKey string
	InngestServeHost  string
	// InngestListen is the loopback listener of the dev server's unsigned
	// calls; see inngestListen.
	InngestListen       string
	inngestListenSet    bool // INNGEST_LISTEN was given (off included)
	inngestServeHostSet bool // INNGEST_SERVE_HOST was given

	LogLevel  string
	LogFormat string

	DataDir     string // ticketd dev only
	InngestBin  string // ticketd dev only
	InngestPort int    // ticketd dev only
}

// setting describes one environment variable.
type setting struct {
	name   string
	def    string
	secret bool // may come from NAME_FILE; never logged
	help   string
	set    func(c *Config, v string) error
}

func str(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *p(c) = v; return nil }
}

func list(p func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		*p(c) = splitList(v)
		return nil
	}
}

func integer(p func(*Config) *int, min int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < min {
			return fmt.Errorf("want a whole number of at least %d, got %q", min, v)
		}
		*p(c) = n
		return nil
	}
}

func duration(p func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return fmt.Errorf("want a duration such as 30s, 15m or 2160h, got %q", v)
		}
		*p(c) = d
		return nil
	}
}

func boolean(p func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", v)
		}
		*p(c) = b
		return nil
	}
}

func listenAddr(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" || v == "off" {
			*p(c) = ""
			return nil
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("want host:port or off, got %q", v)
		}
		*p(c) = v
		return nil
	}
}

func hostPort(p func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			return fmt.Errorf("want host:port, such as 127.0.0.1:53, got %q", v)
		}
		*p(c) = v
		return nil
	}
}

func urlOf(schemes ...string) func(p func(*Config) *string) func(*Config, string) error {
	return func(p func(*Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error {
			if v == "" {
				*p(c) = ""
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || !contains(schemes, u.Scheme) {
				return fmt.Errorf("want a URL with scheme %s", strings.Join(schemes, ", "))
			}
			*p(c) = v
			return nil
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		out = append(out, strings.TrimSpace(f))
	}
	return out
}

var settings = []setting{
	{name: "DATABASE_URL", secret: true, help: "PostgreSQL 15+ connection string (required for serve and migrate; dev runs its own cluster)",
		set: str(func(c *Config) *string { return &c.DatabaseURL })},
	{name: "TICKETD_DOMAIN", def: "localhost", help: "the mail domain ticketd answers for",
		set: str(func(c *Config) *string { return &c.Domain })},
	{name: "SUPPORT_ADDRESS", help: "the support address; default support@TICKETD_DOMAIN",
		set: str(func(c *Config) *string { return &c.SupportAddress })},
	{name: "SUPPORT_NAME", def: "Support", help: "the name on mail ticketd sends (\"Mo via Support\")",
		set: str(func(c *Config) *string { return &c.SupportName })},
	{name: "SUPPORT_ALIASES", help: "other addresses ticketd accepts mail for, comma-separated",
		set: list(func(c *Config) *[]string { return &c.SupportAliases })},
	{name: "TICKETD_SECRET", secret: true, help: "key for signed reply addresses and links, at least 16 bytes (required for serve)",
		set: func(c *Config, v string) error {
			c.Secrets, c.secretSet = append([]string{v}, c.Secrets...), true
			return nil
		}},
	{name: "TICKETD_SECRET_PREVIOUS", secret: true, help: "the previous key, still accepted while mails signed with it are answered",
		set: func(c *Config, v string) error { c.Secrets = append(c.Secrets, v); return nil }},
	{name: "TICKETD_BASE_URL", def: "http://127.0.0.1:8080", help: "the web address people reach ticketd at, used in mailed links",
		set: urlOf("http", "https")(func(c *Config) *string { return &c.BaseURL })},
	{name: "HTTP_LISTEN", def: "127.0.0.1:8080", help: "address of the web pages, the API, /healthz, /readyz, /metrics and /api/inngest",
		set: listenAddr(func(c *Config) *string { return &c.HTTPListen })},
	{name: "SECURE_COOKIES", help: "mark session cookies Secure; default true when TICKETD_BASE_URL is https",
		set: boolean(func(c *Config) *bool { return &c.SecureCookies })},
	{name: "MODERATORS_SEE_UNASSIGNED", def: "false", help: "let moderators see and take unassigned tickets",
		set: boolean(func(c *Config) *bool { return &c.ModeratorsSeeUnassigned })},
	{name: "TICKETD_TRUST_PROXY", def: "false", help: "take the client address from X-Forwarded-For (behind a reverse proxy), for sign-in limits",
		set: boolean(func(c *Config) *bool { return &c.TrustProxy })},
	{name: "SMTP_LISTEN", def: "127.0.0.1:2525", help: "address of the SMTP receiver (port 25 behind the MX in production), or off",
		set: listenAddr(func(c *Config) *string { return &c.SMTPListen })},
	{name: "SMTP_MAX_MESSAGE_BYTES", def: "26214400", help: "largest mail accepted (announced by SIZE; 552 above it)",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1024 {
				return fmt.Errorf("want a number of bytes of at least 1024, got %q", v)
			}
			c.SMTPMaxMessageBytes = n
			return nil
		}},
	{name: "SMTP_MAX_RECIPIENTS", def: "50", help: "recipients per mail",
		set: integer(func(c *Config) *int { return &c.SMTPMaxRecipients }, 1)},
	{name: "SMTP_MAX_SESSIONS", def: "100", help: "concurrent SMTP sessions",
		set: integer(func(c *Config) *int { return &c.SMTPMaxSessions }, 1)},
	{name: "SMTP_MAX_SESSIONS_PER_CLIENT", def: "20", help: "concurrent SMTP sessions from one client address (an IPv4 address or an IPv6 /64); more get 421",
		set: integer(func(c *Config) *int { return &c.SMTPMaxPerClient }, 1)},
	{name: "SMTP_FIRST_COMMAND_TIMEOUT", def: "30s", help: "how long a client may stay silent after the greeting before its session ends (421)",
		set: duration(func(c *Config) *time.Duration { return &c.SMTPFirstCommand })},
	{name: "SMTP_TLS_CERT", help: "PEM certificate file; with SMTP_TLS_KEY, the receiver offers STARTTLS",
		set: str(func(c *Config) *string { return &c.SMTPTLSCert })},
	{name: "SMTP_TLS_KEY", help: "PEM key file for SMTP_TLS_CERT",
		set: str(func(c *Config) *string { return &c.SMTPTLSKey })},
	{name: "SMTP_AUTH_USERNAME", help: "optional AUTH PLAIN user for submission from trusted hosts",
		set: str(func(c *Config) *string { return &c.SMTPAuthUsername })},
	{name: "SMTP_AUTH_PASSWORD", secret: true, help: "password for SMTP_AUTH_USERNAME",
		set: str(func(c *Config) *string { return &c.SMTPAuthPassword })},
	{name: "SMTP_AUTH_REQUIRED", def: "false", help: "refuse mail from clients that did not authenticate (a submission port for trusted hosts)",
		set: boolean(func(c *Config) *bool { return &c.SMTPAuthRequired })},
	{name: "TRUSTED_AUTHSERV_IDS", help: "for mail taken by IMAP: authserv-ids whose Authentication-Results headers are believed, as the SMTP receiver's own SPF, DKIM and DMARC checks are",
		set: list(func(c *Config) *[]string { return &c.TrustedAuthServIDs })},
	{name: "DNS_RESOLVER", help: "host:port of the DNS server the SPF, DKIM and DMARC checks ask; default the system's (/etc/resolv.conf)",
		set: hostPort(func(c *Config) *string { return &c.DNSResolver })},
	{name: "AUTHSERV_ID", help: "the name ticketd writes into the Authentication-Results of mail it checked (RFC 8601); such fields arriving with it are removed; default TICKETD_DOMAIN",
		set: str(func(c *Config) *string { return &c.AuthservID })},
	{name: "COMMANDS_REQUIRE_AUTH", def: "true", help: "mailed commands and staff replies need an authenticated From (DMARC pass, or with no DMARC record an aligned DKIM or SPF pass); false for closed networks: the signed reply address and a matching From suffice (ticketd dev: false)",
		set: boolean(func(c *Config) *bool { return &c.CommandsRequireAuth })},
	{name: "MAX_PARTICIPANTS", def: "20", help: "people on a ticket at most, its requester included; further addresses of the opening mail are listed on the ticket as not added, and get no mail",
		set: integer(func(c *Config) *int { return &c.MaxParticipants }, 1)},
	{name: "REOPEN_AFTER", def: "0", help: "a reply to a ticket completed longer ago than this opens a new linked ticket; 0 always reopens",
		set: duration(func(c *Config) *time.Duration { return &c.ReopenAfter })},
	{name: "QUARANTINE_AUTO_GENERATED", def: "false", help: "hold auto-generated mail that answers nothing (alerts, forms) in the quarantine instead of opening a ticket",
		set: boolean(func(c *Config) *bool { return &c.QuarantineAutoGen })},
	{name: "QUARANTINE_BULK", def: "false", help: "hold bulk and list mail in the quarantine instead of opening a ticket",
		set: boolean(func(c *Config) *bool { return &c.QuarantineBulk })},
	{name: "SMTP_RELAY_URL", secret: true, help: "outgoing relay: smtp://user:pass@host:587 (STARTTLS) or smtps://host:465; empty writes mail to MAILDIR",
		set: urlOf("smtp", "smtps")(func(c *Config) *string { return &c.SMTPRelayURL })},
	{name: "SMTP_HELO_NAME", help: "the name ticketd gives the relay in EHLO; default the host name",
		set: str(func(c *Config) *string { return &c.SMTPHeloName })},
	{name: "SMTP_RELAY_RETRY_MAX", def: "1h", help: "longest wait between delivery attempts of a mail the relay refused for now (waits double from one minute up to this)",
		set: duration(func(c *Config) *time.Duration { return &c.RelayRetryMax })},
	{name: "SMTP_RELAY_LEASE", def: "10m", help: "how long a replica's claim on an outgoing mail lasts: mail a crashed replica had claimed goes out after it (one delivery may take a quarter of it, at most 2m)",
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 20*time.Second {
				return fmt.Errorf("want a duration of 20s or more, got %q", v)
			}
			c.RelayLease = d
			return nil
		}},
	{name: "MAILDIR", help: "Maildir that receives outgoing mail when no relay is set (dev: .ticketd/outbox)",
		set: str(func(c *Config) *string { return &c.Maildir })},
	{name: "AUTO_REPLY_LIMIT_PER_HOUR", def: "10", help: "automatic mails to one address per hour at most",
		set: integer(func(c *Config) *int { return &c.AutoReplyLimitPerHour }, 1)},
	{name: "REPLY_TOKEN_TTL", def: "2160h", help: "how long a signed reply address stays valid",
		set: duration(func(c *Config) *time.Duration { return &c.ReplyTokenTTL })},
	{name: "IMAP_URL", secret: true, help: "mailboxes to poll, space- or comma-separated: imaps://user:pass@host/INBOX or imap:// (STARTTLS)",
		set: list(func(c *Config) *[]string { return &c.IMAPURLs })},
	{name: "IMAP_MOVE_TO", help: "folder to move fetched mail into; empty marks it \\Seen",
		set: str(func(c *Config) *string { return &c.IMAPMoveTo })},
	{name: "IMAP_POLL_INTERVAL", def: "1m", help: "how often to poll a server that lacks IDLE",
		set: duration(func(c *Config) *time.Duration { return &c.IMAPPollInterval })},
	{name: "IMAP_CA_FILE", help: "PEM file of the CA that signed the IMAP servers' certificates, when it is a private one",
		set: str(func(c *Config) *string { return &c.IMAPCAFile })},
	{name: "LLM_PROVIDER", def: "rules", help: "triage engine: openai, gemini, anthropic, ollama or rules (offline)",
		set: func(c *Config, v string) error {
			v = strings.ToLower(v)
			if !contains([]string{"openai", "gemini", "anthropic", "ollama", "rules"}, v) {
				return fmt.Errorf("want openai, gemini, anthropic, ollama or rules, got %q", v)
			}
			c.LLMProvider = v
			return nil
		}},
	{name: "LLM_MODEL", help: "model name for the provider",
		set: str(func(c *Config) *string { return &c.LLMModel })},
	{name: "LLM_BASE_URL", help: "base URL of an OpenAI-compatible server (vLLM, llama.cpp, LM Studio, Ollama), or Ollama's URL",
		set: urlOf("http", "https")(func(c *Config) *string { return &c.LLMBaseURL })},
	{name: "LLM_API_KEY", secret: true, help: "the provider's API key; default OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY by provider",
		set: str(func(c *Config) *string { return &c.LLMAPIKey })},
	{name: "LLM_TIMEOUT", def: "60s", help: "bound on one LLM call",
		set: duration(func(c *Config) *time.Duration { return &c.LLMTimeout })},
	{name: "LLM_CONCURRENCY", def: "4", help: "LLM calls at once across all replicas (Inngest flow control)",
		set: integer(func(c *Config) *int { return &c.LLMConcurrency }, 1)},
	{name: "FIRST_RESPONSE_ALLOWED_DOMAINS", help: "domains (and their subdomains) whose links and mail addresses a model's first response to a requester may hold; a first response with any other link or address, or with a phone number, is not sent",
		set: func(c *Config, v string) error {
			for _, d := range splitList(v) {
				d = strings.ToLower(strings.TrimPrefix(strings.TrimSuffix(d, "."), "."))
				if d == "" || strings.ContainsAny(d, "/@: ") || !strings.Contains(d, ".") {
					return fmt.Errorf("want domains such as example.com, help.example.com; got %q", d)
				}
				c.FirstResponseAllowedDomains = append(c.FirstResponseAllowedDomains, d)
			}
			return nil
		}},
	{name: "INNGEST_DEV", help: "URL of an Inngest dev server (http://127.0.0.1:8288); unset for Inngest Cloud",
		set: str(func(c *Config) *string { return &c.InngestDev })},
	{name: "INNGEST_BASE_URL", help: "URL of a self-hosted Inngest server (inngest start)",
		set: urlOf("http", "https")(func(c *Config) *string { return &c.InngestBaseURL })},
	{name: "INNGEST_EVENT_KEY", secret: true, help: "Inngest event key (production)",
		set: str(func(c *Config) *string { return &c.InngestEventKey })},
	{name: "INNGEST_SIGNING_KEY", secret: true, help: "Inngest signing key (production)",
		set: str(func(c *Config) *string { return &c.InngestSigningKey })},
	{name: "INNGEST_SERVE_HOST", help: "the URL Inngest calls back to reach /api/inngest; default TICKETD_BASE_URL (with INNGEST_DEV: INNGEST_LISTEN)",
		set: func(c *Config, v string) error {
			c.inngestServeHostSet = true
			return urlOf("http", "https")(func(c *Config) *string { return &c.InngestServeHost })(c, v)
		}},
	{name: "INNGEST_LISTEN", help: "with INNGEST_DEV, a loopback address (host:port) that alone serves the dev server's unsigned calls to /api/inngest; default " + defaultInngestListen + " with INNGEST_DEV, off otherwise",
		set: func(c *Config, v string) error {
			c.inngestListenSet = true
			return listenAddr(func(c *Config) *string { return &c.InngestListen })(c, v)
		}},
	{name: "LOG_LEVEL", def: "info", help: "debug, info, warn or error",
		set: func(c *Config, v string) error {
			if !contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(v)) {
				return fmt.Errorf("want debug, info, warn or error, got %q", v)
			}
			c.LogLevel = strings.ToLower(v)
			return nil
		}},
	{name: "LOG_FORMAT", def: "auto", help: "text, json, or auto (text on a terminal, JSON otherwise)",
		set: func(c *Config, v string) error {
			if !contains([]string{"auto", "text", "json"}, v) {
				return fmt.Errorf("want auto, text or json, got %q", v)
			}
			c.LogFormat = v
			return nil
		}},
	{name: "TICKETD_DATA_DIR", def: ".ticketd", help: "dev: where the private PostgreSQL cluster, the outbox Maildir and the dev secret live",
		set: str(func(c *Config) *string { return &c.DataDir })},
	{name: "INNGEST_BIN", def: "bin/inngest", help: "dev: the Inngest CLI (make inngest builds it)",
		set: str(func(c *Config) *string { return &c.InngestBin })},
	{name: "INNGEST_PORT", def: "8288", help: "dev: port of the Inngest dev server",
		set: integer(func(c *Config) *int { return &c.InngestPort }, 1)},
}

// LoadConfig reads every setting through getenv (os.Getenv outside tests).
// A secret may come from NAME_FILE, a file whose contents (trimmed) are the
// value. The error names the variable.
func LoadConfig(getenv func(string) string) (Config, error) {
	var c Config
	var errs []error
	for _, s := range settings {
		v := getenv(s.name)
		if s.secret && v == "" {
			if path := getenv(s.name + "_FILE"); path != "" {
				b, err := os.ReadFile(path)
				if err != nil {
					errs = append(errs, fmt.Errorf("%s_FILE: %w", s.name, err))
					continue
				}
				v = strings.TrimSpace(string(b))
			}
		}
		if v == "" {
			v = s.def
		}
		if v == "" && s.name != "SMTP_LISTEN" && s.name != "HTTP_LISTEN" {
			continue
		}
		if err := s.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	if c.SupportAddress == "" {
		c.SupportAddress = "support@" + c.Domain
	}
	c.SupportAddress = tickets.NormalizeEmail(c.SupportAddress)
	if !strings.Contains(c.SupportAddress, "@") {
		errs = append(errs, fmt.Errorf("SUPPORT_ADDRESS: want an address such as support@example.com, got %q", c.SupportAddress))
	}
	c.commandsAuthSet = getenv("COMMANDS_REQUIRE_AUTH") != ""
	if getenv("SECURE_COOKIES") == "" {
		c.SecureCookies = strings.HasPrefix(c.BaseURL, "https://")
	}
	if c.LLMAPIKey == "" {
		c.LLMAPIKey = getenv(map[string]string{"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
			"gemini": "GEMINI_API_KEY", "ollama": "", "rules": ""}[c.LLMProvider])
	}
	if c.InngestServeHost == "" {
		c.InngestServeHost = c.BaseURL
	}
	if c.AuthservID == "" {
		c.AuthservID = c.Domain
	}
	if c.SMTPAuthRequired && c.SMTPAuthUsername == "" {
		errs = append(errs, errors.New("SMTP_AUTH_REQUIRED: needs SMTP_AUTH_USERNAME and SMTP_AUTH_PASSWORD"))
	}
	if (c.SMTPTLSCert == "") != (c.SMTPTLSKey == "") {
		errs = append(errs, errors.New("SMTP_TLS_CERT and SMTP_TLS_KEY: set both or neither"))
	}
	if len(c.Secrets) > 0 && !c.secretSet {
		// The previous key would sign every new address and link.
		errs = append(errs, errors.New("TICKETD_SECRET_PREVIOUS: set only together with TICKETD_SECRET, the current key"))
	}
	for i, s := range c.Secrets {
		if len(s) < 16 {
			name := "TICKETD_SECRET"
			if i > 0 {
				name = "TICKETD_SECRET_PREVIOUS"
			}
			errs = append(errs, fmt.Errorf("%s: want at least 16 bytes", name))
		}
	}
	return c, errors.Join(errs...)
}

// defaultInngestListen is where the dev server's calls are served when
// INNGEST_DEV is set and INNGEST_LISTEN is not.
const defaultInngestListen = "127.0.0.1:8289"

// inngestListen is the address of the listener for Inngest's calls, "" for
// none: INNGEST_LISTEN when given, else defaultInngestListen when the
// workflows run on the dev server (whose calls are unsigned, and may come
// from loopback alone).
func (c Config) inngestListen(devServer bool) string {
	if c.inngestListenSet || !devServer {
		return c.InngestListen
	}
	return defaultInngestListen
}

// loopbackAddr reports whether a listen address (host:port) binds to
// loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireServe checks what serve needs beyond what every command needs.
func (c Config) requireServe() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL: required (or run `ticketd dev` for a local stack)"))
	}
	if len(c.Secrets) == 0 {
		errs = append(errs, errors.New("TICKETD_SECRET: required, at least 16 random bytes (e.g. openssl rand -hex 32)"))
	}
	if c.SMTPRelayURL == "" && c.Maildir == "" {
		errs = append(errs, errors.New("SMTP_RELAY_URL: required to send mail (or set MAILDIR to keep outgoing mail in a Maildir)"))
	}
	return errors.Join(errs...)
}

// printSettings writes the table `ticketd help` shows.
func printSettings(w io.Writer) {
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "-"
		}
		file := ""
		if s.secret {
			file = " (or " + s.name + "_FILE)"
		}
		fmt.Fprintf(w, "  %s%s\n      %s [default: %s]\n", s.name, file, s.help, def)
	}
}

// triageConfig is the triage engine's configuration, as serve, triage and
// eval build it alike.
func (c Config) triageConfig(met *metrics.Metrics) triage.Config {
	return triage.Config{Provider: c.LLMProvider, Model: c.LLMModel, BaseURL: c.LLMBaseURL, APIKey: c.LLMAPIKey,
		Timeout: c.LLMTimeout, Concurrency: c.LLMConcurrency, Metrics: met,
		Guard: triage.GuardOptions{AllowedDomains: c.FirstResponseAllowedDomains}}
}

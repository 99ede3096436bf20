package mailparse

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// report is what the machine-readable parts of a mail said.
type report struct {
	dsn            []dsnRecipient
	sawDSN         bool
	feedback       bool
	mdn            bool
	original       *Message // the returned message, if attached whole
	originalHeader header   // its header (text/rfc822-headers or message/rfc822)
	// nestedDSN are the recipient blocks of delivery reports inside
	// attached messages: a relay that wraps a report it received.
	nestedDSN []dsnRecipient
}

// dsnRecipient is one per-recipient block of a delivery status
// notification (RFC 3464 2.3).
type dsnRecipient struct {
	final, original, action, status string
}

// recipient is the address a DSN block reports on. RFC 3464 2.3.1: the
// Original-Recipient is the address as the sender gave it, before any
// forwarding or alias expansion rewrote it into the Final-Recipient, so it
// is the one the sender's records know.
func (r dsnRecipient) recipient() string {
	if r.original != "" {
		return r.original
	}
	return r.final
}

// parseDSN reads a message/delivery-status body: a per-message block, then
// one block per recipient, separated by blank lines (RFC 3464 2.1).
func (r *report) parseDSN(b []byte) {
	r.sawDSN = true
	blocks := bytes.Split(bytes.TrimLeft(b, "\n"), []byte("\n\n"))
	for _, blk := range blocks {
		h := parseHeader(blk, &Message{}, "")
		rec := dsnRecipient{
			final:    dsnAddress(h.get("Final-Recipient")),
			original: dsnAddress(h.get("Original-Recipient")),
			action:   strings.ToLower(strings.TrimSpace(h.get("Action"))),
			status:   strings.TrimSpace(h.get("Status")),
		}
		if i := strings.IndexAny(rec.action, " (;"); i >= 0 {
			rec.action = rec.action[:i]
		}
		if i := strings.IndexAny(rec.status, " ("); i >= 0 {
			rec.status = rec.status[:i]
		}
		if rec.final != "" || rec.original != "" || rec.action != "" {
			r.dsn = append(r.dsn, rec)
		}
	}
}

// dsnAddress reads "rfc822; user@example.com" (RFC 3464 2.3.2). Only
// mail addresses count: types other than rfc822 and utf-8 (RFC 6533), such
// as x400, name something else.
func dsnAddress(v string) string {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, ';'); i >= 0 {
		switch strings.ToLower(strings.TrimSpace(v[:i])) {
		case "rfc822", "utf-8", "":
		default:
			return ""
		}
		v = v[i+1:]
	}
	v = strings.Trim(strings.TrimSpace(v), "<>\"")
	if !strings.Contains(v, "@") {
		return ""
	}
	return normAddr(v)
}

// classify decides Message.Auto from the header, the report parts and the
// text. Reports come first (they are the most specific), then bounces
// that follow no standard, then RFC 3834 auto-replies, other automatic
// mail, and bulk mail last.
func classify(p *parser, h header) {
	m := p.msg
	a := &m.Auto
	rt := strings.ToLower(p.topParam["report-type"])
	isReport := p.topType == "multipart/report"

	// RFC 6522 / RFC 3464: delivery status notifications.
	if (isReport && rt == "delivery-status") || p.report.sawDSN {
		failed, other := []string{}, []string{}
		for _, r := range p.report.dsn {
			addr := r.recipient()
			switch {
			case r.action == "failed" || (r.action == "" && strings.HasPrefix(r.status, "5")):
				failed = appendUnique(failed, addr)
			default:
				other = appendUnique(other, addr)
			}
		}
		switch {
		case len(failed) > 0:
			*a = Auto{Kind: KindBounce, Reason: "delivery status notification (RFC 3464) with Action: failed", Recipients: failed}
		case len(other) > 0:
			actions := map[string]bool{}
			for _, r := range p.report.dsn {
				if r.action != "" {
					actions[r.action] = true
				}
			}
			*a = Auto{Kind: KindDeliveryStatus, Reason: "delivery status notification (RFC 3464) without failures", Recipients: other}
			if len(actions) == 0 && bounceText(m) {
				*a = Auto{Kind: KindBounce, Reason: "delivery status notification (RFC 3464) without Action, text says delivery failed", Recipients: other}
			}
		default:
			*a = Auto{Kind: KindBounce, Reason: "delivery status notification (RFC 3464) without readable recipients"}
			a.Recipients = bounceRecipients(p, h)
		}
		return
	}
	// RFC 5965: abuse feedback reports.
	if (isReport && rt == "feedback-report") || p.report.feedback {
		*a = Auto{Kind: KindComplaint, Reason: "abuse feedback report (RFC 5965 ARF)"}
		return
	}
	// RFC 8098: message disposition notifications (read receipts).
	if (isReport && rt == "disposition-notification") || p.report.mdn {
		*a = Auto{Kind: KindMDN, Reason: "message disposition notification (RFC 8098)"}
		return
	}
	// Exim names the failed recipients in a header.
	if xf := h.get("X-Failed-Recipients"); xf != "" {
		var rcpts []string
		for _, ad := range lenientAddresses(xf, nil) {
			if ad.Address != "" {
				rcpts = appendUnique(rcpts, ad.Address)
			}
		}
		*a = Auto{Kind: KindBounce, Reason: "X-Failed-Recipients header", Recipients: rcpts}
		return
	}
	// A mail provider's report in JSON (Amazon SES, mailed by SNS).
	if !replySubject.MatchString(m.Subject) {
		if n, ok := readProviderNotice(m.Text); ok {
			reason := "a mail provider's JSON report: " + n.Event
			if n.Detail != "" {
				reason += " (" + n.Detail + ")"
			}
			*a = Auto{Kind: n.Kind, Reason: reason, Recipients: n.Recipients}
			return
		}
	}
	if isReport {
		*a = Auto{Kind: KindAutoGenerated, Reason: fmt.Sprintf("multipart/report; report-type=%s", rt)}
	}
	// Reports and bounces that follow no standard: from the mailer
	// daemon or any other sender, with the subjects and texts real MTAs,
	// gateways and list software write.
	daemon := daemonSender(m, p.opt.EnvelopeFrom, h)
	// A person's reply or forward of such a notice is theirs to ask about.
	personal := replySubject.MatchString(m.Subject)
	subj := bounceSubject.MatchString(m.Subject)
	// Gateways that answer from an ordinary address keep the subject and
	// append the verdict: "Re: Report : non remis (delivery failed)".
	subjTail := bounceSubjectTail.MatchString(m.Subject)
	subjAny := !personal && failureSubject.MatchString(subjectHead(m.Subject))
	returned := (p.report.original != nil || len(p.report.originalHeader) > 0) && !personal
	// A delay warning says "not delivered" too: it is read first.
	if !personal && delayNotice(m, daemon) {
		*a = Auto{Kind: KindDeliveryStatus, Reason: fmt.Sprintf("delivery delay warning: subject %q", truncate(m.Subject, 60)),
			Recipients: bounceRecipients(p, h)}
		if daemon != "" {
			a.Reason += " from " + daemon
		}
		return
	}
	// The text is only read when another sign points to a bounce: the
	// patterns are many and ordinary mail needs none of them.
	text := (daemon != "" || subj || subjTail || subjAny || returned) && bounceText(m)
	// Without a mail system's sign, a failure subject and the new part of
	// the text saying that the sender's message was not delivered.
	ndr := (subj || subjAny) && !personal && ndrText(m.Reply) && !firstPerson.MatchString(limitText(m.Reply))
	if (daemon != "" && (subj || text)) || (subjTail && text) || (text && returned) || ndr {
		reason := "bounce: "
		switch {
		case daemon != "" && subj:
			reason += daemon + " and subject " + fmt.Sprintf("%q", truncate(m.Subject, 60))
		case daemon != "":
			reason += daemon + " and a delivery failure text"
		case subj || subjTail || subjAny:
			reason += fmt.Sprintf("subject %q and a delivery failure text", truncate(m.Subject, 60))
		default:
			reason += "a delivery failure text above the returned message"
		}
		*a = Auto{Kind: KindBounce, Reason: reason, Recipients: bounceRecipients(p, h)}
		return
	}
	if kind, reason := listNotice(m, daemon); kind != "" {
		*a = Auto{Kind: kind, Reason: reason, Recipients: bounceRecipients(p, h)}
		if len(a.Recipients) == 0 {
			a.Recipients = appendUnique(nil, listAddress(m.From.Address))
		}
		return
	}
	if returned && complaintTexts.MatchString(strings.ToLower(limitText(m.Reply))) {
		// RFC 5965 is not the only format: feedback loops that attach
		// the reported message to a sentence of their own.
		*a = Auto{Kind: KindComplaint, Reason: "abuse report without ARF, the reported message attached"}
		if p.report.original != nil {
			for _, ad := range p.report.original.To {
				a.Recipients = appendUnique(a.Recipients, ad.Address)
			}
		}
		return
	}

	// RFC 3834 5: Auto-Submitted.
	as := strings.ToLower(strings.TrimSpace(h.get("Auto-Submitted")))
	if i := strings.IndexAny(as, " ;("); i >= 0 {
		as = as[:i]
	}
	if as == "auto-replied" {
		*a = Auto{Kind: KindAutoReply, Reason: "Auto-Submitted: auto-replied (RFC 3834)"}
		return
	}
	for _, name := range []string{"X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply", "X-Autoreply-From", "X-Mail-Autoreply", "X-Vacation"} {
		if v := strings.ToLower(strings.TrimSpace(h.get(name))); v != "" && v != "no" && v != "false" && v != "0" {
			*a = Auto{Kind: KindAutoReply, Reason: name + " header"}
			return
		}
	}
	if v := strings.ToLower(h.get("Precedence")); strings.Contains(v, "auto_reply") || strings.Contains(v, "auto-reply") {
		*a = Auto{Kind: KindAutoReply, Reason: "Precedence: auto_reply"}
		return
	}
	if v := strings.ToLower(h.get("X-POST-MessageClass")); strings.Contains(v, "autoresponder") {
		*a = Auto{Kind: KindAutoReply, Reason: "X-POST-MessageClass: Autoresponder"}
		return
	}
	if loc := autoReplySubject.FindStringIndex(m.Subject); loc != nil && (strings.HasPrefix(strings.TrimLeft(m.Subject[loc[1]:], " \t"), ":") || m.InReplyTo != "" || len(m.References) > 0 || daemon != "") {
		*a = Auto{Kind: KindAutoReply, Reason: fmt.Sprintf("subject %q is an automatic reply", truncate(m.Subject, 60))}
		return
	}
	if as != "" && as != "no" {
		// Exchange marks out-of-office replies auto-generated; its
		// inbox-rule and OOF headers tell them apart from alerts.
		if h.has("X-MS-Exchange-Inbox-Rules-Loop") || strings.Contains(strings.ToLower(h.get("Thread-Topic")+h.get("X-MS-Exchange-Generated-Message-Source")), "oof") {
			*a = Auto{Kind: KindAutoReply, Reason: "Auto-Submitted: " + as + " with Exchange's X-MS-Exchange-Inbox-Rules-Loop"}
			return
		}
		*a = Auto{Kind: KindAutoGenerated, Reason: "Auto-Submitted: " + as + " (RFC 3834)"}
		return
	}
	if a.Kind != "" {
		return // an unknown report type
	}
	notice, noticeText := noticeSign(m)
	if h.has("X-Autogenerated") || h.has("X-Auto-Generated") {
		*a = Auto{Kind: KindAutoGenerated, Reason: "X-Autogenerated header", Notice: notice}
		return
	}
	if noticeText && m.InReplyTo != "" && !forwardSubject.MatchString(m.Subject) {
		// RFC 3834 2: a notice in reply to a mail that says nobody reads
		// the answer is an automatic response.
		*a = Auto{Kind: KindAutoReply, Reason: notice + ", in reply to a mail", Notice: notice}
		return
	}
	if v := strings.ToLower(strings.TrimSpace(h.get("Precedence"))); v == "bulk" || v == "list" || v == "junk" {
		// The vacation programs of old mark their replies so (RFC 3834
		// 1.2): in reply to a mail, an out-of-office text is one.
		if (m.InReplyTo != "" || replySubject.MatchString(m.Subject)) && outOfOfficeTexts.MatchString(limitText(m.Reply)) {
			*a = Auto{Kind: KindAutoReply, Reason: "Precedence: " + v + " and an out-of-office text in reply to a mail"}
			return
		}
		*a = Auto{Kind: KindBulk, Reason: "Precedence: " + v, Notice: notice}
		return
	}
	if h.has("List-Id") {
		*a = Auto{Kind: KindBulk, Reason: "List-Id header (RFC 2919)", Notice: notice}
		return
	}
	if h.has("List-Unsubscribe") {
		*a = Auto{Kind: KindBulk, Reason: "List-Unsubscribe header (RFC 2369)", Notice: notice}
		return
	}
	if notice != "" {
		*a = Auto{Kind: KindAutoGenerated, Reason: notice, Notice: notice}
		return
	}
	*a = Auto{Kind: KindNone}
}

// noReplyLocal matches the local parts of addresses whose owner says
// nobody reads mail sent to them: noreply, no-reply, do-not-reply,
// donotreply and their translations, alone or joined to other words.
var noReplyLocal = regexp.MustCompile(`(?i)(^|[-_.+])(no|do[-_.]?not|dont|ne[-_.]?pas|nao|não|non|niet|keine?)[-_.]?` +
	`(reply|replies|respond|response|responder|responda|repondre|répondre|rispondere|beantwoorden|antwort|antworten)($|[-_.+])`)

// noticeTexts say that the mail was sent by a machine and that nobody
// reads answers to it, at the start of a line of the new text.
var noticeTexts = regexp.MustCompile(`(?im)^[\s*_>-]*(` +
	`this is an? (automated|automatic|automatically generated|auto-generated) (message|response|reply|e-?mail|notification|notice)|` +
	`(this|the) (e-?mail |mail )?(address|mailbox|inbox|account) (is|was) not (monitored|read|attended)|` +
	`(this|the) (e-?mail|message|mail) (was|is|has been) (sent|generated) automatically|` +
	`please do not (reply|respond) to this (e-?mail|message|mail|address)|` +
	`replies to this (e-?mail|message|mail|address) (are|will) not (be )?(monitored|read|answered)|` +
	`(this is an? )?unmonitored (mailbox|inbox|address)|` +
	`dies ist eine automatisch (erzeugte|generierte|erstellte|versendete) (nachricht|e-?mail|mail)|` +
	`bitte antworten sie nicht auf diese|dieses postfach wird nicht (überwacht|gelesen)|` +
	`ceci est un (message|courriel|e-?mail) automatique|merci de ne pas répondre|(veuillez )?ne pas répondre à ce|` +
	`cette (adresse|boîte( aux lettres)?) n'est pas (surveillée|consultée|lue)|` +
	`este es un (mensaje|correo) automático|por favor,? no (responda|conteste)|este buzón no (es|está) (supervisado|monitoreado)|` +
	`questo è un messaggio automatico|si prega di non rispondere|questa casella( di posta)? non è monitorata|` +
	`dit is een automatisch (gegenereerd |verzonden )?bericht|gelieve niet te (antwoorden|reageren)|` +
	`deze mailbox wordt niet (gecontroleerd|gelezen)|esta é uma mensagem automática|por favor,? não responda|` +
	`esta caixa( de correio)? não é monitorada|это (автоматическое|автоматически (созданное|сгенерированное)) (сообщение|письмо)|` +
	`пожалуйста,? не отвечайте на это|to jest wiadomość (wygenerowana )?automatyczn|prosimy nie odpowiadać)`)

// noticeWords are in every sentence noticeTexts matches: a text without
// any of them is not read with the whole pattern, which most mail is not.
var noticeWords = []string{"automat", "автомат", "monitor", "not read", "not attended", "reply", "respond", "répondre",
	"antworten", "überwacht", "gelesen", "n'est pas", "responda", "conteste", "rispondere", "antwoorden", "reageren",
	"gecontroleerd", "отвечайте", "odpowiadać", "supervisado"}

func mentionsNotice(t string) bool {
	return mentionsAny(strings.ToLower(t), noticeWords)
}

// noticeSign says why a mail reads as a machine's notice that nobody
// answers, "" when it does not, and whether its text says so.
func noticeSign(m *Message) (reason string, text bool) {
	if forwardSubject.MatchString(m.Subject) {
		return "", false
	}
	for _, ad := range []Address{m.From, m.Sender} {
		local := ad.Address
		if i := strings.LastIndexByte(local, '@'); i >= 0 {
			local = local[:i]
		}
		if local != "" && noReplyLocal.MatchString(local) {
			reason = "a no-reply sender, " + ad.Address
			break
		}
	}
	t := m.Reply
	if len(t) > 4000 {
		t = t[:4000]
	}
	if !mentionsNotice(t) {
		return reason, false
	}
	if loc := noticeTexts.FindStringIndex(t); loc != nil {
		text = true
		if reason == "" {
			reason = fmt.Sprintf("the text says %q", truncate(strings.TrimLeft(t[loc[0]:loc[1]], " \t\n*_>-"), 60))
		}
	}
	return reason, text
}

// forwardSubject matches the subject of a forward by a person ("Fwd:",
// "WG:", "TR:"): what it carries is not the sender's own notice.
var forwardSubject = regexp.MustCompile(`(?i)^\s*(fwd?|wg|tr|rv|enc|doorst|vl|vb|pd|i)\s*:`)

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func appendUnique(list []string, s string) []string {
	if s == "" {
		return list
	}
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return list
		}
	}
	return append(list, s)
}

// replySubject matches the subject of a reply or forward written by a person.
var replySubject = regexp.MustCompile(`(?i)^\s*(re|fwd?|aw|wg|tr|sv|vs|rv|r|odp|antw)\s*(\[\d+\])?\s*:`)

var daemonLocal = regexp.MustCompile(`(?i)^(mailer-daemon|mailer_daemon|maildaemon|mail-daemon|mailerdaemon|post_?master|mdaemon|mail\.daemon|bounce|bounces|mail-delivery|maildelivery|mailadmin|mail-admin)$`)

var daemonName = regexp.MustCompile(`(?i)mail delivery (system|subsystem|service)|mailer[- ]daemon|postmaster|mail administrator|mail system|delivery status notification|returned mail|microsoft outlook|mail delivery|\bmta\b|system administrator|administrador de correo|` +
	`^(administrator|administrateur|administrador|amministratore|beheerder|administratör)$|anti-?virus|virus ?(scan|wall|guard)|mail ?scanner|content ?filter|` +
	`(spam|mail|e-?mail) ?filter|(e-?mail|mail) (security|gateway|guard|protection)|security gateway|почтов(ая|ый) (система|сервер|служба)|служба доставки`)

// daemonSender says which sign shows the mail comes from a mail system
// rather than a person: the null reverse-path (RFC 5321 4.5.5: bounces
// are sent with MAIL FROM:<>), or a MAILER-DAEMON or postmaster sender.
func daemonSender(m *Message, envelope *string, h header) string {
	if envelope != nil && *envelope == "" {
		return "null envelope sender"
	}
	if rp := h.values("Return-Path"); len(rp) > 0 {
		v := strings.TrimSpace(rp[0])
		if v == "<>" || v == "" || v == "<MAILER-DAEMON>" {
			return "null Return-Path"
		}
	}
	for _, ad := range []Address{m.From, m.Sender} {
		local := ad.Address
		if i := strings.LastIndexByte(local, '@'); i >= 0 {
			local = local[:i]
		}
		if daemonLocal.MatchString(local) {
			return "sender " + ad.Address
		}
		if ad.Name != "" && daemonName.MatchString(ad.Name) {
			return fmt.Sprintf("sender %q", ad.Name)
		}
	}
	return ""
}

// bounceSubject matches what MTAs put in the subject of a bounce.
var bounceSubject = regexp.MustCompile(`(?i)^\s*(\[[^\]]*\]\s*)?(` +
	`undeliver(ed|able)|undelivered mail|delivery status notification|delivery (status )?notification|` +
	`returned mail|return(ed)? to sender|failure notice|mail delivery fail|delivery fail|` +
	`mail (system )?error|non[- ]?deliver|nondeliverable|message (not|could not be) delivered|` +
	`delivery (has )?failed|delivery problem|could not send message|message delivery (has )?failed|` +
	`mail could not be delivered|undeliverable mail|permanent (delivery )?(error|failure)|` +
	`delivery report|warning: could not send|message rejected|mail rejected|` +
	`unzustellbar|nicht zustellbar|non remis|non distribuable|échec de (la )?remise|no se puede entregar|` +
	`no entregado|non recapitabile|impossibile recapitare|onbestelbaar|kan niet worden bezorgd|` +
	`olevererbart|kunde inte levereras|ikke leveret|kan ikke leveres|não entregue|nao entregue|` +
	`niedostarczalna|nie można dostarczyć|недоставлен|не доставлен|` +
	`delivery notification: delivery has failed|mail system error|message status|` +
	`notification d'état de remise|benachrichtigung zum übermittlungsstatus|` +
	`error sending message|mail not delivered|your message (was|couldn't be|could not be|wasn't) delivered|` +
	`your message to .* (was|has been) (rejected|blocked|not delivered)|` +
	`returned message|bounced? (mail|message)|unable to deliver|delivery to .* failed|failed (mail|delivery|message)|` +
	`mail returned|message you sent (was|has been) blocked|delivery (failure|error)|` +
	`メールエラー|配信エラー|不達|送信エラー|エラー通知|退信|投递失败|邮件.{0,6}(失败|退回)|无法送达|未送達` +
	`)`)

// bounceSubjectTail matches a delivery verdict appended to a subject
// after a colon, dash or parenthesis.
var bounceSubjectTail = regexp.MustCompile(`(?i)(\s:|\s-|\()\s*(delivery (has )?failed|non remis|undeliverable|undelivered|not delivered|unzustellbar|nicht zugestellt|failure notice|returned mail)\s*\)?[.!]?\s*$`)

// failureSubject matches a delivery failure anywhere in a subject, in the
// languages MTAs and gateways write it.
var failureSubject = regexp.MustCompile(`(?i)(undeliver(able|ed)|not delivered|could not be delivered|` +
	`delivery (status notification|failure|failed|problem|error)|mail delivery failed|failure notice|returned mail|non[- ]?delivery|` +
	`недоставлен|не доставлен|ошибка доставки|не доставлено|недоставлене|не вдалося доставити|` +
	`não entregue|nao entregue|falha na entrega|niedostarczon|mancato recapito|non recapitat|no entregado|no se pudo entregar|` +
	`error de entrega|onbestelbaar|niet bezorgd|niet afgeleverd|[iİ]letilemeyen|teslim edilemedi|[iİ]letilemedi|nedoručiteln|` +
	`nedoručen|non remis|non distribu|échec de (la )?remise|unzustellbar|nicht zugestellt|zustellung fehlgeschlagen|` +
	`olevererbar|kunde inte levereras|ikke leveret|kan ikke leveres|kézbesíthetetlen|toimitus epäonnistui|` +
	`不達|配信エラー|退信|投递失败|未送達|전달 실패|배달 실패)`)

// forward-looking delays: what MTAs write when they will try again.
var delaySubject = regexp.MustCompile(`(?i)(delayed mail|delivery (status notification \()?delay|\(delay(ed)?\)|` +
	`warning: (message )?delayed|mail delivery delayed|message delayed|delivery delayed|delivery (is )?delayed|delivery warning|` +
	`zustellung verzögert|verzögerte zustellung|remise différée|remise retardée|distribution différée|entrega retrasada|` +
	`entrega atrasada|consegna ritardata|vertraagde (bezorging|aflevering)|opóźnienie dostarczenia|задержка доставки)`)

// delayTexts are the sentences of delay warnings: the message is not
// delivered yet and will be tried again.
var delayTexts = regexp.MustCompile(`(has not yet been delivered|has not been delivered yet|(has been|is|was) delayed|` +
	`will (continue to|keep) (try|trying|attempt)|will retry|still (trying|retrying)|warning message only|` +
	`you do not need to resend|no action is required|(noch|bisher) nicht zugestellt|weiter versucht|` +
	`n'a pas encore été (remis|distribué)|nouvelle tentative|aún no se ha entregado|seguirá intentando|` +
	`non è ancora stato (recapitato|consegnato)|nog niet (bezorgd|afgeleverd)|ainda não foi entregue|` +
	`jeszcze nie (została )?dostarczon|(ещё|еще) не (было )?доставлен|повторн(ая|ые) попытк)`)

// delayWords are in every subject delaySubject matches but "(Delay)".
var delayWords = []string{"delay", "warning", "verzög", "différée", "retardée", "retrasada", "atrasada", "ritardata",
	"vertraagde", "opóźnienie", "задержка"}

func mentionsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// permanentTexts say that a delivery will not be tried again.
var permanentTexts = regexp.MustCompile(`(permanent|gave up|giving up|will not (be )?retr|no (more|further) (attempts|retries)|` +
	`endgültig|définitivement|definitivamente|definitivo|постоянн)`)

// delayNotice reports whether the mail warns that delivery is delayed:
// a delay subject from a mail system or over a delay text, or a mail
// system's delay text that does not say it gave up.
func delayNotice(m *Message, daemon string) bool {
	subj := false
	if head := strings.ToLower(subjectHead(m.Subject)); strings.ContainsAny(head, "()") || mentionsAny(head, delayWords) {
		subj = delaySubject.MatchString(head)
	}
	if !subj && daemon == "" {
		return false
	}
	t := strings.ToLower(limitText(m.Text))
	text := delayTexts.MatchString(t)
	return (subj && (daemon != "" || text)) || (text && !permanentTexts.MatchString(t) && !bounceSubject.MatchString(m.Subject))
}

// subjectHead is the start of a subject, where notices put what they are:
// the patterns that look anywhere in it do not read a subject of 100 KB.
func subjectHead(s string) string {
	if len(s) <= 1000 {
		return s
	}
	i := 1000
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

func limitText(t string) string {
	if len(t) > 20000 {
		t = t[:20000]
	}
	return t
}

// ndrTexts say, in many languages, that the sender's message was not
// delivered: a sentence a person writing about a lost parcel or their
// own mail does not use.
var ndrTexts = regexp.MustCompile(`((your|the|this|following) (message|mail|e-?mail)s?( to [^\n]{1,80}?)? ` +
	`(could not|couldn't|cannot|can't|can not|was not|wasn't|has not been|did not|didn't|could not be|was unable to be) (be )?(delivered|reach|sent|transmitted)|` +
	`did not reach (some or all of )?the (intended )?recipient|` +
	`(could not|couldn't|cannot|unable to|was unable to|failed to) deliver (your|the|this) (message|mail|e-?mail)|` +
	`delivery (of your message |to the following recipients? )?(has )?failed|` +
	`the following (recipient|address)(e?s|\(s\))? (had permanent fatal errors|could not be reached|cannot be reached|failed|(was|were) rejected)|` +
	`this is the mail system at host|this is the qmail-send program|created automatically by mail delivery software|` +
	`(сообщение|письмо) не (может быть|было|удалось|могло быть) доставлен|не удалось доставить|не вдалося доставити|` +
	`повідомлення не (доставлено|може бути доставлене)|não foi possível entregar|mensagem não (pôde|pode) ser entregue|` +
	`nie można dostarczyć|nie (została|mogła zostać) dostarczona|nie udało się dostarczyć|non è stato possibile recapitare|` +
	`impossibile recapitare|non (è stato|può essere) recapitato|no se (pudo|ha podido|puede) entregar|mensaje no (se )?(pudo|ha podido) (ser )?entregar|` +
	`kon niet (worden )?(bezorgd|afgeleverd)|kan niet worden (bezorgd|afgeleverd)|teslim edilemedi|iletilemedi|` +
	`nelze doručit|nemohla být doručena|n'a pas pu être (remis|distribué|délivré)|impossible de remettre|` +
	`konnte nicht zugestellt werden|kann nicht zugestellt werden|zustellung (ist )?fehlgeschlagen|kunde inte levereras|` +
	`kunne ikke leveres|ei voitu toimittaa|nem sikerült kézbesíteni|配信できませんでした|送信できませんでした|无法(发送|投递|送达)|無法(傳送|送達))`)

// firstPerson matches the words a person writes about their own mail ("my
// message", "meine Nachricht", "mon message", "моё письмо"), which
// notices that speak of "your message" do not use.
var firstPerson = regexp.MustCompile(`(?i)(^|[^\pL'])(i|i'm|i've|my|me|ich|mein|meine|meinen|meiner|mir|mich|je|j'ai|mon|ma|mes|moi|` +
	`yo|mis|io|mio|mia|ik|mijn|mij|eu|meu|minha|ja|moja|mój|mnie|я|мой|моё|моя|мне|меня|мій|моє)([^\pL']|$)`)

// ndrText reports whether text says the sender's message was not
// delivered (ndrTexts).
func ndrText(text string) bool {
	return ndrTexts.MatchString(strings.ToLower(limitText(text)))
}

// listNoticeTexts are what mailing-list software writes when it holds or
// refuses a post, and what mail systems write about a mail loop.
var (
	listRejectTexts = regexp.MustCompile(`((you are|you're) not (allowed|authori[sz]ed|permitted) to (post|send)|` +
		`your (message|mail|post(ing)?) (to|for) .{1,80} (has been|was|is being) (rejected|refused|discarded|denied|returned)|` +
		`(post|posting|message) (by|from) (a )?non-?member|members-only list|authori[sz]ation denied|` +
		`returned to you unprocessed|message rejected by filter|mail(ing)?[ -]loop|loop detected|too many hops|` +
		`hop count exceeded|routing loop|loops back to myself|excessive number of received headers|has been looped)`)
	listHoldTexts = regexp.MustCompile(`(held until the list moderator|awaits moderator approval|held for (moderation|approval)|` +
		`waiting for (moderator )?approval|pending moderator approval)`)
)

// listSender matches the local parts of mailing-list software's own
// addresses (RFC 3834 2 names owner-* and *-request).
var listSender = regexp.MustCompile(`(?i)(^owner-|-(owner|bounces?|request|admin)$|^(sympa|listserv|majordomo|mailman|ezmlm|lyris|listproc|listmaster)$)`)

// listNotice reads the rejections, holds and loop notices of mailing-list
// software and mail systems, which carry no standard header: a list's or
// a mail system's address, and their wording.
func listNotice(m *Message, daemon string) (Kind, string) {
	local := m.From.Address
	if i := strings.LastIndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	list := listSender.MatchString(local)
	if !list && daemon == "" {
		return "", ""
	}
	t := strings.ToLower(limitText(m.Text)) + "\n" + strings.ToLower(subjectHead(m.Subject))
	switch {
	case listHoldTexts.MatchString(t):
		return KindDeliveryStatus, "a list's post held for moderation"
	case listRejectTexts.MatchString(t):
		if list {
			return KindBounce, "a list's rejection of a post, from " + m.From.Address
		}
		return KindBounce, "rejection or mail loop notice from " + daemon
	}
	return "", ""
}

// listAddress is a list's posting address from one of its own addresses:
// users-owner@ and users-bounces@ are users@.
func listAddress(from string) string {
	i := strings.LastIndexByte(from, '@')
	if i < 0 {
		return ""
	}
	local, domain := from[:i], from[i:]
	for _, suffix := range []string{"-owner", "-bounces", "-bounce", "-request", "-admin"} {
		if l := strings.TrimSuffix(strings.ToLower(local), suffix); len(l) < len(local) && l != "" {
			return local[:len(l)] + domain
		}
	}
	return ""
}

// complaintTexts are what feedback loops that do not use ARF write above
// the reported message.
var complaintTexts = regexp.MustCompile(`(e-?mail abuse report|abuse report for an? (email|e-mail|message)|` +
	`(marked|reported|flagged|classified) (the attached|this|the|your|an?) (message|e-?mail|mail)s? as (spam|junk|abuse|unwanted)|` +
	`spam complaint|complaint about (a )?message from|feedback loop|(user|recipient|subscriber) (has )?complained)`)

// bounceTexts are sentences MTAs write in bounce texts: Postfix, qmail,
// Exim, Sendmail, Exchange, Gmail, Yahoo, Lotus Notes, Courier, Domino,
// and hosted services.
var bounceTexts = regexp.MustCompile(`(` +
	`this is the mail system at host|i'm sorry to have to inform you that your message could not|` +
	`could not be delivered to one or more recipients|` +
	`this is the qmail-send program|i'm afraid i wasn't able to deliver your message|` +
	`this message was created automatically by mail delivery software|` +
	`a message that you sent could not be delivered|` +
	`the following addresses had permanent fatal errors|transcript of session follows|` +
	`the original message was received at|` +
	`delivery has failed to these recipients|your message did not reach some or all of the intended recipients|` +
	`the following recipient\(s\) could not be reached|your message (wasn't|was not|couldn't be|could not be) delivered|` +
	`delivery to the following recipients? failed|address not found|` +
	`the response from the remote server was|the email account that you tried to reach does not exist|` +
	`sorry, we were unable to deliver your message|unable to deliver (your )?message|` +
	`your message was not delivered|was not delivered (to|because)|` +
	`your message to the following recipients cannot be delivered|this is a delivery status notification|` +
	`message could not be delivered|could not deliver (the )?message|message not delivered|` +
	`delivery (to|of) .{1,80} (failed|has failed)|permanent (fatal )?error|permanently failed|` +
	`undeliverable|undelivered mail|user unknown|unknown user|no such (user|mailbox|recipient)|` +
	`mailbox (unavailable|is full|full|not found|does not exist)|recipient address rejected|` +
	`quota exceeded|over quota|host unknown|domain not found|relay(ing)? denied|` +
	`message (was )?(rejected|blocked|bounced)|returned to sender|` +
	`\b5\d\d[ -]#?5\.\d{1,3}\.\d{1,3}\b|status: 5\.\d{1,3}\.\d{1,3}|#5\.\d{1,3}\.\d{1,3}|` +
	`failed recipient|delivery status notification|non-delivery|nondelivery|` +
	`this is an automatically generated delivery status notification|` +
	`delivery to the following recipient has been delayed|` +
	`your mail could not be delivered|the following message to .{1,100} was undeliverable|` +
	`mail delivery failed|diagnostic-code:|remote-mta:|reporting-mta:|could not be delivered to|` +
	`had delivery (problems|errors)|no valid recipients|(mail|message) (has been|was) returned|` +
	`送信できませんでした|配信できませんでした|无法发送|无法送达|未能送达` +
	`)`)

// bounceText reports whether the readable text reads like a bounce.
func bounceText(m *Message) bool {
	t := strings.ToLower(limitText(m.Text))
	return bounceTexts.MatchString(t) || ndrTexts.MatchString(t)
}

// autoReplySubject matches the subjects of vacation and out-of-office
// replies, in the languages mail clients write them.
var autoReplySubject = regexp.MustCompile(`(?i)^\s*(` +
	`out of (the )?office|auto(matic|matische|matisk|matikus)?[ -]?(reply|response|antwort|svar|vastaus|answer)|` +
	`auto:|autosvar|autoreply|auto-reply|autorespond|auto response|automatic reply|automatisch antwoord|` +
	`abwesenheitsnotiz|abwesenheitsmeldung|réponse automatique|reponse automatique|absence du bureau|` +
	`respuesta automática|respuesta automatica|fuera de la oficina|risposta automatica|fuori ufficio|` +
	`resposta automática|resposta automatica|automaattinen vastaus|` +
	`odpowiedź automatyczna|automatická odpověď|автоматический ответ|автоответ|` +
	`otomatik yanıt|αυτόματη απάντηση|自動応答|自动回复|自動回覆|` +
	`on vacation|vacation (reply|response|notice|message|autoreply)|away from (the )?office|` +
	`i am (currently )?out of (the )?office|(i'?m|i am) on (vacation|holiday|annual leave)|` +
	`absence notification|abwesenheitsbenachrichtigung|außer haus|ausser haus|nicht im büro|message d'absence|` +
	`mensaje de ausencia|fuera de oficina|messaggio di assenza|fuori sede|fora do escritório|afwezigheidsbericht` +
	`)`)

// outOfOfficeTexts start the text of vacation and out-of-office replies,
// in the languages mail clients write them.
var outOfOfficeTexts = regexp.MustCompile(`(?im)^[\s*_>-]*(thank you for your (e-?mail|message)[.,!]?\s+)?(` +
	`i('m| am)( currently)? (out of (the )?office|away|on (vacation|holiday|leave|annual leave|parental leave|sick leave))|` +
	`i will be (out of (the )?office|away|on (vacation|holiday|leave))|` +
	`ich bin (bis|vom|ab|derzeit|zur zeit|momentan|nicht im büro|abwesend|im urlaub|außer haus)|ich befinde mich (im urlaub|nicht im büro|außer haus)|` +
	`je (suis|serai) (absente?|en congés?|en vacances|actuellement absente?)|` +
	`(estoy|estaré) (fuera de la oficina|de vacaciones|ausente)|(sono|sarò) (fuori ufficio|in ferie|assente)|` +
	`ik ben (afwezig|met vakantie|niet op kantoor|op vakantie)|(estou|estarei) (fora do escritório|de férias|ausente)|` +
	`jag är (ledig|borta|på semester|inte på kontoret)|jeg er (på ferie|fraværende|ikke på kontoret|bortrejst)|` +
	`olen (lomalla|poissa)|jestem (na urlopie|poza biurem|nieobecn)|jsem (na dovolené|mimo kancelář)|` +
	`я (в отпуске|нахожусь в отпуске|буду отсутствовать|отсутствую))`)

// bounceRecipients finds the addresses a bounce that follows no standard
// is about. Addresses in the places MTAs put failed recipients win: at the
// start of a line ("<a@b>:" of qmail and Postfix, "a@b [reason]" of
// Sendmail, ">>> a@b" of ActiveHunter) and after "RCPT TO", "delivered
// to" and the like. Without any, every address of the notice counts, and
// then the To of the returned message.
func bounceRecipients(p *parser, h header) []string {
	m := p.msg
	var out []string
	for _, r := range p.report.dsn {
		out = appendUnique(out, r.recipient())
	}
	if len(out) > 0 {
		return out
	}
	// A report wrapped in an attached message names the recipients, not
	// the wrapper's To nor the report's own: the failed ones, else all.
	for _, r := range p.report.nestedDSN {
		if r.action == "failed" || (r.action == "" && strings.HasPrefix(r.status, "5")) {
			out = appendUnique(out, r.recipient())
		}
	}
	if len(out) == 0 {
		for _, r := range p.report.nestedDSN {
			out = appendUnique(out, r.recipient())
		}
	}
	if len(out) > 0 {
		return out
	}
	text := m.Text
	if i := originalStart(text); i >= 0 {
		text = text[:i]
	}
	if len(text) > 20000 {
		text = text[:20000]
	}
	ignore := map[string]bool{}
	for _, ad := range append(append([]Address{m.From, m.Sender}, m.To...), m.ReplyTo...) {
		if ad.Address != "" {
			ignore[strings.ToLower(ad.Address)] = true
		}
	}
	var strong, weak []string
	alias := map[string]string{} // expanded address -> the address the sender used
	headerIndent := -1           // the indentation of the last field of the returned message's header, -1 after other lines
	suggested := false           // under a heading of suggested addresses
	for _, l := range strings.Split(text, "\n") {
		indent := len(l) - len(strings.TrimLeft(l, " \t"))
		if quotedHeaderLine.MatchString(l) {
			headerIndent = indent
			continue // "To: ..." of the returned message, not a recipient that failed
		}
		if headerIndent >= 0 && indent > headerIndent && strings.TrimSpace(l) != "" && !fieldLine.MatchString(l) {
			continue // RFC 5322 2.2.3: a folded line of that field
		}
		headerIndent = -1
		if strings.TrimSpace(l) == "" {
			suggested = false
		}
		if suggested {
			continue
		}
		if suggestionHeading.MatchString(l) {
			// "Possible alternatives:", "Did you mean": addresses the
			// notice proposes, down to the next blank line.
			suggested = true
			continue
		}
		if mm := expandedFrom.FindStringSubmatch(l); mm != nil && len(strong) > 0 {
			// Sendmail: "a@b" then "(expanded from: c@d)": c@d is the
			// address the sender used, a@b what an alias made of it.
			last := strong[len(strong)-1]
			alias[strings.ToLower(last)] = normAddr(mm[1])
			strong = appendUnique(strong[:len(strong)-1], normAddr(mm[1]))
			continue
		}
		smtpError := smtpErrorLine.MatchString(l)
		for _, loc := range addrInText.FindAllStringIndex(l, -1) {
			addr := strings.Trim(l[loc[0]:loc[1]], "<>.,;:'\"()[]")
			if i := strings.Index(strings.ToLower(addr), "mailto:"); i >= 0 {
				addr = addr[i+7:]
			}
			// X.400 gateways write "dda:SMTP=a@b" and "RFC-822=a@b".
			if mm := keyedAddress.FindStringSubmatch(addr); mm != nil {
				addr = mm[1]
			}
			if ignore[strings.ToLower(addr)] || strings.ContainsAny(addr, "=$") {
				continue
			}
			addr = normAddr(addr)
			if a, ok := alias[strings.ToLower(addr)]; ok {
				addr = a
			}
			before := strings.TrimSpace(strings.Trim(strings.TrimSpace(l[:loc[0]]), "<>\"'*-"))
			if before == "" || smtpError || recipientContext.MatchString(l[:loc[0]]) {
				strong = appendUnique(strong, addr)
			} else {
				weak = appendUnique(weak, addr)
			}
		}
	}
	switch {
	case len(strong) > 0:
		out = strong
	case len(weak) > 0:
		out = weak
	case p.report.original != nil:
		for _, ad := range p.report.original.To {
			out = appendUnique(out, ad.Address)
		}
	default:
		if i := originalStart(m.Text); i >= 0 {
			for _, l := range strings.Split(m.Text[i:], "\n") {
				if fieldLabel(l) == "to" {
					for _, mm := range addrInText.FindAllString(l, -1) {
						out = appendUnique(out, normAddr(strings.Trim(mm, "<>.,;:'\"()[]")))
					}
					break
				}
			}
		}
	}
	if len(out) > 20 {
		out = out[:20]
	}
	return out
}

var recipientContext = regexp.MustCompile(`(?i)(rcpt to|recipient|delivered to|deliver to|delivery to|message to|addressed( to)?|failed to|sent to|following address(es)?|address(es)?|user|mailbox|account)\W{0,6}$`)

// quotedHeaderLine matches a header field of the returned message that a
// notice repeats in its text ("To: ...", "From: ..."): its addresses are
// not the failed recipients.
var quotedHeaderLine = regexp.MustCompile(`(?i)^\s*>?\s*(to|from|cc|bcc|reply-to|sender|subject|date|sent|return-path|message-id|received|delivered-to|errors-to)\s*:`)

// suggestionHeading matches the heading of addresses a notice suggests
// instead of the one that failed.
var suggestionHeading = regexp.MustCompile(`(?i)(possible alternatives?|alternative (address(es)?|recipients?)|did you mean|suggested (address(es)?|recipients?)|suggestions?)\W*$`)

// fieldLine matches a line that starts with a label and a colon, as a
// notice lists the details of a message ("  RCPT TO: a@b").
var fieldLine = regexp.MustCompile(`^\s*[A-Za-z][A-Za-z -]{0,30}:`)

// smtpErrorLine matches a line holding a remote server's error answer, a
// 4xx or 5xx reply code (RFC 5321 4.2) at its start or an enhanced status
// code (RFC 3463): the address it names is the one refused.
var smtpErrorLine = regexp.MustCompile(`^[\s<>]*[45]\d\d[\s-]|\b[45]\.\d{1,3}\.\d{1,3}\b`)

// expandedFrom matches sendmail's "(expanded from: <a@b>)".
var expandedFrom = regexp.MustCompile(`(?i)^\s*\(expanded from:?\s*<?([^\s<>()]+@[^\s<>()]+?)>?\)`)

// keyedAddress matches "SMTP=a@b": a short key, then the address.
var keyedAddress = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,9}=([^=\s]+@[^=\s]+)$`)

var addrInText = regexp.MustCompile(`<?(?:mailto:)?[A-Za-z0-9._%+'/!#&*=?^{|}~-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}>?`)

// originalMarker finds where a bounce text starts quoting the returned
// message, so its addresses are not taken for failed recipients.
var originalMarker = regexp.MustCompile(`(?im)^[\s\-=*_]*(original message|returned message|unsent message|undelivered message|original mail|message header)s?( follows)?[\s\-=*_:]*$|^.*(below this line is a copy|this is a copy of the message|copy of the original|original message follows|message headers follow|headers? of the original message|returned mail follows|unsent message follows|original message is attached).*$|^.*original message.{0,40}(follows|below|attached):?\s*$|^>?(received|return-path|dkim-signature|x-received): `)

func originalStart(text string) int {
	if loc := originalMarker.FindStringIndex(text); loc != nil {
		return loc[0]
	}
	return -1
}

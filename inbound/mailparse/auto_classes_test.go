package mailparse

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// autoCase is a mail and the verdict on it.
type autoCase struct {
	name       string
	raw        string
	envelope   *string
	kind       Kind
	recipients []string
}

// mailOf writes a mail: From, To the support desk, Subject, more header
// lines, then the body.
func mailOf(from, subject string, header []string, body string) string {
	h := "From: " + from + "\nTo: support@ticketd.test\nSubject: " + subject + "\nDate: Tue, 04 Mar 2025 15:12:00 +0100\n" +
		"Message-ID: <" + strings.ReplaceAll(strings.Fields(subject + " x")[0], " ", "") + "@mx.example>\n"
	for _, l := range header {
		h += l + "\n"
	}
	return h + "\n" + body
}

func runAutoCases(t *testing.T, cases []autoCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			m := Parse([]byte(tt.raw), Options{EnvelopeFrom: tt.envelope})
			checkMessage(t, m)
			got := []any{m.Auto.Kind, m.Auto.Recipients}
			want := []any{tt.kind, tt.recipients}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("[kind recipients] mismatch (-want +got):\n%s\nreason: %q", diff, m.Auto.Reason)
			}
		})
	}
}

// Bounces whose sender is no recognisable mail system (an administrator,
// an antivirus or filtering gateway, an ordinary-looking address) are
// recognised by their subject and text together.
func TestBounceFromOrdinarySender(t *testing.T) {
	person := "kim@example.com"
	runAutoCases(t, []autoCase{
		{
			name: "filtering gateway",
			raw: mailOf(`"Email Security Gateway" <scanner@corp.example>`, "Delivery failure: Your message to kim@corp.example was blocked", nil,
				"Your message could not be delivered to the following recipient:\n\n    kim@corp.example\n\n"+
					"Reason: the message violates the content policy of corp.example.\n\nThis is an automatically generated message.\n"),
			kind: KindBounce, recipients: []string{"kim@corp.example"},
		},
		{
			name: "administrator's name",
			raw: mailOf(`Administrator <admin@example.org>`, "Undeliverable: Ticket 4411", nil,
				"Your message did not reach some or all of the intended recipients.\n\n"+
					"      Subject:  Ticket 4411\n      Sent:     04.03.2025 15:12\n\n"+
					"The following recipient(s) cannot be reached:\n\n      lee@example.org on 04.03.2025 15:12\n"+
					"            The e-mail account does not exist at the organization this message was sent to.\n"),
			kind: KindBounce, recipients: []string{"lee@example.org"},
		},
		{
			name: "help desk address, sendmail wording",
			raw: mailOf(`IT Helpdesk <it@corp.example>`, "Returned mail: see transcript for details", nil,
				"The original message was received at Tue, 4 Mar 2025 15:12:00 +0100\nfrom mail.ticketd.test [192.0.2.1]\n\n"+
					"   ----- The following addresses had permanent fatal errors -----\n<gone@corp.example>\n"+
					"    (reason: 550 5.1.1 User unknown)\n"),
			kind: KindBounce, recipients: []string{"gone@corp.example"},
		},
		{
			name:     "a person's mail about an undeliverable mail stays ordinary, whatever the envelope",
			raw:      mailOf(`Kim Lee <kim@example.com>`, "Undeliverable mail to my colleague", nil, "Hi,\n\nmy mail to lee@example.org came back with \"user unknown\". Is the address right?\n\nKim\n"),
			envelope: &person,
			kind:     KindNone,
		},
		{
			name: "a person forwarding a bounce stays ordinary",
			raw: mailOf(`Kim Lee <kim@example.com>`, "Fwd: Undeliverable: Ticket 4411", nil,
				"Why did this bounce?\n\n---------- Forwarded message ---------\nFrom: postmaster@example.org\nSubject: Undeliverable: Ticket 4411\n\n"+
					"Your message did not reach some or all of the intended recipients.\n\nlee@example.org\n"),
			kind: KindNone,
		},
	})
}

// Bounce wording in more languages, and failure subjects anywhere in
// the subject.
func TestBounceLanguagesAndSubjects(t *testing.T) {
	daemon := "MAILER-DAEMON@mx.example (Mail Delivery System)"
	runAutoCases(t, []autoCase{
		{
			name: "russian",
			raw: mailOf(`"Почтовая система" <robot@mail.example.ru>`, "Недоставленное сообщение", nil,
				"Ваше сообщение не может быть доставлено следующим получателям:\n\n  ivan@example.ru\n\nПричина: почтовый ящик не существует.\n"),
			kind: KindBounce, recipients: []string{"ivan@example.ru"},
		},
		{
			name: "russian from the mailer daemon, wording only in the text",
			raw: mailOf(daemon, "Уведомление", nil,
				"Это письмо создано автоматически.\nНе удалось доставить сообщение получателю olga@example.ru: адрес не найден.\n"),
			kind: KindBounce, recipients: []string{"olga@example.ru"},
		},
		{
			name: "ukrainian",
			raw: mailOf(`Поштова служба <postmaster@example.ua>`, "Повідомлення не доставлено", nil,
				"Не вдалося доставити ваше повідомлення адресату taras@example.ua.\n"),
			kind: KindBounce, recipients: []string{"taras@example.ua"},
		},
		{
			name: "portuguese",
			raw: mailOf(`Sistema de Correio <correio@example.com.br>`, "Mensagem não entregue: Ticket 4411", nil,
				"Não foi possível entregar a sua mensagem para ana@example.com.br.\nMotivo: caixa postal inexistente.\n"),
			kind: KindBounce, recipients: []string{"ana@example.com.br"},
		},
		{
			name: "polish",
			raw: mailOf(`Serwer poczty <poczta@example.pl>`, "Wiadomość niedostarczona", nil,
				"Nie można dostarczyć wiadomości do adresata jan@example.pl.\nSkrzynka odbiorcza nie istnieje.\n"),
			kind: KindBounce, recipients: []string{"jan@example.pl"},
		},
		{
			name: "italian",
			raw: mailOf(`Servizio di posta <posta@example.it>`, "Mancato recapito del messaggio", nil,
				"Non è stato possibile recapitare il messaggio al destinatario luca@example.it.\n"),
			kind: KindBounce, recipients: []string{"luca@example.it"},
		},
		{
			name: "spanish",
			raw: mailOf(`Servidor de correo <correo@example.es>`, "No se pudo entregar el mensaje", nil,
				"Su mensaje no se pudo entregar a pablo@example.es porque el buzón no existe.\n"),
			kind: KindBounce, recipients: []string{"pablo@example.es"},
		},
		{
			name: "dutch",
			raw: mailOf(`Mailserver <mail@example.nl>`, "Onbestelbaar: Ticket 4411", nil,
				"Uw bericht kon niet worden bezorgd bij de volgende ontvanger: joris@example.nl\n"),
			kind: KindBounce, recipients: []string{"joris@example.nl"},
		},
		{
			name: "turkish",
			raw: mailOf(`Posta Sunucusu <posta@example.com.tr>`, "İletilemeyen ileti", nil,
				"İletiniz aşağıdaki alıcıya teslim edilemedi: ayse@example.com.tr\n"),
			kind: KindBounce, recipients: []string{"ayse@example.com.tr"},
		},
		{
			name: "czech",
			raw: mailOf(`Poštovní server <posta@example.cz>`, "Nedoručitelná zpráva", nil,
				"Vaši zprávu nelze doručit příjemci petr@example.cz.\n"),
			kind: KindBounce, recipients: []string{"petr@example.cz"},
		},
		{
			name: "failure after a ticket subject and a tag",
			raw: mailOf(`"Mail Gateway" <gw@corp.example>`, "[EXTERNAL] Ticket 4411 - Undeliverable message", nil,
				"Your message could not be delivered to the following recipients:\n\nkim@corp.example\n"),
			kind: KindBounce, recipients: []string{"kim@corp.example"},
		},
		{
			name: "failure inside the subject, from the mailer daemon",
			raw: mailOf(daemon, "Notification for ticket 4411: mail delivery failed, returning message to sender", nil,
				"This message was created automatically by mail delivery software.\n\n  lost@example.net\n    mailbox is full\n"),
			kind: KindBounce, recipients: []string{"lost@example.net"},
		},
		{
			name: "a person asking in german about their undelivered mail stays ordinary",
			raw: mailOf(`Jana Berg <jana@example.de>`, "Frage: Nachricht nicht zugestellt", nil,
				"Hallo,\n\nmeine Nachricht an den Kollegen konnte nicht zugestellt werden. Woran liegt das?\n"),
			kind: KindNone,
		},
		{
			name: "a person asking in english, in the notice's words, stays ordinary",
			raw: mailOf(`Kim Lee <kim@example.com>`, "Message not delivered", nil,
				"Hi,\n\nI keep getting this: your message could not be delivered to lee@example.org. Can you help me?\n"),
			kind: KindNone,
		},
		{
			name: "a person's subject that mentions a failed delivery stays ordinary",
			raw:  mailOf(`Kim Lee <kim@example.com>`, "Question about the undeliverable parcel", nil, "Hi,\n\nthe parcel could not be delivered to my address. What now?\n"),
			kind: KindNone,
		},
	})
}

// Delivery-delay warnings are delivery-status, not bounces.
func TestDelayWarnings(t *testing.T) {
	daemon := "MAILER-DAEMON@mx.example (Mail Delivery System)"
	runAutoCases(t, []autoCase{
		{
			name: "has not yet been delivered",
			raw: mailOf(daemon, "Delivery Status Notification (Delay)", nil,
				"This is an automatically generated Delivery Status Notification.\n\nTHIS IS A WARNING MESSAGE ONLY.\n\n"+
					"YOU DO NOT NEED TO RESEND YOUR MESSAGE.\n\nDelivery to the following recipients has been delayed:\n\n     slow@example.net\n"),
			kind: KindDeliveryStatus, recipients: []string{"slow@example.net"},
		},
		{
			name: "delivery warning from a gateway",
			raw: mailOf(`"Mail Gateway" <gw@corp.example>`, "Delivery warning: Ticket 4411", nil,
				"Your message to kim@corp.example has not yet been delivered. The server will keep trying for 3 more days;\n"+
					"you will be notified if delivery fails permanently.\n"),
			kind: KindDeliveryStatus, recipients: []string{"kim@corp.example"},
		},
		{
			name: "german",
			raw: mailOf(daemon, "Warnung: Zustellung verzögert", nil,
				"Ihre Nachricht an jana@example.de konnte bisher nicht zugestellt werden. Es wird weiter versucht.\n"),
			kind: KindDeliveryStatus, recipients: []string{"jana@example.de"},
		},
		{
			name: "a person whose parcel has not yet been delivered stays ordinary",
			raw:  mailOf(`Kim Lee <kim@example.com>`, "Order 1234", nil, "Hi,\n\nmy order has not yet been delivered. Delivery warning on your site says delayed.\n"),
			kind: KindNone,
		},
	})
}

// Complaint reports that are not in the ARF format, with the reported
// message attached.
func TestComplaintWithoutARF(t *testing.T) {
	reported := "From: Support <support@ticketd.test>\nTo: kim@mail.example\nSubject: Your ticket 4411\nMessage-ID: <t4411@ticketd.test>\n\nWe fixed it.\n"
	runAutoCases(t, []autoCase{
		{
			name: "abuse report with the message attached",
			raw: mailOf("staff@mail.example", "complaint about message from 192.0.2.1",
				[]string{"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="b"`},
				"--b\nContent-Type: text/plain\n\nThis is an email abuse report for an email message received from IP 192.0.2.1 on Tue, 04 Mar 2025 15:12:00 -0800.\n"+
					"For more information about this format please see the feedback loop program.\n"+
					"--b\nContent-Type: message/rfc822\nContent-Disposition: inline\n\n"+reported+"--b--\n"),
			kind: KindComplaint, recipients: []string{"kim@mail.example"},
		},
		{
			name: "marked as spam, message attached",
			raw: mailOf("Feedback Loop <fbl@mail.example>", "Spam report",
				[]string{"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="b"`},
				"--b\nContent-Type: text/plain\n\nA user of our service marked the attached message as spam.\n"+
					"--b\nContent-Type: message/rfc822\n\n"+reported+"--b--\n"),
			kind: KindComplaint, recipients: []string{"kim@mail.example"},
		},
		{
			name: "a person complaining about a message stays ordinary",
			raw: mailOf(`Kim Lee <kim@example.com>`, "Complaint about the message I got",
				[]string{"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="b"`},
				"--b\nContent-Type: text/plain\n\nI want to complain: the attached message was rude and I consider it spam.\n"+
					"--b\nContent-Type: message/rfc822\n\n"+reported+"--b--\n"),
			kind: KindNone,
		},
	})
}

// Rejections and loop notices of mailing-list software, which carry no
// standard header.
func TestListSoftwareNotices(t *testing.T) {
	runAutoCases(t, []autoCase{
		{
			name: "post rejected",
			raw: mailOf("users-owner@lists.example.org", "Your message to Users was rejected", nil,
				"You are not allowed to post to this mailing list, and your message has been\nautomatically rejected. "+
					"If you think that your messages are being rejected in error, contact the mailing list owner at\nusers-owner@lists.example.org.\n"),
			kind: KindBounce, recipients: []string{"users@lists.example.org"},
		},
		{
			name: "authorization denied",
			raw: mailOf("SYMPA <sympa@lists.example.org>", "Message distribution: Authorization denied", nil,
				"Your message for list support-l has been rejected.\nThe message was sent to support-l@lists.example.org.\n"+
					"You are not allowed to send messages to this list.\n"),
			kind: KindBounce, recipients: []string{"support-l@lists.example.org"},
		},
		{
			name: "held for moderation",
			raw: mailOf("users-bounces@lists.example.org", "Your message to Users awaits moderator approval", nil,
				"Your mail to 'Users' with the subject\n\n    Ticket 4411\n\nIs being held until the list moderator can review it for approval.\n\n"+
					"The reason it is being held:\n\n    Post by non-member to a members-only list\n"),
			kind: KindDeliveryStatus, recipients: []string{"users@lists.example.org"},
		},
		{
			name: "mail loop",
			raw: mailOf("Mail Administrator <admin@example.net>", "Mail loop detected", nil,
				"Your message to loop@example.net has been rejected: mail loop detected (too many hops).\n"),
			kind: KindBounce, recipients: []string{"loop@example.net"},
		},
		{
			name: "a person who cannot post to a list stays ordinary",
			raw:  mailOf(`Kim Lee <kim@example.com>`, "Mailing list", nil, "Hi,\n\nthe list says I am not allowed to post to this mailing list. Can you add me?\n"),
			kind: KindNone,
		},
	})
}

// A delivery report wrapped inside an attached message: the recipients
// come from the report, not from the wrapper's or the report's To.
func TestWrappedDeliveryReport(t *testing.T) {
	dsn := "From: MAILER-DAEMON@mx.example.net\nTo: bounces@relay.example\nSubject: Undelivered Mail Returned to Sender\n" +
		"MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\n\n" +
		"--r\nContent-Type: text/plain\n\nThis is the mail system at host mx.example.net.\n" +
		"--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n" +
		"Final-Recipient: rfc822; gone@example.net\nAction: failed\nStatus: 5.1.1\n" +
		"--r--\n"
	runAutoCases(t, []autoCase{
		{
			name: "forwarded by the relay",
			raw: mailOf("postmaster@relay.example", "Undeliverable: Ticket 4411",
				[]string{"MIME-Version: 1.0", `Content-Type: multipart/mixed; boundary="w"`},
				"--w\nContent-Type: text/plain\n\nThe attached report concerns a message you sent.\n"+
					"--w\nContent-Type: message/rfc822\n\n"+dsn+"--w--\n"),
			kind: KindBounce, recipients: []string{"gone@example.net"},
		},
	})
}

// A folded continuation line of the returned message's header, repeated
// in the notice, names no failed recipient.
func TestBounceFoldedHeaderLine(t *testing.T) {
	runAutoCases(t, []autoCase{
		{
			name: "folded To",
			raw: mailOf("MAILER-DAEMON@mx.example (Mail Delivery System)", "Undelivered Mail Returned to Sender", nil,
				"The following message could not be delivered:\n\n  To: kim@example.net,\n      lee@example.net\n  Subject: Ticket 4411\n\n"+
					"Reason: 550 5.1.1 <kim@example.net>: user unknown\n"),
			kind: KindBounce, recipients: []string{"kim@example.net"},
		},
		{
			name: "suggested addresses are not recipients",
			raw: mailOf("Mail Delivery System <postmaster@gw.example.org>", "Undeliverable Mail", nil,
				"The message that you sent was undeliverable to the following:\n\tann@gw.example.org (user not found)\n\n"+
					"Possible alternatives:\n\tann.smith@gw.example.org\n\tann.jones@gw.example.org\n"),
			kind: KindBounce, recipients: []string{"ann@gw.example.org"},
		},
		{
			name: "folded Cc with a tab",
			raw: mailOf("MAILER-DAEMON@mx.example (Mail Delivery System)", "Undelivered Mail Returned to Sender", nil,
				"Delivery failed for:\n\n<ana@example.org>: mailbox unavailable\n\nCc: team@example.org,\n\tboss@example.org\n"),
			kind: KindBounce, recipients: []string{"ana@example.org"},
		},
	})
}

// Machines' notices that say nobody reads answers to them: a no-reply
// sender, or a text saying so at the start of a line. In reply to a mail,
// the text makes an auto-reply; alone they are auto-generated, and intake
// decides whether they answer a mail of ticketd.
func TestAutomaticNotices(t *testing.T) {
	irt := []string{"In-Reply-To: <ack-4411@ticketd.test>"}
	runAutoCases(t, []autoCase{
		{
			name: "no-reply sender",
			raw:  mailOf("Shop <noreply@shop.example>", "Your order has shipped", nil, "Your order 1234 is on its way.\n"),
			kind: KindAutoGenerated,
		},
		{
			name: "no-reply sender in reply to a mail: intake decides",
			raw:  mailOf("Vendor Support <do-not-reply@vendor.example>", "Re: Ticket 4411", irt, "We received your request and will get back to you.\n"),
			kind: KindAutoGenerated,
		},
		{
			name: "mailbox not monitored, in reply",
			raw: mailOf("Accounts <accounts@vendor.example>", "Re: Ticket 4411", irt,
				"Thank you for your email.\n\nThis mailbox is not monitored. For invoices, please use the portal at https://portal.vendor.example.\n"),
			kind: KindAutoReply,
		},
		{
			name: "automated response, german",
			raw: mailOf("Buchhaltung <buchhaltung@firma.example>", "AW: Ticket 4411", irt,
				"Vielen Dank für Ihre Nachricht.\n\nDies ist eine automatisch erzeugte Nachricht. Bitte antworten Sie nicht auf diese E-Mail.\n"),
			kind: KindAutoReply,
		},
		{
			name: "automated response, french",
			raw: mailOf("Service client <client@boutique.example>", "RE: Ticket 4411", irt,
				"Bonjour,\n\nCeci est un message automatique, merci de ne pas répondre.\n"),
			kind: KindAutoReply,
		},
		{
			name: "automated response, spanish",
			raw: mailOf("Atención <atencion@tienda.example>", "RE: Ticket 4411", irt,
				"Este es un mensaje automático. Por favor, no responda a este correo.\n"),
			kind: KindAutoReply,
		},
		{
			name: "a notice opening a conversation is auto-generated",
			raw: mailOf("Portal <portal@vendor.example>", "Password changed", nil,
				"Your password was changed.\n\nThis is an automated message. Please do not reply to this email.\n"),
			kind: KindAutoGenerated,
		},
		{
			name: "a newsletter from a no-reply address stays bulk",
			raw:  mailOf("News <noreply@news.example>", "March news", []string{"List-Unsubscribe: <https://news.example/u>"}, "Read our news.\n"),
			kind: KindBulk,
		},
		{
			name: "a person quoting a notice in a sentence stays ordinary",
			raw: mailOf("Kim Lee <kim@example.com>", "Re: Ticket 4411", irt,
				"Hi,\n\nthe portal only says \"This is an automated message, please do not reply\" and nothing else. What now?\n"),
			kind: KindNone,
		},
		{
			name: "a person forwarding a notice stays ordinary",
			raw: mailOf("Kim Lee <kim@example.com>", "Fwd: Password changed", irt,
				"I did not change it!\n\n-------- Forwarded message --------\nFrom: noreply@portal.example\n\nThis is an automated message. Please do not reply to this email.\n"),
			kind: KindNone,
		},
		{
			name: "a reply quoting a notice stays ordinary",
			raw: mailOf("Kim Lee <kim@example.com>", "Re: Password changed", irt,
				"That was not me.\n\nOn Tue, Mar 4, 2025 at 3:12 PM Portal <portal@vendor.example> wrote:\n> This is an automated message. Please do not reply to this email.\n"),
			kind: KindNone,
		},
	})
}

// Vacation replies that only the Precedence header and their text mark.
func TestVacationWithPrecedence(t *testing.T) {
	irt := "In-Reply-To: <ack-4411@ticketd.test>"
	runAutoCases(t, []autoCase{
		{name: "english", raw: mailOf("Kim Lee <kim@example.com>", "Re: Ticket 4411", []string{"Precedence: junk", irt},
			"Thank you for your email. I am currently out of the office until 10 March.\n"), kind: KindAutoReply},
		{name: "german", raw: mailOf("Jana Berg <jana@example.de>", "Re: Ticket 4411", []string{"Precedence: bulk"},
			"Ich bin bis zum 10. März nicht im Büro.\n"), kind: KindAutoReply},
		{name: "spanish", raw: mailOf("Pablo <pablo@example.es>", "Re: Ticket 4411", []string{"Precedence: bulk", irt},
			"Estoy fuera de la oficina hasta el lunes.\n"), kind: KindAutoReply},
		{name: "a subject naming an absence, in reply", raw: mailOf("Jana Berg <jana@example.de>", "Abwesenheitsbenachrichtigung: Ticket 4411", nil,
			"Ich bin im Urlaub.\n"), kind: KindAutoReply},
		{name: "a list mail about holidays stays bulk", raw: mailOf("News <news@example.com>", "Holiday opening hours", []string{"Precedence: bulk"},
			"I am on vacation next week, says our CEO, and so is the shop.\n"), kind: KindBulk},
		{name: "a person's reply saying they are away stays ordinary", raw: mailOf("Kim Lee <kim@example.com>", "Re: Ticket 4411", []string{irt},
			"I am out of the office until Monday, I will test it then.\n"), kind: KindNone},
	})
}

package mailparse

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// replyCase is a reply body and what ExtractReply must make of it.
type replyCase struct {
	name      string
	text      string
	reply     string
	signature string
}

func runReplyCases(t *testing.T, cases []replyCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			reply, sig := ExtractReply(tt.text)
			if diff := cmp.Diff([2]string{tt.reply, tt.signature}, [2]string{reply, sig}); diff != "" {
				t.Errorf("ExtractReply mismatch [reply signature] (-want +got):\n%s", diff)
			}
		})
	}
}

// Quoted history whose long lines the sender's client wrapped again after
// quoting them: the continuation lines lost their ">", and are history
// all the same.
func TestReplyRewrappedQuote(t *testing.T) {
	runReplyCases(t, []replyCase{
		{
			name: "top-posted answer above a rewrapped quote",
			text: "Yes, the new driver fixed it. Thanks!\n\n" +
				"On Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\n\n" +
				"> Hello Kim, could you please install the printer driver version 5.2 from\n" +
				"the portal and tell us whether the printer still shows the paper jam\n" +
				"error after a restart?\n" +
				">\n" +
				"> Kind regards, the support team\n",
			reply: "Yes, the new driver fixed it. Thanks!",
		},
		{
			name: "german, several paragraphs, last one rewrapped to the end",
			text: "Hallo,\n\ndas hat geklappt.\n\nGruß\nJana\n\n" +
				"Am 04.03.2025 um 15:12 schrieb Support <support@ticketd.test>:\n" +
				"> Hallo Jana,\n>\n" +
				"> bitte starten Sie den Router neu und melden Sie sich, falls die Leuchte\n" +
				"weiterhin rot blinkt. Wir schicken dann einen Techniker vorbei, der das\n" +
				"Gerät austauscht.\n" +
				">\n" +
				"> Viele Grüße, das Support-Team, erreichbar montags bis freitags von 8\n" +
				"bis 18 Uhr\n",
			reply: "Hallo,\n\ndas hat geklappt.\n\nGruß\nJana",
		},
		{
			name: "a rewrapped line that ends at a full stop is still history",
			text: "Done, thanks.\n\nOn Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\n" +
				"> We replaced the toner cartridge on the second floor this morning. The\n" +
				"printer should work again now. Please tell us if it does not print in\n" +
				"> colour.\n" +
				"> It may need a restart after the first page has been printed, see below.\n" +
				"Then it works.\n",
			reply: "Done, thanks.",
		},
		{
			name: "an answer written right below a long quoted question stays",
			text: "> Could you tell us which laptop model you are using and when you bought it?\n" +
				"A ThinkPad X1, bought in 2023.\n" +
				"> And which version of the VPN client is installed on it at the moment?\n" +
				"Version 4.2.\n",
			reply: "> Could you tell us which laptop model you are using and when you bought it?\n" +
				"A ThinkPad X1, bought in 2023.\n" +
				"> And which version of the VPN client is installed on it at the moment?\n" +
				"Version 4.2.",
		},
		{
			name: "an answer right below a single long quoted line stays",
			text: "On Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\n" +
				"> Please send us the output of the status command on the affected server\n" +
				"Here it is: active (running) since Monday\n",
			reply: "Here it is: active (running) since Monday",
		},
		{
			name: "an answer below a quoted sentence that ends the line stays",
			text: "On Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\n" +
				"> We have replaced the toner cartridge on the second floor this morning.\n" +
				"Thank you, it prints again.\n",
			reply: "Thank you, it prints again.",
		},
	})
}

// "Sent from my <device>" followed by an unquoted copy of the mail being
// answered: what follows the device line is history, however long.
func TestReplyDeviceLineBeforeUnquotedCopy(t *testing.T) {
	original := "Hello Kim,\n\nyour ticket has been updated: please restart the router tonight and\n" +
		"tell us tomorrow whether the light is green.\n\nIf it is still red, we will send a technician.\n\n" +
		"Best regards\nSupport Desk\nhttps://help.example.com\n"
	runReplyCases(t, []replyCase{
		{
			name:      "english",
			text:      "Ok, I will restart it tonight.\n\nSent from my Samsung Galaxy smartphone.\n\n" + original,
			reply:     "Ok, I will restart it tonight.",
			signature: "Sent from my Samsung Galaxy smartphone.",
		},
		{
			name:      "spanish",
			text:      "Vale, lo reinicio esta noche.\n\nEnviado desde mi iPhone\n\n" + original,
			reply:     "Vale, lo reinicio esta noche.",
			signature: "Enviado desde mi iPhone",
		},
		{
			name:      "german, a copy right under the device line",
			text:      "Mache ich heute Abend.\n\nVon meinem Huawei-Telefon gesendet\n" + original,
			reply:     "Mache ich heute Abend.",
			signature: "Von meinem Huawei-Telefon gesendet",
		},
		{
			name: "a forward below the device line is kept",
			text: "See below.\n\nSent from my iPhone\n\nBegin forwarded message:\n\nFrom: Vendor <v@example.com>\nSubject: Renewal\n\nYour licence expires.\n",
			reply: "See below.\n\nSent from my iPhone\n\nBegin forwarded message:\n\nFrom: Vendor <v@example.com>\nSubject: Renewal\n\n" +
				"Your licence expires.",
		},
	})
}

// Sign-offs of mobile and web clients in many wordings and languages.
func TestReplyMobileSignOffs(t *testing.T) {
	lines := []string{
		"Sent from my Galaxy",
		"Sent from my Samsung Galaxy smartphone.",
		"Sent from my HUAWEI phone",
		"Sent from my BlackBerry® wireless device",
		"Sent from my T-Mobile 4G LTE Device",
		"Sent via the Samsung Galaxy S21 5G, an AT&T 5G smartphone",
		"Sent from Yahoo Mail on Android",
		"Sent from Yahoo Mail for iPhone",
		"Sent from Mail for Windows",
		"Sent from Gmail Mobile",
		"Sent from ProtonMail mobile",
		"Sent from my Android device with K-9 Mail. Please excuse my brevity.",
		"Sent with BlackBerry Work (www.blackberry.com)",
		"Get Outlook for iOS<https://aka.ms/o0ukef>",
		"Get BlueMail for Android",
		"Envoyé de mon iPhone",
		"Envoyé depuis mon smartphone Samsung Galaxy.",
		"Envoyé de mon appareil Galaxy",
		"Envoyé à partir de Outlook pour Android",
		"Obtenir Outlook pour iOS<https://aka.ms/o0ukef>",
		"Télécharger Outlook pour Android",
		"Envoyé depuis Yahoo Mail pour Android",
		"Von meinem iPhone gesendet",
		"Gesendet von meinem iPhone",
		"Von meinem Samsung Galaxy Smartphone gesendet.",
		"Gesendet von Yahoo Mail auf Android",
		"Outlook für Android herunterladen<https://aka.ms/ghei36>",
		"Gesendet mit der GMX Mail App",
		"Gesendet mit der WEB.DE Mail App",
		"Diese Nachricht wurde von meinem Android-Mobiltelefon mit GMX Mail gesendet.",
		"Gesendet von Mail für Windows",
		"Enviado desde mi iPhone",
		"Enviado desde mi smartphone Samsung Galaxy.",
		"Enviado desde Yahoo Mail para Android",
		"Obtener Outlook para Android",
		"Enviado desde mi dispositivo Huawei",
		"Inviato da iPhone",
		"Inviato dal mio iPhone",
		"Inviato da smartphone Samsung Galaxy.",
		"Inviato da Yahoo Mail su Android",
		"Scarica Outlook per Android",
		"Inviato dal mio dispositivo Huawei",
		"Verzonden vanaf mijn iPhone",
		"Verstuurd vanaf mijn iPhone",
		"Verzonden vanaf Samsung-smartphone",
		"Verzonden met Yahoo Mail voor Android",
		"Outlook voor Android downloaden",
		"Enviado do meu iPhone",
		"Enviado de meu iPhone",
		"Enviado do meu smartphone Samsung Galaxy.",
		"Enviado do Yahoo Mail para Android",
		"Obter o Outlook para Android",
		"Baixe o Outlook para Android",
		"Skickat från min iPhone",
		"Sendt fra min iPhone",
		"Lähetetty iPhonesta",
		"Wysłane z iPhone'a",
		"Wysłane z mojego smartfona Galaxy",
		"Odesláno z iPhonu",
		"Отправлено с iPhone",
		"Отправлено из мобильной Почты Mail.ru",
		"iPhone'umdan gönderildi",
		"Trimis de pe iPhone-ul meu",
		"Στάλθηκε από το iPhone μου",
		"iPhoneから送信",
		"发自我的iPhone",
		"从我的 iPhone 发送",
		"傳自我的 iPhone",
		"내 iPhone에서 보냄",
	}
	var cases []replyCase
	for _, l := range lines {
		cases = append(cases, replyCase{name: l, text: "The screen works again.\n\n" + l + "\n", reply: "The screen works again.", signature: l})
	}
	// What only looks like one stays.
	for _, l := range []string{
		"Sent from my desk, where the wifi works.",
		"Sent the logs from my laptop yesterday, did they arrive?",
		"Enviado desde mi oficina el lunes, ¿lo recibieron?",
	} {
		cases = append(cases, replyCase{name: "text: " + l, text: "The screen works again.\n\n" + l + "\n", reply: "The screen works again.\n\n" + l})
	}
	runReplyCases(t, cases)
}

// The header block of a quoted mail in other languages, starting with a
// date label under a line of "=" or "_".
func TestReplyDateFirstHeaderBlock(t *testing.T) {
	block := func(sep, date, from, to, subject string) string {
		return "\n\n" + sep + "\n" + date + " 04.03.2025 15:12\n" + from + " Support <support@ticketd.test>\n" +
			to + " kim@example.com\n" + subject + " Ticket 4411\n\nHello Kim,\nplease restart the router.\n"
	}
	eq := strings.Repeat("=", 30)
	us := strings.Repeat("_", 32)
	runReplyCases(t, []replyCase{
		{name: "german", text: "Danke, erledigt." + block(eq, "Datum:", "Von:", "An:", "Betreff:"), reply: "Danke, erledigt."},
		{name: "polish", text: "Dziękuję, działa." + block(us, "Data:", "Od:", "Do:", "Temat:"), reply: "Dziękuję, działa."},
		{name: "czech", text: "Děkuji." + block(eq, "Datum:", "Od:", "Komu:", "Předmět:"), reply: "Děkuji."},
		{name: "turkish", text: "Teşekkürler." + block(us, "Tarih:", "Kimden:", "Kime:", "Konu:"), reply: "Teşekkürler."},
		{name: "hungarian", text: "Köszönöm." + block(eq, "Dátum:", "Feladó:", "Címzett:", "Tárgy:"), reply: "Köszönöm."},
		{name: "romanian", text: "Mulțumesc." + block(us, "Data:", "De la:", "Către:", "Subiect:"), reply: "Mulțumesc."},
		{name: "russian", text: "Спасибо." + block(eq, "Дата:", "От:", "Кому:", "Тема:"), reply: "Спасибо."},
		{name: "ukrainian", text: "Дякую." + block(us, "Дата:", "Від:", "Кому:", "Тема:"), reply: "Дякую."},
		{name: "greek", text: "Ευχαριστώ." + block(eq, "Ημερομηνία:", "Από:", "Προς:", "Θέμα:"), reply: "Ευχαριστώ."},
		{name: "swedish", text: "Tack." + block(us, "Datum:", "Från:", "Till:", "Ämne:"), reply: "Tack."},
		{name: "italian", text: "Grazie." + block(eq, "Data:", "Da:", "A:", "Oggetto:"), reply: "Grazie."},
		{name: "portuguese", text: "Obrigado." + block(us, "Data:", "De:", "Para:", "Assunto:"), reply: "Obrigado."},
		{name: "finnish", text: "Kiitos." + block(eq, "Päivämäärä:", "Lähettäjä:", "Vastaanottaja:", "Aihe:"), reply: "Kiitos."},
		{name: "korean", text: "감사합니다." + block(us, "날짜:", "보낸 사람:", "받는 사람:", "제목:"), reply: "감사합니다."},
		{name: "dutch", text: "Bedankt." + block(eq, "Datum:", "Van:", "Aan:", "Onderwerp:"), reply: "Bedankt."},
		{
			name: "lotus notes, To first under dashes",
			text: "Thanks.\n\n-----------------------------------------\nTo: Kim Lee <kim@example.com>\nFrom: Support <support@ticketd.test>\n" +
				"Date: 03/04/2025 03:12PM\nSubject: Ticket 4411\n\nPlease restart the router.\n",
			reply: "Thanks.",
		},
		{
			name:  "a list of dates in the answer is text",
			text:  "The outages were:\n\nDatum: 04.03.2025 15:12\nDatum: 05.03.2025 09:00\n\nCan you check?",
			reply: "The outages were:\n\nDatum: 04.03.2025 15:12\nDatum: 05.03.2025 09:00\n\nCan you check?",
		},
	})
}

// Attribution lines that begin with the date, with no colon at the end.
func TestReplyDateFirstAttribution(t *testing.T) {
	quote := "\n> Please restart the router.\n> Support\n"
	runReplyCases(t, []replyCase{
		{name: "ISO date, GMT offset", text: "Done.\n\n2025-03-04 15:12 GMT+01:00 Support Desk <support@ticketd.test>" + quote, reply: "Done."},
		{name: "ISO date with seconds", text: "Done.\n\n2025-03-04 15:12:07 Support Desk <support@ticketd.test>" + quote, reply: "Done."},
		{name: "slashes and a comma", text: "Done.\n\n04/03/2025 15:12, Support Desk <support@ticketd.test>" + quote, reply: "Done."},
		{name: "dots, UTC offset", text: "Erledigt.\n\n04.03.2025 15:12 (UTC+01:00) support@ticketd.test" + quote, reply: "Erledigt."},
		{name: "US form with AM/PM", text: "Done.\n\n3/4/2025 3:12 PM, \"Support Desk\" <support@ticketd.test>" + quote, reply: "Done."},
		{name: "weekday and month name", text: "Done.\n\nTue, 4 Mar 2025 15:12:07 +0100 Support Desk <support@ticketd.test>" + quote, reply: "Done."},
		{name: "no quote marks: the copy below is history", text: "Done.\n\n2025-03-04 15:12 GMT+01:00 Support Desk <support@ticketd.test>\n\nPlease restart the router.\n", reply: "Done."},
		{
			name:  "a dated log line with an address is text",
			text:  "The log says:\n\n2025-03-04 15:12:07 delivery to kim@example.com failed\n\nWhat does it mean?",
			reply: "The log says:\n\n2025-03-04 15:12:07 delivery to kim@example.com failed\n\nWhat does it mean?",
		},
	})
}

// Attributions spread over several lines, with blank lines inside.
func TestReplyAttributionWithBlankLines(t *testing.T) {
	runReplyCases(t, []replyCase{
		{
			name:  "gmail, address broken off",
			text:  "Thanks, that did it.\n\nOn Tue, Mar 4, 2025 at 3:12 PM Support Desk <\n\nsupport@ticketd.test> wrote:\n\n> Please restart.\n",
			reply: "Thanks, that did it.",
		},
		{
			name:  "french, name on its own line",
			text:  "Merci, c'est réglé.\n\nLe mar. 4 mars 2025 à 15:12,\n\nSupport Desk <support@ticketd.test> a écrit :\n\n> Bonjour\n",
			reply: "Merci, c'est réglé.",
		},
		{
			name:  "wrote alone after a blank line, history unquoted",
			text:  "Ok.\n\nOn Tue, 4 Mar 2025 at 15:12, Support Desk <support@ticketd.test>\n\nwrote:\n\nPlease restart the router.\n",
			reply: "Ok.",
		},
		{
			name:  "a date line, a blank, then a sentence ending in wrote stays",
			text:  "On Tuesday at 3 PM\n\nthe technician wrote: the part is ordered.\n\nWhen will it arrive?",
			reply: "On Tuesday at 3 PM\n\nthe technician wrote: the part is ordered.\n\nWhen will it arrive?",
		},
	})
}

// The attribution as the very first line, the reply below it unquoted:
// the reply must not come out empty.
func TestReplyAttributionFirst(t *testing.T) {
	runReplyCases(t, []replyCase{
		{
			name:  "reply below, nothing else",
			text:  "On Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\nThe printer works again, thank you!\n",
			reply: "The printer works again, thank you!",
		},
		{
			name:  "reply below, quote after it",
			text:  "On Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\n\nThe printer works again, thank you!\n\n> Did the restart help?\n",
			reply: "The printer works again, thank you!",
		},
		{
			name:  "german",
			text:  "Am 04.03.2025 um 15:12 schrieb Support <support@ticketd.test>:\nDanke, geht wieder.\n\nJana\n",
			reply: "Danke, geht wieder.\n\nJana",
		},
		{
			name:  "bottom-posted answer below the quote is unchanged",
			text:  "On Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\n> Did the restart help?\n\nYes.\n",
			reply: "Yes.",
		},
	})
}

// Quote prefixes made of initials, as The Bat!, FidoNet-era and some
// Usenet clients write them.
func TestReplyInitialsQuotes(t *testing.T) {
	runReplyCases(t, []replyCase{
		{
			name: "the bat!, top-posted",
			text: "It is green now, thanks.\n\nMonday, March 4, 2025, 3:12:45 PM, you wrote:\n\n" +
				"SD> Please restart the router and tell us\nSD> whether the light turns green.\n\n",
			reply: "It is green now, thanks.",
		},
		{
			name: "fidonet style with a leading space, nested",
			text: "Yes, since Monday.\n\n" +
				" KL> Is the VPN still dropping?\n KL>> It drops every hour.\n",
			reply: "Yes, since Monday.",
		},
		{
			name:  "answered quote keeps its prefix",
			text:  "Hello Support,\n\nMonday, March 4, 2025, 3:12:45 PM, you wrote:\n\nSD> Which model is it?\n\nA ThinkPad T14.\n",
			reply: "Hello Support,\n\nSD> Which model is it?\n\nA ThinkPad T14.",
		},
		{
			name:  "a console session at the end is text",
			text:  "The query fails:\n\nSQL> select count(*) from orders;\nSQL> ORA-00942: table or view does not exist\n",
			reply: "The query fails:\n\nSQL> select count(*) from orders;\nSQL> ORA-00942: table or view does not exist",
		},
	})
}

// Invisible tracking glyphs and zero-width characters at the end.
func TestReplyInvisibleTail(t *testing.T) {
	runReplyCases(t, []replyCase{
		{name: "zero-width space after the text", text: "Thanks!\u200b\u200b", reply: "Thanks!"},
		{name: "a line of joiners and marks", text: "Thanks!\n\n\u200c\u200d\u2060\ufeff\u034f\u034f\n\u00ad\n", reply: "Thanks!"},
		{name: "braille and hangul blanks", text: "Thanks!\n\n\u2800\u3164\n", reply: "Thanks!"},
		{name: "before the attribution", text: "Thanks!\n\u200b\nOn Tue, Mar 4, 2025 at 3:12 PM Support <support@ticketd.test> wrote:\n> ok?\n\u200b", reply: "Thanks!"},
		{name: "a joined emoji keeps its joiner", text: "Family trip 👨\u200d👩\u200d👧", reply: "Family trip 👨\u200d👩\u200d👧"},
	})
}

package inbound_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"ticketd/inbound"
)

// upgradeMails are mails the parser reads better than the build before
// it: a winmail.dat (TNEF) whose files and rich text it now takes out; a
// reply whose quote the sender's client wrapped again; a reply written
// below its attribution; a mail whose nested boundary begins with the
// outer one; a bounce from a filtering gateway; a pasted screenshot.
type upgradeMails struct {
	open, rewrapped, below, nested, bounce, screenshot []byte
}

func newUpgradeMails(t *testing.T) upgradeMails {
	t.Helper()
	tnef, err := os.ReadFile(filepath.Join("testdata", "winmail.dat"))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(tnef)
	var wrapped []string
	for len(b64) > 76 {
		wrapped, b64 = append(wrapped, b64[:76]), b64[76:]
	}
	wrapped = append(wrapped, b64)
	head := func(id, subject, extra string) string {
		return "From: Jana Berg <jana@example.de>\r\nTo: support@ticketd.test\r\nSubject: " + subject + "\r\n" +
			"Date: Tue, 04 Mar 2025 15:12:00 +0100\r\nMessage-ID: <" + id + "@example.de>\r\n" + extra
	}
	reply := "In-Reply-To: <open@example.de>\r\n"
	return upgradeMails{
		open: []byte(head("open", "Printer prints blank pages", "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"_000_\"\r\n\r\n") +
			"--_000_\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\n\r\n\r\n" +
			"--_000_\r\nContent-Type: application/ms-tnef; name=\"winmail.dat\"\r\nContent-Disposition: attachment; filename=\"winmail.dat\"\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\n" + strings.Join(wrapped, "\r\n") + "\r\n--_000_--\r\n"),
		rewrapped: []byte(head("rewrapped", "Re: Printer prints blank pages", reply) + "\r\n" +
			"The new toner fixed it, thanks!\r\n\r\n" +
			"On Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\r\n" +
			"> Hello Jana, could you please replace the toner cartridge of the printer on\r\n" +
			"the second floor and tell us whether it still prints blank pages after\r\n" +
			"that?\r\n"),
		below: []byte(head("below", "Re: Printer prints blank pages", reply) + "\r\n" +
			"On Tue, Mar 4, 2025 at 4:00 PM Support Desk <support@ticketd.test> wrote:\r\n" +
			"It prints again, but the colours are faint.\r\n"),
		nested: []byte(head("nested", "Re: Printer prints blank pages", reply+"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"==b\"\r\n\r\n") +
			"--==b\r\nContent-Type: multipart/alternative; boundary=\"==b--alt\"\r\n\r\n" +
			"--==b--alt\r\nContent-Type: text/plain\r\n\r\nThe printer log is attached.\r\n" +
			"--==b--alt\r\nContent-Type: text/html\r\n\r\n<p>The printer log is attached.</p>\r\n--==b--alt--\r\n" +
			"--==b\r\nContent-Type: text/plain; name=printer.log\r\nContent-Disposition: attachment; filename=printer.log\r\n\r\nE42 toner low\r\n" +
			"--==b--\r\n"),
		bounce: []byte("From: \"Email Security Gateway\" <scanner@corp.example>\r\nTo: support@ticketd.test\r\n" +
			"Subject: Delivery failure: Re: Printer prints blank pages\r\nMessage-ID: <ndr-1@corp.example>\r\n" + reply + "\r\n" +
			"Your message could not be delivered to the following recipient:\r\n\r\n    jana.old@corp.example\r\n\r\n" +
			"Reason: the mailbox no longer exists.\r\n\r\nThe message:\r\n  Subject: Printer prints blank pages\r\n  Message-ID: <open@example.de>\r\n"),
		screenshot: []byte(head("screenshot", "Re: Printer prints blank pages", reply+"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"m\"\r\n\r\n") +
			"--m\r\nContent-Type: text/plain\r\n\r\nThis is what it prints:\r\n" +
			"--m\r\nContent-Type: image/png; name=\"page.png\"\r\nContent-ID: <page@example.de>\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString([]byte("\x89PNG\r\n\x1a\nblank page")) + "\r\n--m--\r\n"),
	}
}

// TestReprocessUpgradesOldReadings fills a database the way the build
// before this parser did (its readings of each mail, stored as it stored
// them), then re-processes it: texts, replies, kinds and attachments come
// out as the current parser reads them, with no new ticket, event or mail;
// the new attachment rows (the files inside winmail.dat, the screenshot)
// are added once, and a second run changes nothing.
func TestReprocessUpgradesOldReadings(t *testing.T) {
	e := &reprocessEnv{env: newEnv(t)}
	mails := newUpgradeMails(t)
	jana := inbound.Source{Kind: "smtp", RemoteAddr: "127.0.0.1:5000", MailFrom: "jana@example.de", RcptTo: []string{support}}
	open := e.deliver(mails.open, jana)
	ids := map[string]int64{"open": open.MessageID}
	for _, m := range []struct {
		name string
		raw  []byte
	}{{"rewrapped", mails.rewrapped}, {"below", mails.below}, {"nested", mails.nested}, {"bounce", mails.bounce}, {"screenshot", mails.screenshot}} {
		name := m.name
		r := e.deliver(m.raw, jana)
		if r.TicketID != open.TicketID || r.Quarantined {
			t.Fatalf("%s: %+v", name, r)
		}
		ids[name] = r.MessageID
	}
	current := e.stored()

	// What the build before stored for these mails (its `inspect` output).
	old := []struct {
		name, text, reply, autoKind string
	}{
		{"open", "", "", "none"},
		{"rewrapped", "The new toner fixed it, thanks!\n\nOn Tue, Mar 4, 2025 at 3:12 PM Support Desk <support@ticketd.test> wrote:\n" +
			"> Hello Jana, could you please replace the toner cartridge of the printer on\nthe second floor and tell us whether it still prints blank pages after\nthat?",
			"The new toner fixed it, thanks!\n\n> Hello Jana, could you please replace the toner cartridge of the printer on\nthe second floor and tell us whether it still prints blank pages after\nthat?",
			"none"},
		{"below", "On Tue, Mar 4, 2025 at 4:00 PM Support Desk <support@ticketd.test> wrote:\nIt prints again, but the colours are faint.", "", "none"},
		{"nested", "", "", "none"},
		{"bounce", "", "", "none"},
	}
	for _, o := range old {
		if o.name == "bounce" {
			// Its text it read as now; it took it for a person's mail.
			// (It also threaded it as one, which re-processing leaves.)
			e.exec(`UPDATE messages SET auto_kind = $2 WHERE id = $1`, ids[o.name], o.autoKind)
			continue
		}
		e.exec(`UPDATE messages SET text_body = $2, reply_text = $3, auto_kind = $4, html_body = '' WHERE id = $1`,
			ids[o.name], o.text, o.reply, o.autoKind)
	}
	e.exec(`UPDATE tickets SET description = '' WHERE id = $1`, open.TicketID)
	// It kept winmail.dat as one file, and lost the log after the nested
	// multipart; the screenshot it kept, as now.
	e.exec(`DELETE FROM attachments WHERE message_id IN ($1, $2)`, ids["open"], ids["nested"])
	e.exec(`INSERT INTO attachments (message_id, filename, content_type, content_id, inline, size, sha256, data)
		VALUES ($1, 'winmail.dat', 'application/ms-tnef', '', false, 3, sha256('tnf'), 'tnf')`, ids["open"])
	before := e.stored()

	rep := e.run(allTime)
	if rep.Changed != 5 || rep.Failed != 0 || rep.Unchanged != 1 {
		t.Errorf("report %+v", rep)
	}
	for _, f := range []string{"text_body", "reply_text", "description", "attachments", "auto_kind"} {
		if rep.ByField[f] == 0 {
			t.Errorf("no %s changed: %v", f, rep.ByField)
		}
	}
	after := e.stored()
	if diff := cmp.Diff(current, after); diff != "" {
		t.Errorf("not what the current parser reads (-delivered now +re-processed):\n%s", diff)
	}
	if after.Events != before.Events || after.Mails != before.Mails || after.TicketRows != before.TicketRows || after.Audit != before.Audit {
		t.Errorf("re-processing did more than correct readings: before %+v\nafter %+v", before, after)
	}

	// What the current parser reads, spelled out.
	m := e.message(ids["open"])
	if m.TextBody != "The printer prints blank pages again.\n\nThe invoice and a photo are attached." {
		t.Errorf("TNEF text %q", m.TextBody)
	}
	if d := e.ticket(open.TicketID).Description; d != m.TextBody {
		t.Errorf("description %q", d)
	}
	if r := e.message(ids["rewrapped"]).ReplyText; r != "The new toner fixed it, thanks!" {
		t.Errorf("rewrapped quote: reply %q", r)
	}
	if r := e.message(ids["below"]).ReplyText; r != "It prints again, but the colours are faint." {
		t.Errorf("reply below its attribution: %q", r)
	}
	if k := e.message(ids["bounce"]).AutoKind; k != "bounce" {
		t.Errorf("gateway bounce: auto_kind %s", k)
	}
	want := []string{
		"nested printer.log text/plain  false",
		"open image001.png image/png image001.png@01DB8A2F true",
		"open invoice 4411.pdf application/pdf  false",
		"screenshot page.png image/png page@example.de true",
	}
	if diff := cmp.Diff(want, e.attachmentRows(ids)); diff != "" {
		t.Errorf("attachments (-want +got):\n%s", diff)
	}

	again := e.run(allTime)
	if again.Changed != 0 || again.Failed != 0 {
		t.Errorf("second run %+v: it should change nothing", again)
	}
	if diff := cmp.Diff(want, e.attachmentRows(ids)); diff != "" {
		t.Errorf("attachments after a second run (-want +got):\n%s", diff)
	}
}

// attachmentRows lists the attachments of the messages in ids as "name
// filename type content-id inline", in the order of the messages' names.
func (e *env) attachmentRows(ids map[string]int64) []string {
	e.t.Helper()
	names := map[int64]string{}
	for n, id := range ids {
		names[id] = n
	}
	rows, err := e.pool.Query(context.Background(), `SELECT message_id, filename, content_type, content_id, inline
		FROM attachments ORDER BY message_id, filename`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id int64
		var fn, ct, cid string
		var inline bool
		if err := rows.Scan(&id, &fn, &ct, &cid, &inline); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, strings.Join([]string{names[id], fn, ct, cid, map[bool]string{true: "true", false: "false"}[inline]}, " "))
	}
	sort.Strings(out)
	return out
}

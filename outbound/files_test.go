package outbound_test

import (
	"bytes"
	"strings"
	"testing"

	"ticketd/outbound"
	"ticketd/tickets"
)

// TestRepliesCarryFiles: the files of a reply travel with the mail that
// passes it on, to the requester and to the assignee alike; files ticketd
// did not keep, or more than MaxMailedFiles, stay on the ticket's page and
// the mail says so.
func TestRepliesCarryFiles(t *testing.T) {
	f := newFixture(t, func(o *outbound.NotifierOptions) { o.MaxMailedFiles = 1 << 20 })
	req := f.user("ann@customer.example", "Ann", tickets.RoleUser)
	mod := f.user("mo@desk.example", "Mo", tickets.RoleModerator)
	tk := f.ticket(req, "Printer jams", "It jams.", "open-1@customer.example")
	f.tx(func(st *tickets.Store) error {
		_, err := st.Assign(f.ctx, tk.ID, mod.ID, "", tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	})
	driver := bytes.Repeat([]byte("driver"), 1000)
	photo := []byte("\x89PNG not quite")
	// message inserts a reply with files; one without Data is a file
	// intake did not keep.
	message := func(from tickets.User, id string, files ...tickets.Attachment) tickets.Message {
		t.Helper()
		m, err := f.st.InsertMessage(f.ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound,
			Kind: tickets.KindReply, AuthorID: &from.ID, MessageID: id, FromAddress: from.Email, ReplyText: "See the files."})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range files {
			a.MessageID, a.SHA256 = m.ID, make([]byte, 32)
			if _, err := f.st.InsertAttachment(f.ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		return m
	}
	only := func(kind string) parsed {
		t.Helper()
		var got []parsed
		for _, m := range f.mails(tk.ID) {
			if m.Kind == kind {
				got = append(got, parse(t, m.Data))
			}
		}
		if len(got) != 1 {
			t.Fatalf("%d %s mails, want 1", len(got), kind)
		}
		return got[0]
	}

	staff := message(mod, "mo-1@desk.example",
		tickets.Attachment{Filename: "driver.zip", ContentType: "application/zip", Size: int64(len(driver)), Data: driver},
		tickets.Attachment{Filename: "screen.png", ContentType: "image/png", ContentID: "shot@desk", Inline: true, Size: int64(len(photo)), Data: photo},
		tickets.Attachment{Filename: "huge.iso", ContentType: "application/octet-stream", Size: 40 << 20})
	f.tx(func(st *tickets.Store) error { return f.n.StaffReply(f.ctx, st, "reply-1", staff.ID) })
	p := only("reply")
	if len(p.files) != 2 || p.files[0].name != "driver.zip" || !bytes.Equal(p.files[0].data, driver) ||
		p.files[1].name != "screen.png" || p.files[1].contentType != "image/png" || p.files[1].contentID != "<shot@desk>" ||
		!bytes.Equal(p.files[1].data, photo) {
		t.Fatalf("the requester's mail carries %+v", p.files)
	}
	if !strings.Contains(p.text, "See the files.") || !strings.Contains(p.text, "1 of the files that came with this reply are too large to mail") {
		t.Errorf("text of the requester's mail:\n%s", p.text)
	}

	customer := message(req, "ann-2@customer.example",
		tickets.Attachment{Filename: "log.txt", ContentType: "text/plain", Size: 4, Data: []byte("jams")})
	f.tx(func(st *tickets.Store) error { return f.n.ForwardToAssignee(f.ctx, st, "fwd-1", customer.ID) })
	p = only("forward")
	if len(p.files) != 1 || p.files[0].name != "log.txt" || string(p.files[0].data) != "jams" {
		t.Fatalf("the assignee's mail carries %+v", p.files)
	}
	if strings.Contains(p.text, "too large") {
		t.Errorf("the assignee's mail says files are missing:\n%s", p.text)
	}

	big := bytes.Repeat([]byte("x"), 2<<20)
	heavy := message(mod, "mo-3@desk.example",
		tickets.Attachment{Filename: "dump.bin", ContentType: "application/octet-stream", Size: int64(len(big)), Data: big})
	f.tx(func(st *tickets.Store) error { return f.n.StaffReply(f.ctx, st, "reply-3", heavy.ID) })
	var last parsed
	for _, m := range f.mails(tk.ID) {
		if m.Kind == "reply" {
			last = parse(t, m.Data) // the newest reply comes last
		}
	}
	if len(last.files) != 0 || !strings.Contains(last.text, "(1, 2.0 MB) are too large to mail") {
		t.Fatalf("over the limit: %d files, text:\n%s", len(last.files), last.text)
	}
}

// forwardFile passes a customer's reply carrying the file a on to the
// assignee, and returns the mail.
func forwardFile(t *testing.T, a tickets.Attachment) parsed {
	f := newFixture(t, nil)
	ann := f.user("ann@customer.example", "Ann", tickets.RoleUser)
	mo := f.user("mo@desk.example", "Mo", tickets.RoleModerator)
	tk := f.ticket(ann, "Printer", "It jams.", "open-1@customer.example")
	f.tx(func(st *tickets.Store) error {
		_, err := st.Assign(f.ctx, tk.ID, mo.ID, "", tickets.Actor{Channel: tickets.ChannelSystem})
		return err
	})
	m, err := f.st.InsertMessage(f.ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Inbound,
		Kind: tickets.KindReply, AuthorID: &ann.ID, MessageID: "ann-2@customer.example",
		FromAddress: ann.Email, ReplyText: "See the file."})
	if err != nil {
		t.Fatal(err)
	}
	a.MessageID, a.Size, a.SHA256 = m.ID, int64(len(a.Data)), make([]byte, 32)
	if _, err := f.st.InsertAttachment(f.ctx, a); err != nil {
		t.Fatal(err)
	}
	f.tx(func(st *tickets.Store) error { return f.n.ForwardToAssignee(f.ctx, st, "fwd-1", m.ID) })
	return parse(t, f.mails(tk.ID)[0].Data)
}

// TestFileWithBadContentID: a Content-ID kept from a customer's mail that
// cannot be written back (a bare CR in it) is left out; the file arrives
// whole.
func TestFileWithBadContentID(t *testing.T) {
	p := forwardFile(t, tickets.Attachment{Filename: "a.png", ContentType: "image/png",
		ContentID: "part1\rX-Evil: 1@x", Data: []byte("png")})
	if len(p.files) != 1 || p.files[0].name != "a.png" || p.files[0].contentType != "image/png" || string(p.files[0].data) != "png" {
		t.Errorf("attachment arrives as %+v; raw mail:\n%s", p.files, p.raw)
	}
}

// TestAttachedMailIsSentAsFile: an attached mail (message/rfc822, as intake
// records it) may not be base64 (RFC 2046 5.2.1); it goes as a file of
// bytes, named, and arrives unchanged.
func TestAttachedMailIsSentAsFile(t *testing.T) {
	eml := []byte("From: x@y.example\r\nSubject: hi\r\n\r\nbody\r\n")
	p := forwardFile(t, tickets.Attachment{ContentType: "message/rfc822", Data: eml})
	if len(p.files) != 1 || p.files[0].name != "message.eml" || p.files[0].contentType != "application/octet-stream" ||
		string(p.files[0].data) != string(eml) {
		t.Errorf("attached mail arrives as %+v; raw mail:\n%s", p.files, p.raw)
	}
}

// TestMultipartTypedFile: a file whose stored type is multipart/* (the JSON
// API keeps the type a client names) is still encoded, not written raw into
// the mail where its bytes would read as MIME structure.
func TestMultipartTypedFile(t *testing.T) {
	f := newFixture(t, nil)
	ann := f.user("ann@customer.example", "Ann", tickets.RoleUser)
	mo := f.user("mo@desk.example", "Mo", tickets.RoleModerator)
	tk := f.ticket(ann, "Printer", "It jams.", "open-1@customer.example")
	m, err := f.st.InsertMessage(f.ctx, tickets.Message{TicketID: tk.ID, Direction: tickets.Outbound,
		Kind: tickets.KindReply, AuthorID: &mo.ID, MessageID: "web-1@desk.example",
		FromAddress: mo.Email, ToAddresses: []string{ann.Email}, ReplyText: "Here."})
	if err != nil {
		t.Fatal(err)
	}
	bin := []byte("\x00\xff binary \xc3\x28 " + strings.Repeat("x", 2000))
	if _, err := f.st.InsertAttachment(f.ctx, tickets.Attachment{MessageID: m.ID, Filename: "blob.bin",
		ContentType: "multipart/mixed", Size: int64(len(bin)), SHA256: make([]byte, 32), Data: bin}); err != nil {
		t.Fatal(err)
	}
	f.tx(func(st *tickets.Store) error { return f.n.StaffReply(f.ctx, st, "web", m.ID) })
	data := f.mails(tk.ID)[0].Data
	for i, b := range data {
		if b >= 0x80 || b == 0 {
			t.Fatalf("byte %d of the mail is %#x: the file was not encoded", i, b)
		}
	}
	p := parse(t, data)
	if len(p.files) != 1 || p.files[0].name != "blob.bin" || string(p.files[0].data) != string(bin) {
		t.Errorf("the file arrives as %+v", p.files)
	}
}

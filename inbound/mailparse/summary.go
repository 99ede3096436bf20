package mailparse

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Inspection is the JSON view of a Message that `ticketd inspect` prints
// and intake's trace records. Arrays are never null.
type Inspection struct {
	Subject     string                 `json:"subject"`
	From        Address                `json:"from"`
	To          []Address              `json:"to"`
	Cc          []Address              `json:"cc"`
	Date        string                 `json:"date"` // RFC 3339, "" when unknown
	MessageID   string                 `json:"message_id"`
	InReplyTo   string                 `json:"in_reply_to"`
	References  []string               `json:"references"`
	Text        string                 `json:"text"`
	Reply       string                 `json:"reply"`
	Signature   string                 `json:"signature"`
	Attachments []InspectionAttachment `json:"attachments"` // every file, media shown in the body too (Inline)
	Auto        InspectionAuto         `json:"auto"`
	Commands    []InspectionCommand    `json:"commands"`
}

// InspectionAttachment describes one attachment without its content.
type InspectionAttachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Inline      bool   `json:"inline"` // shown in the body where it stands
}

// InspectionAuto is the automatic-mail verdict.
type InspectionAuto struct {
	Kind       Kind     `json:"kind"`
	Reason     string   `json:"reason"`
	Recipients []string `json:"recipients"`
}

// InspectionCommand is one command, without the line it came from.
type InspectionCommand struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Summary returns the Inspection of m.
func (m *Message) Summary() Inspection {
	in := Inspection{
		Subject:     m.Subject,
		From:        m.From,
		To:          nonNil(m.To),
		Cc:          nonNil(m.Cc),
		MessageID:   m.MessageID,
		InReplyTo:   m.InReplyTo,
		References:  nonNil(m.References),
		Text:        m.Text,
		Reply:       m.Reply,
		Signature:   m.Signature,
		Attachments: []InspectionAttachment{},
		Auto: InspectionAuto{
			Kind:       m.Auto.Kind,
			Reason:     m.Auto.Reason,
			Recipients: nonNil(m.Auto.Recipients),
		},
		Commands: []InspectionCommand{},
	}
	if in.Auto.Kind == "" {
		in.Auto.Kind = KindNone
	}
	if !m.Date.IsZero() {
		in.Date = m.Date.Format(time.RFC3339)
	}
	for _, a := range m.Attachments {
		in.Attachments = append(in.Attachments, InspectionAttachment{Filename: a.Filename, ContentType: a.ContentType,
			Size: a.Size, SHA256: a.SHA256, Inline: a.Inline})
	}
	for _, c := range m.Commands {
		in.Commands = append(in.Commands, InspectionCommand{Name: c.Name, Value: c.Value})
	}
	return in
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// WriteJSON writes in as one indented JSON object, as `ticketd inspect`
// prints it. encoding/json writes invalid UTF-8 as U+FFFD, so the output
// is always valid UTF-8.
func (in Inspection) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(in); err != nil {
		return fmt.Errorf("mailparse: encode inspection: %w", err)
	}
	return nil
}

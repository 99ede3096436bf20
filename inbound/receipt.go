package inbound

// ReceiptLine is one command of a mail and what became of it: applied (with
// the value before and after, equal when nothing had to change) or refused
// (with the reason).
type ReceiptLine struct {
	Command string // the line as written
	Applied bool
	Field   string // status, priority, assignee, notes, skills
	Old     string
	New     string
	Reason  string // why it was refused
}

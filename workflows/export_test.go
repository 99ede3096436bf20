package workflows

// What the external tests (package workflows_test) use of the internal
// test helpers.
var (
	SeedPeople = seedPeople
	OpenTicket = openTicket
	WaitFor    = waitFor
	Triaged    = triaged
)

// OutboxNotifier queues real mail_outbox rows; see outboxNotifier.
type OutboxNotifier = outboxNotifier

// Requester is the requester seeded by SeedPeople.
func (p people) Requester() int64 { return p.requester.ID }

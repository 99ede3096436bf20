package inbound

import "ticketd/inbound/mailparse"

// TicketText is the text a ticket opened by m starts with, as Deliver
// stores it for the ticket's description: the mail's reply, without quoted
// history and signature, or its whole text when the reply is empty.
func TicketText(m *mailparse.Message) string {
	return clean(openingText(m))
}

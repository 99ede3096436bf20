package inbound

import "ticketd/outbound"

// ReceiptLine is one command of a mail and what became of it: applied
// (Field, Old and New; Old equals New when nothing had to change) or
// refused (Reason). It is outbound's, which writes the receipt.
type ReceiptLine = outbound.ReceiptLine

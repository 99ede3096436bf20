-- +goose Up

-- A message held for staff: mail to a ticket's reply address, or threaded
-- to it by its header, from someone who is not on the ticket ("not a
-- participant"), or a staff member's mail whose commands were refused. It
-- is internal while held; releasing it clears the reason and shows it to
-- the requester. '' for every other message.
ALTER TABLE messages ADD COLUMN held text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE messages DROP COLUMN held;

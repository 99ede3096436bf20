-- +goose Up

-- A ticket's requester is tickets.requester_id alone: ticket_participants
-- holds only the people copied on the opening mail. Writing the requester
-- there too was a row and an index entry more in every new ticket's
-- transaction, for a fact the ticket already held. Requesters and copied
-- people find their tickets through ticket_participants_user_idx and
-- tickets_requester_idx.
DELETE FROM ticket_participants p USING tickets t WHERE p.ticket_id = t.id AND p.user_id = t.requester_id;
ALTER TABLE ticket_participants DROP CONSTRAINT ticket_participants_kind_check,
    ADD CONSTRAINT ticket_participants_kind_check CHECK (kind = 'cc'),
    ALTER COLUMN kind SET DEFAULT 'cc';
CREATE INDEX ticket_participants_user_idx ON ticket_participants (user_id);

-- +goose Down
DROP INDEX ticket_participants_user_idx;
ALTER TABLE ticket_participants DROP CONSTRAINT ticket_participants_kind_check,
    ADD CONSTRAINT ticket_participants_kind_check CHECK (kind IN ('requester', 'cc')),
    ALTER COLUMN kind DROP DEFAULT;
INSERT INTO ticket_participants (ticket_id, user_id, kind, created_at)
SELECT id, requester_id, 'requester', created_at FROM tickets
ON CONFLICT (ticket_id, user_id) DO UPDATE SET kind = 'requester';

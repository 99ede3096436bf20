-- +goose Up

-- A ticket has at most MAX_PARTICIPANTS people (its requester and those
-- copied on the mail that opened it). The addresses of the opening mail
-- past that limit are not made users nor participants: the first of them
-- are listed here, with how many there were in all, for staff to see; the
-- raw mail keeps every one.
CREATE TABLE ticket_people_not_added (
    ticket_id bigint PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
    addresses text[] NOT NULL,
    total     integer NOT NULL CHECK (total >= cardinality(addresses)),
    max_people integer NOT NULL
);

-- +goose Down
DROP TABLE ticket_people_not_added;

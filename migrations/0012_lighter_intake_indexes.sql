-- +goose Up

-- Fewer index entries per new ticket, each of which intake's transaction
-- wrote and logged for nothing:
-- * Message-IDs are looked up with their direction ('inbound', 'outbound'),
--   which the unique (direction, message_id) index answers; the index on
--   message_id alone repeated it.
-- * A ticket's search document and skills are empty until triage; the GIN
--   indexes keep only tickets that have them (queries say so: skills <> '{}').
-- * Re-processing reads raw mail by arrival time rarely and in bulk: a BRIN
--   index, which costs almost nothing to keep, serves it.
DROP INDEX messages_message_id_idx;
DROP INDEX tickets_search_idx;
CREATE INDEX tickets_search_idx ON tickets USING gin (search) WHERE search IS NOT NULL;
DROP INDEX tickets_skills_idx;
CREATE INDEX tickets_skills_idx ON tickets USING gin (skills) WHERE skills <> '{}';
DROP INDEX raw_messages_received_idx;
CREATE INDEX raw_messages_received_idx ON raw_messages USING brin (received_at);

-- +goose Down
DROP INDEX raw_messages_received_idx;
CREATE INDEX raw_messages_received_idx ON raw_messages (received_at, id);
DROP INDEX tickets_skills_idx;
CREATE INDEX tickets_skills_idx ON tickets USING gin (skills);
DROP INDEX tickets_search_idx;
CREATE INDEX tickets_search_idx ON tickets USING gin (search);
CREATE INDEX messages_message_id_idx ON messages (message_id);

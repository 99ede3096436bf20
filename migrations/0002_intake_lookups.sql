-- +goose Up

-- Intake looks up the quarantine by Message-ID (a resent automatic mail is a
-- duplicate) and by raw message (the same bytes delivered twice).
CREATE INDEX quarantine_message_id_idx ON quarantine (message_id);
CREATE INDEX quarantine_raw_idx ON quarantine (raw_message_id);

-- +goose Down
DROP INDEX quarantine_raw_idx, quarantine_message_id_idx;

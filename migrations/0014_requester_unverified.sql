-- +goose Up

-- A ticket opened by mail whose From a trusted authentication server
-- reported as failing DMARC: the address may be forged, and ticketd sends
-- it no automatic mail (acknowledgement, status, completion), so that
-- nobody can have ticketd mail their text to an address of their choice.
ALTER TABLE tickets ADD COLUMN requester_unverified boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE tickets DROP COLUMN requester_unverified;

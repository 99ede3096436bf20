-- +goose Up

-- What ticketd's own checks of a mail found (SPF, DKIM, DMARC), or the
-- results a trusted server reported for a mail taken by IMAP; NULL when
-- nothing was checked (mail written on the web, or before these checks).
-- data of a mail checked at the MX begins with the Authentication-Results
-- field of this verdict; sha256 stays the hash of the bytes as they
-- arrived, so that a retry is recognised whatever its verdict.
ALTER TABLE raw_messages ADD COLUMN auth jsonb;

-- +goose Down
ALTER TABLE raw_messages DROP COLUMN auth;

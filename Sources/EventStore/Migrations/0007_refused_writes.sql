-- Schema 7: a write the API refused before admitting it (no such endpoint or method, a body or
-- query that does not parse) is counted, like the other refusals, instead of becoming an
-- api_requests row: only an authenticated, routed, admitted write gets a row of its own.
-- SQLite cannot change a CHECK constraint in place: the table is made again with its rows.
CREATE TABLE api_refusals_new (
    second          INTEGER NOT NULL,
    peer            TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('unauthenticated', 'forbidden', 'sign_in_failed', 'invalid_write', 'throttled')),
    requests        INTEGER NOT NULL,
    PRIMARY KEY (second, peer, kind)
);
INSERT INTO api_refusals_new (second, peer, kind, requests) SELECT second, peer, kind, requests FROM api_refusals;
DROP TABLE api_refusals;
ALTER TABLE api_refusals_new RENAME TO api_refusals;

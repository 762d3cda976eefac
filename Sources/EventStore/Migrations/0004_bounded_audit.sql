-- Schema 4: the API audit cannot be used to fill the disk.

-- Refused requests (no or a wrong token, a read-only token asking to change something,
-- a failed sign-in) are counted per second, peer address and kind instead of one row
-- each. At most 16 addresses a second get their own row; the rest count under 'other'.
CREATE TABLE api_refusals (
    second          INTEGER NOT NULL,                -- seconds since the Unix epoch
    peer            TEXT    NOT NULL,                -- the client's address, without its port
    kind            TEXT    NOT NULL CHECK (kind IN ('unauthenticated', 'forbidden', 'sign_in_failed')),
    requests        INTEGER NOT NULL,
    PRIMARY KEY (second, peer, kind)
);

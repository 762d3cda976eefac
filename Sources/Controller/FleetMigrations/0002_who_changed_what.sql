-- Fleet schema 2: who changed what. Every host's admitted writes (api_requests), its
-- policy history, and the policy documents themselves, stored once each by version
-- (content-addressed: memgatectl checks a document against its version before storing it).

ALTER TABLE hosts ADD COLUMN after_request_id INTEGER NOT NULL DEFAULT 0;  -- api_requests pull cursor

CREATE TABLE policy_documents (
    version         TEXT    PRIMARY KEY,             -- SHA-256 of the canonical form (or of the bytes, for old agents)
    name            TEXT,
    document        TEXT    NOT NULL
);

CREATE TABLE policy_applications (
    host            TEXT    NOT NULL REFERENCES hosts (host),
    id              INTEGER NOT NULL,                -- the application's id on its host
    version         TEXT    NOT NULL REFERENCES policy_documents (version),
    applied_ns      INTEGER NOT NULL,
    applied_by      TEXT    NOT NULL,
    PRIMARY KEY (host, id)
);
CREATE INDEX policy_applications_by_version ON policy_applications (version);

CREATE TABLE api_requests (
    host            TEXT    NOT NULL REFERENCES hosts (host),
    id              INTEGER NOT NULL,
    time_ns         INTEGER NOT NULL,
    method          TEXT    NOT NULL,
    path            TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    duration_ns     INTEGER NOT NULL,
    client          TEXT,
    PRIMARY KEY (host, id)
);
CREATE INDEX api_requests_by_time ON api_requests (time_ns);

-- Who changed the policy on which hosts, when, and what it said.
CREATE VIEW fleet_policy_changes AS
SELECT a.host, a.applied_ns, a.applied_by, a.version, d.name, d.document
FROM policy_applications a JOIN policy_documents d ON d.version = a.version;

-- Fleet schema 4: records an auditor can prove. Every pulled row keeps the chain value its
-- host gave it (checked on the way in), each host's chain heads are kept, so a later rewrite
-- is caught, and every break found is recorded.
ALTER TABLE hosts ADD COLUMN chain_event_id INTEGER;       -- the last event verified, and its chain value
ALTER TABLE hosts ADD COLUMN chain TEXT;
ALTER TABLE hosts ADD COLUMN request_chain_id INTEGER;     -- the same for admitted API writes
ALTER TABLE hosts ADD COLUMN request_chain TEXT;
ALTER TABLE memory_faults ADD COLUMN chain TEXT;
ALTER TABLE conversions ADD COLUMN chain TEXT;
ALTER TABLE api_requests ADD COLUMN chain TEXT;

-- VM lifecycle events (created, started, paused, resumed, ended), as the agents record them.
CREATE TABLE vm_events (
    host            TEXT    NOT NULL REFERENCES hosts (host),
    event_id        INTEGER NOT NULL,
    vm_id           INTEGER NOT NULL,
    time_ns         INTEGER NOT NULL,
    what            TEXT    NOT NULL,
    final_state     TEXT,
    reason          TEXT,
    exit_status     INTEGER,
    chain           TEXT,
    PRIMARY KEY (host, event_id)
);

-- Who and what made each policy change (NULL from agents before schema 9).
ALTER TABLE policy_applications ADD COLUMN principal TEXT;
ALTER TABLE policy_applications ADD COLUMN channel TEXT;
ALTER TABLE policy_applications ADD COLUMN rollout_id TEXT;
ALTER TABLE policy_applications ADD COLUMN idempotency_key TEXT;

-- A host whose rows do not extend what this database holds: an edited, deleted or inserted
-- row, or a history rewritten under a head it once showed. Rows pulled before it are kept.
CREATE TABLE fleet_chain_breaks (
    id              INTEGER PRIMARY KEY,
    host            TEXT    NOT NULL REFERENCES hosts (host),
    chain           TEXT    NOT NULL CHECK (chain IN ('events', 'requests')),
    detected_ns     INTEGER NOT NULL,
    row_id          INTEGER NOT NULL,                -- the event or request that does not link
    after_id        INTEGER NOT NULL,                -- the last one verified before it
    expected        TEXT,                            -- the value computed here (or stored)
    found           TEXT,                            -- the value the host gave
    reason          TEXT    NOT NULL
);

-- A prune on a host that cut rows before they were pulled: accepted (the chain goes on from
-- the host's genesis), and recorded.
CREATE TABLE fleet_chain_cuts (
    host            TEXT    NOT NULL REFERENCES hosts (host),
    chain           TEXT    NOT NULL,
    from_id         INTEGER NOT NULL,
    through_id      INTEGER NOT NULL,
    pruned          INTEGER NOT NULL,
    detected_ns     INTEGER NOT NULL,
    PRIMARY KEY (host, chain, through_id)
);

DROP VIEW fleet_policy_changes;
CREATE VIEW fleet_policy_changes AS
SELECT a.host, a.applied_ns, a.applied_by, a.principal, a.channel, a.rollout_id, a.idempotency_key, a.version, d.name, d.document
FROM policy_applications a JOIN policy_documents d ON d.version = a.version;

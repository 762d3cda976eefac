-- Schema 9: records an auditor can prove (issue 30).

-- The audit chain (docs/AUDIT-CHAIN.md): every final event carries
-- chain = hex SHA-256(previous event's chain bytes || the event's canonical bytes), in event id
-- order; admitted API writes carry their own chain in request id order. NULL: not
-- chained yet (a conversion before it is still pending). The writer computes it in
-- the transaction that makes the event final.
ALTER TABLE memory_faults ADD COLUMN chain TEXT;
ALTER TABLE conversions ADD COLUMN chain TEXT;
ALTER TABLE vm_events ADD COLUMN chain TEXT;
ALTER TABLE policy_applications ADD COLUMN chain TEXT;
ALTER TABLE api_requests ADD COLUMN chain TEXT;

-- Where each chain starts: the chain value of the last row a `db prune` cut away
-- (absent: the chain starts at 32 zero bytes before the first row). The newest row
-- of a chain is its genesis; each also says what its cut removed.
CREATE TABLE chain_genesis (
    chain_name      TEXT    NOT NULL CHECK (chain_name IN ('events', 'requests')),
    through_id      INTEGER NOT NULL,                -- the last id cut away
    chain           TEXT    NOT NULL,                -- its chain value (hex)
    pruned          INTEGER NOT NULL,                -- rows this cut removed
    first_ns        INTEGER,                         -- their time span
    last_ns         INTEGER,
    time_ns         INTEGER NOT NULL,                -- when the cut was made
    PRIMARY KEY (chain_name, through_id)
);

-- Who and what made each policy change: the principal (token name or session), the
-- channel (api, --policy FILE, rollout ID wave N, rollback of rollout ID) and the
-- request's Idempotency-Key. NULL on rows from before schema 9 (applied_by says it).
ALTER TABLE policy_applications ADD COLUMN principal TEXT;
ALTER TABLE policy_applications ADD COLUMN channel TEXT;
ALTER TABLE policy_applications ADD COLUMN idempotency_key TEXT;
ALTER TABLE policy_applications ADD COLUMN rollout_id TEXT;

-- Idempotent writes: the first answer to each (principal, key), replayed for a repeat
-- with the same request; kept for a stated time and bounded in number by the agent.
CREATE TABLE idempotency_keys (
    principal       TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    method          TEXT    NOT NULL,
    path            TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,                -- SHA-256 of method, path and body
    status          INTEGER NOT NULL,
    headers         TEXT    NOT NULL,                -- "Name: value" lines
    response        TEXT    NOT NULL,
    created_ns      INTEGER NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_ns);

-- Checkpoints of a VM's page-state map every so many applied conversions, so the
-- memory state at any past moment is one checkpoint plus a short replay.
CREATE TABLE memory_checkpoints (
    vm_id           INTEGER NOT NULL REFERENCES vms (vm_id),
    event_id        INTEGER NOT NULL,                -- the state after this event
    time_ns         INTEGER NOT NULL,
    runs            TEXT    NOT NULL,                -- "start-end:p|s" runs in hex, comma separated
    PRIMARY KEY (vm_id, event_id)
);

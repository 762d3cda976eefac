-- The state of `memgatectl policy rollout` (--state FILE): enough to --resume a rollout a
-- killed controller left, or to --rollback every host it changed.

-- One rollout of one candidate document over one inventory.
CREATE TABLE rollouts (
    id                INTEGER PRIMARY KEY,
    started_ns        INTEGER NOT NULL,
    candidate_version TEXT NOT NULL,
    candidate         TEXT NOT NULL,          -- the document as pushed (UTF-8 JSON, byte for byte)
    plan              TEXT NOT NULL,          -- its waves, as JSON arrays of host indices
    settings          TEXT NOT NULL,          -- bake, limits, canary, seed, step (JSON), for --resume
    state             TEXT NOT NULL DEFAULT 'running'
                      CHECK (state IN ('running', 'completed', 'breached', 'rolled_back', 'rollback_incomplete')),
    wave              INTEGER NOT NULL DEFAULT 0,     -- the wave being pushed or baked
    phase             TEXT NOT NULL DEFAULT 'push' CHECK (phase IN ('push', 'bake')),
    bake_started_ns   INTEGER,
    outcome           TEXT                    -- how it ended, in words (the breach, the host, the events)
);

-- Every host of the inventory, its wave, and what the rollout did to it.
CREATE TABLE rollout_hosts (
    rollout_id   INTEGER NOT NULL REFERENCES rollouts (id),
    host         INTEGER NOT NULL,            -- index in the inventory
    name         TEXT NOT NULL,
    url          TEXT NOT NULL,
    wave         INTEGER NOT NULL,
    state        TEXT NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'pushed', 'unchanged', 'failed', 'rolled_back', 'changed_since', 'rollback_failed')),
    old_version  TEXT,                        -- what it had before (its policy's ETag)
    old_document TEXT,                        -- that policy, byte for byte, for the rollback
    new_version  TEXT,                        -- what the rollout wrote
    after_event  INTEGER,                     -- the host's newest event id when it was pushed: the bake reads from here
    detail       TEXT,
    PRIMARY KEY (rollout_id, host)
);

-- What a bake saw that counted against a limit.
CREATE TABLE rollout_evidence (
    rollout_id INTEGER NOT NULL REFERENCES rollouts (id),
    wave       INTEGER NOT NULL,
    host       INTEGER NOT NULL,
    event_id   INTEGER,
    kind       TEXT NOT NULL,
    what       TEXT NOT NULL
);

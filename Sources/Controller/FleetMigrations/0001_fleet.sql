-- memgatectl fleet audit database, schema 1: the agent's event tables with a
-- host column, the VMs the agents reported, and one pull cursor per host.
-- Written by `memgatectl audit pull --into FILE`; rows are never updated.

CREATE TABLE hosts (
    host            TEXT    PRIMARY KEY,             -- the inventory name
    url             TEXT    NOT NULL,
    after_event_id  INTEGER NOT NULL DEFAULT 0,      -- the pull cursor: every event up to it is here
    last_pull_ns    INTEGER
);

CREATE TABLE vms (
    host            TEXT    NOT NULL REFERENCES hosts (host),
    vm_id           INTEGER NOT NULL,
    name            TEXT    NOT NULL,
    labels          TEXT    NOT NULL DEFAULT '{}',
    memory_mib      INTEGER NOT NULL,
    vcpus           INTEGER NOT NULL,
    backend         TEXT    NOT NULL,
    initial_state   TEXT    NOT NULL,
    state           TEXT    NOT NULL,                -- as last reported
    reason          TEXT,
    created_ns      INTEGER NOT NULL,
    ended_ns        INTEGER,
    PRIMARY KEY (host, vm_id)
);

CREATE TABLE memory_faults (
    host            TEXT    NOT NULL REFERENCES hosts (host),
    event_id        INTEGER NOT NULL,
    vm_id           INTEGER NOT NULL,
    vcpu            INTEGER NOT NULL,
    time_ns         INTEGER NOT NULL,
    gpa             INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    flags           INTEGER NOT NULL,
    source          TEXT    NOT NULL,
    PRIMARY KEY (host, event_id)
);
CREATE INDEX memory_faults_by_time ON memory_faults (time_ns);

CREATE TABLE conversions (
    host            TEXT    NOT NULL REFERENCES hosts (host),
    event_id        INTEGER NOT NULL,
    vm_id           INTEGER NOT NULL,
    vcpu            INTEGER NOT NULL,
    requested_ns    INTEGER NOT NULL,
    completed_ns    INTEGER,
    gpa             INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    direction       TEXT    NOT NULL,
    trigger         TEXT    NOT NULL,
    decision        TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    policy_version  TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    changed_bytes   INTEGER NOT NULL,
    discarded_bytes INTEGER NOT NULL,
    guest_result    INTEGER NOT NULL,
    PRIMARY KEY (host, event_id)
);
CREATE INDEX conversions_by_time ON conversions (requested_ns);

CREATE VIEW fleet_conversion_summary AS
SELECT host, direction, trigger, decision, count(*) AS conversions, sum(size) AS bytes
FROM conversions GROUP BY host, direction, trigger, decision;

CREATE VIEW fleet_denials AS
SELECT c.host, c.event_id, c.vm_id, v.name AS vm, c.requested_ns, c.gpa, c.size, c.direction, c.trigger, c.reason, c.policy_version
FROM conversions c LEFT JOIN vms v ON v.host = c.host AND v.vm_id = c.vm_id
WHERE c.decision = 'denied';

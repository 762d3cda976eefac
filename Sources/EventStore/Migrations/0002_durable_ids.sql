-- MemGate event store, schema 2.
-- Ids are never reused: event and VM ids survive `db prune` deleting the
-- newest rows (consumers pull with after=<event_id>). A VM left without an end
-- by an agent that died is closed as 'lost', and its pending conversions become
-- 'incomplete' (whether they took effect is unknown).

-- The highest id ever handed out, per sequence ('event', 'vm'); prune keeps it.
CREATE TABLE id_watermarks (
    name            TEXT    PRIMARY KEY CHECK (name IN ('event', 'vm')),
    last_id         INTEGER NOT NULL
);
INSERT INTO id_watermarks (name, last_id) VALUES
    ('event', max(coalesce((SELECT max(event_id) FROM memory_faults), 0), coalesce((SELECT max(event_id) FROM conversions), 0))),
    ('vm', coalesce((SELECT max(vm_id) FROM vms), 0));

-- conversions gains the 'incomplete' decision: rebuild it (SQLite cannot alter a CHECK).
DROP VIEW conversion_summary;
DROP VIEW denials;
DROP VIEW vm_memory_state;

CREATE TABLE conversions_v2 (
    event_id        INTEGER PRIMARY KEY,
    vm_id           INTEGER NOT NULL REFERENCES vms (vm_id),
    vcpu            INTEGER NOT NULL,
    requested_ns    INTEGER NOT NULL,
    completed_ns    INTEGER,                         -- NULL: pending, or incomplete
    gpa             INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    direction       TEXT    NOT NULL CHECK (direction IN ('to_private', 'to_shared')),
    trigger         TEXT    NOT NULL CHECK (trigger IN ('explicit', 'implicit')),
    decision        TEXT    NOT NULL CHECK (decision IN ('pending', 'applied', 'denied', 'invalid', 'failed', 'incomplete')),
    reason          TEXT    NOT NULL,
    policy_version  TEXT    NOT NULL,
    source          TEXT    NOT NULL CHECK (source IN ('kvm', 'emulated')),
    changed_bytes   INTEGER NOT NULL,
    discarded_bytes INTEGER NOT NULL,
    guest_result    INTEGER NOT NULL
);
INSERT INTO conversions_v2 SELECT * FROM conversions;
DROP TABLE conversions;
ALTER TABLE conversions_v2 RENAME TO conversions;
CREATE INDEX conversions_by_vm_time ON conversions (vm_id, requested_ns);
CREATE INDEX conversions_by_time ON conversions (requested_ns);
CREATE INDEX conversions_by_decision ON conversions (decision, requested_ns);

-- final_state now also takes 'lost' (the agent died while the VM was known).
CREATE INDEX vms_open ON vms (ended_ns) WHERE ended_ns IS NULL;

CREATE VIEW conversion_summary AS
SELECT v.vm_id, v.name AS vm, c.direction, c.trigger, c.decision, c.policy_version,
       count(*) AS conversions, sum(c.size) AS bytes, sum(c.changed_bytes) AS changed_bytes,
       min(c.requested_ns) AS first_ns, max(c.requested_ns) AS last_ns
FROM conversions c JOIN vms v USING (vm_id)
GROUP BY v.vm_id, c.direction, c.trigger, c.decision, c.policy_version;

CREATE VIEW denials AS
SELECT c.event_id, v.vm_id, v.name AS vm, c.vcpu, c.requested_ns, c.gpa, c.size, c.direction, c.trigger,
       c.reason, c.policy_version
FROM conversions c JOIN vms v USING (vm_id)
WHERE c.decision = 'denied';

CREATE VIEW vm_memory_state AS
SELECT v.vm_id, v.name AS vm, v.backend, v.final_state,
       CASE v.initial_state WHEN 'private' THEN v.data_ram_size ELSE 0 END
         - coalesce(sum(CASE WHEN c.direction = 'to_shared' THEN c.changed_bytes END), 0)
         + coalesce(sum(CASE WHEN c.direction = 'to_private' THEN c.changed_bytes END), 0) AS private_bytes,
       CASE v.initial_state WHEN 'shared' THEN v.data_ram_size ELSE 0 END
         + coalesce(sum(CASE WHEN c.direction = 'to_shared' THEN c.changed_bytes END), 0)
         - coalesce(sum(CASE WHEN c.direction = 'to_private' THEN c.changed_bytes END), 0) AS shared_bytes
FROM vms v LEFT JOIN conversions c ON c.vm_id = v.vm_id AND c.decision = 'applied'
GROUP BY v.vm_id;

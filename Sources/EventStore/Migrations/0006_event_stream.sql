-- Schema 6: one ordered stream of everything that happens on a host.

-- VM lifecycle events, in the same id space as faults and conversions, so that a
-- stream reader resuming after id N gets every later event of every kind exactly once.
CREATE TABLE vm_events (
    event_id        INTEGER PRIMARY KEY,
    vm_id           INTEGER NOT NULL REFERENCES vms (vm_id),
    time_ns         INTEGER NOT NULL,
    what            TEXT    NOT NULL CHECK (what IN ('created', 'started', 'paused', 'resumed', 'ended')),
    final_state     TEXT,                            -- ended: stopped, exited, crashed, failed, faulted, lost
    reason          TEXT,
    exit_status     INTEGER
);
CREATE INDEX vm_events_by_vm ON vm_events (vm_id, event_id);

-- A policy application's place in the event id space (NULL for rows from before schema 6).
ALTER TABLE policy_applications ADD COLUMN event_id INTEGER;
CREATE UNIQUE INDEX policy_applications_by_event ON policy_applications (event_id) WHERE event_id IS NOT NULL;

-- The access that faulted: KVM's memory_fault.flags bits 0-2, or the MMIO exit's direction
-- (alias backend). NULL: unknown (rows from before schema 6, or KVM did not say).
ALTER TABLE memory_faults ADD COLUMN access TEXT CHECK (access IN ('read', 'write', 'exec'));

-- Every `db prune` that deleted events: a stream reader resuming from before
-- `through_event_id` is told that events up to it may be gone.
CREATE TABLE prunes (
    id              INTEGER PRIMARY KEY,
    time_ns         INTEGER NOT NULL,
    cutoff_ns       INTEGER NOT NULL,
    through_event_id INTEGER NOT NULL,               -- the highest event id deleted
    events          INTEGER NOT NULL
);

-- Faults by VM, access and source: what guests touched that they could not reach.
CREATE VIEW fault_summary AS
SELECT v.vm_id, v.name AS vm, coalesce(f.access, 'unknown') AS access, f.source,
       count(*) AS faults, min(f.time_ns) AS first_ns, max(f.time_ns) AS last_ns
FROM memory_faults f JOIN vms v USING (vm_id)
GROUP BY v.vm_id, coalesce(f.access, 'unknown'), f.source;

-- MemGate event store, schema 1.
-- Every memory fault and conversion of every VM this host ran, the policies
-- that decided them, and the API requests that changed things. Times are
-- nanoseconds since the Unix epoch; addresses and sizes are bytes.

CREATE TABLE vms (
    vm_id           INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    labels          TEXT    NOT NULL DEFAULT '{}',  -- JSON object
    memory_bytes    INTEGER NOT NULL,
    vcpus           INTEGER NOT NULL,
    backend         TEXT    NOT NULL CHECK (backend IN ('attributes', 'alias')),
    data_ram_start  INTEGER NOT NULL,
    data_ram_size   INTEGER NOT NULL,
    initial_state   TEXT    NOT NULL CHECK (initial_state IN ('private', 'shared')),
    created_ns      INTEGER NOT NULL,
    started_ns      INTEGER,
    ended_ns        INTEGER,                         -- NULL while the VM is known to a running agent
    final_state     TEXT,                            -- stopped, crashed, failed, faulted
    final_reason    TEXT,
    exit_status     INTEGER
);
CREATE INDEX vms_by_name ON vms (name, created_ns);

-- Every policy version ever applied; version = SHA-256 of the document.
CREATE TABLE policies (
    version         TEXT    PRIMARY KEY,
    document        TEXT    NOT NULL,
    first_applied_ns INTEGER NOT NULL
);
CREATE TABLE policy_applications (
    id              INTEGER PRIMARY KEY,
    version         TEXT    NOT NULL REFERENCES policies (version),
    applied_ns      INTEGER NOT NULL,
    applied_by      TEXT    NOT NULL                 -- e.g. "cli --policy", "api"
);

-- event_id is one sequence across memory_faults and conversions.
CREATE TABLE memory_faults (
    event_id        INTEGER PRIMARY KEY,
    vm_id           INTEGER NOT NULL REFERENCES vms (vm_id),
    vcpu            INTEGER NOT NULL,
    time_ns         INTEGER NOT NULL,
    gpa             INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    flags           INTEGER NOT NULL,                -- KVM_MEMORY_EXIT_FLAG_*; bit 3 = PRIVATE
    source          TEXT    NOT NULL CHECK (source IN ('kvm', 'emulated'))
);
CREATE INDEX memory_faults_by_vm_time ON memory_faults (vm_id, time_ns);
CREATE INDEX memory_faults_by_time ON memory_faults (time_ns);

CREATE TABLE conversions (
    event_id        INTEGER PRIMARY KEY,
    vm_id           INTEGER NOT NULL REFERENCES vms (vm_id),
    vcpu            INTEGER NOT NULL,
    requested_ns    INTEGER NOT NULL,
    completed_ns    INTEGER,                         -- NULL: pending, or interrupted by a crash
    gpa             INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    direction       TEXT    NOT NULL CHECK (direction IN ('to_private', 'to_shared')),
    trigger         TEXT    NOT NULL CHECK (trigger IN ('explicit', 'implicit')),
    decision        TEXT    NOT NULL CHECK (decision IN ('pending', 'applied', 'denied', 'invalid', 'failed')),
    reason          TEXT    NOT NULL,
    policy_version  TEXT    NOT NULL,
    source          TEXT    NOT NULL CHECK (source IN ('kvm', 'emulated')),
    changed_bytes   INTEGER NOT NULL,                -- bytes whose state this conversion changes
    discarded_bytes INTEGER NOT NULL,
    guest_result    INTEGER NOT NULL                 -- 0 or -KVM_E* as the guest read it
);
CREATE INDEX conversions_by_vm_time ON conversions (vm_id, requested_ns);
CREATE INDEX conversions_by_time ON conversions (requested_ns);
CREATE INDEX conversions_by_decision ON conversions (decision, requested_ns);

CREATE TABLE api_requests (
    id              INTEGER PRIMARY KEY,
    time_ns         INTEGER NOT NULL,
    method          TEXT    NOT NULL,
    path            TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    duration_ns     INTEGER NOT NULL,
    client          TEXT
);
CREATE INDEX api_requests_by_time ON api_requests (time_ns);

-- A VM's private/shared layout when it ended: maximal runs of equal state.
CREATE TABLE memory_layout (
    vm_id           INTEGER NOT NULL REFERENCES vms (vm_id),
    start_gpa       INTEGER NOT NULL,
    end_gpa         INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('private', 'shared')),
    PRIMARY KEY (vm_id, start_gpa)
);

-- Conversions by VM, direction, trigger, decision and policy version.
CREATE VIEW conversion_summary AS
SELECT v.vm_id, v.name AS vm, c.direction, c.trigger, c.decision, c.policy_version,
       count(*) AS conversions, sum(c.size) AS bytes, sum(c.changed_bytes) AS changed_bytes,
       min(c.requested_ns) AS first_ns, max(c.requested_ns) AS last_ns
FROM conversions c JOIN vms v USING (vm_id)
GROUP BY v.vm_id, c.direction, c.trigger, c.decision, c.policy_version;

-- Every refusal by policy, with its reason and the policy version that decided it.
CREATE VIEW denials AS
SELECT c.event_id, v.vm_id, v.name AS vm, c.vcpu, c.requested_ns, c.gpa, c.size, c.direction, c.trigger,
       c.reason, c.policy_version
FROM conversions c JOIN vms v USING (vm_id)
WHERE c.decision = 'denied';

-- Private and shared bytes of each VM's data RAM now (or when it ended).
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

-- Schema 3: records a hostile guest cannot blow up, and a memory state that survives prune.

-- The page count an invalid request asked for, as given (saturated at 2^63 - 1). Its
-- `size` is 0 from now on: nothing was converted, and no audit sum can overflow on it.
ALTER TABLE conversions ADD COLUMN requested_pages INTEGER;
UPDATE conversions SET requested_pages = size / 4096, size = 0 WHERE decision = 'invalid';

-- What `db prune` removed of a VM's applied conversions, so vm_memory_state stays exact.
ALTER TABLE vms ADD COLUMN pruned_to_shared_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE vms ADD COLUMN pruned_to_private_bytes INTEGER NOT NULL DEFAULT 0;

-- Beyond a VM's recording budget, invalid and denied requests and memory faults are
-- counted here, one row per VM, second and kind, instead of one row each.
CREATE TABLE event_aggregates (
    vm_id           INTEGER NOT NULL REFERENCES vms (vm_id),
    second          INTEGER NOT NULL,                -- seconds since the Unix epoch
    kind            TEXT    NOT NULL CHECK (kind IN ('invalid', 'denied', 'fault')),
    events          INTEGER NOT NULL,
    PRIMARY KEY (vm_id, second, kind)
);

-- A VM that ended with its layout recorded is exact from that layout; otherwise the
-- initial state plus every applied conversion, pruned ones included.
DROP VIEW vm_memory_state;
CREATE VIEW vm_memory_state AS
WITH computed AS (
    SELECT v.vm_id,
           CASE v.initial_state WHEN 'private' THEN v.data_ram_size ELSE 0 END
             - v.pruned_to_shared_bytes + v.pruned_to_private_bytes
             - coalesce(sum(CASE WHEN c.direction = 'to_shared' THEN c.changed_bytes END), 0)
             + coalesce(sum(CASE WHEN c.direction = 'to_private' THEN c.changed_bytes END), 0) AS private_bytes
    FROM vms v LEFT JOIN conversions c ON c.vm_id = v.vm_id AND c.decision = 'applied'
    GROUP BY v.vm_id
), recorded AS (
    SELECT vm_id, sum(CASE WHEN state = 'private' THEN end_gpa - start_gpa ELSE 0 END) AS private_bytes
    FROM memory_layout GROUP BY vm_id
)
SELECT v.vm_id, v.name AS vm, v.backend, v.final_state,
       coalesce(r.private_bytes, c.private_bytes) AS private_bytes,
       v.data_ram_size - coalesce(r.private_bytes, c.private_bytes) AS shared_bytes
FROM vms v JOIN computed c USING (vm_id) LEFT JOIN recorded r USING (vm_id);

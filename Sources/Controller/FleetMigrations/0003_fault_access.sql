-- Fleet schema 3: the access type of every fault (agents from schema 6 on report it).
-- NULL: unknown (KVM did not say, or the agent is older than the field).
ALTER TABLE memory_faults ADD COLUMN access TEXT;

-- Faults by host, VM, access and source.
CREATE VIEW fleet_fault_accesses AS
SELECT host, vm_id, coalesce(access, 'unknown') AS access, source, count(*) AS faults
FROM memory_faults GROUP BY host, vm_id, coalesce(access, 'unknown'), source;

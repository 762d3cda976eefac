-- VMs run in processes of their own and outlive the agent (issue 29).
-- What a restarted agent needs to list a VM as it was created, and to resume its ring.
ALTER TABLE vms ADD COLUMN image TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN command_line TEXT NOT NULL DEFAULT '';
ALTER TABLE vms ADD COLUMN timeout_ms INTEGER;
-- DELETE /v1/vms/{id}: the rows stay for audit, the VM is no longer listed.
ALTER TABLE vms ADD COLUMN deleted_ns INTEGER;
-- The process that runs the VM (NULL: inside the agent).
ALTER TABLE vms ADD COLUMN pid INTEGER;
-- Bytes of the VM's ring committed here, in the same transaction as their rows:
-- an agent that dies between the commit and moving the ring's read position
-- resumes after them, so nothing is recorded twice.
ALTER TABLE vms ADD COLUMN ring_read INTEGER NOT NULL DEFAULT 0;
-- The VM process's own number for an allowed conversion, so its completion finds
-- the pending row across an agent restart.
ALTER TABLE conversions ADD COLUMN vm_seq INTEGER;

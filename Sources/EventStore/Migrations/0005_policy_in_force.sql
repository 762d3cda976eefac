-- Schema 5: the policy in force survives restarts.

-- The agent restores the policy of the newest policy_applications row on start; a
-- replacement (PUT /v1/policy, `serve --policy FILE`) is a new row naming who made it.
-- Versions are the SHA-256 of the document's canonical form (sorted keys, no
-- insignificant white space) from this schema on; older rows keep the hash of their bytes.
-- The optional "name" of a document, shown next to its version.
ALTER TABLE policies ADD COLUMN name TEXT;

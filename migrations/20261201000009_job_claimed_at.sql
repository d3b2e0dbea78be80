-- When a job was last claimed (claim latency: created_at → claimed_at; for an action, created in
-- its predecessor's completing transaction, that is the transition latency).
ALTER TABLE jobs ADD COLUMN claimed_at timestamptz;

-- The worker pools that run (or ran) against this database: one row per `sluice serve` or
-- `sluice worker` process with workers, kept current by its heartbeat. A pool that stops says so;
-- one that dies simply stops beating, and is shown as lost.
CREATE TABLE worker_pools (
    id           uuid PRIMARY KEY,
    host         text NOT NULL CHECK (char_length(host) <= 255),
    pid          integer NOT NULL,
    version      text NOT NULL CHECK (char_length(version) <= 64),
    -- serve or worker
    kind         text NOT NULL CHECK (kind IN ('serve', 'worker')),
    slots        integer NOT NULL CHECK (slots >= 1),
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    stopped_at   timestamptz
);
CREATE INDEX worker_pools_heartbeat ON worker_pools (heartbeat_at DESC);

-- The pool that claimed a job last (kept after it ends, unlike the lease).
ALTER TABLE jobs ADD COLUMN claimed_by uuid;

-- When an execution's artifacts were deleted by the retention task (its history says so).
ALTER TABLE pipeline_executions ADD COLUMN artifacts_expired_at timestamptz;
CREATE INDEX pipeline_executions_retention ON pipeline_executions (started_at)
    WHERE artifacts_expired_at IS NULL AND place = 'finished';

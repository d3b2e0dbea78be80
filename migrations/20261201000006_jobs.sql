-- The job queue: PostgreSQL is the distributed engine. A job is claimed with FOR UPDATE SKIP
-- LOCKED, held under a lease the worker renews while it works, and finished only by the holder of
-- the current lease (every completion names the lease token: a worker that lost its lease can
-- never write a result). Expired leases are returned by the rescuer. Times come from the
-- application's clock, never now(), so tests can move them.
CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 64),
    payload          jsonb NOT NULL,
    state            text NOT NULL CHECK (state IN ('available', 'running', 'succeeded', 'failed', 'cancelled')),
    -- How many times it was claimed; a claim beyond max_attempts is never made.
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    run_at           timestamptz NOT NULL,
    lease_owner      uuid,
    lease_token      uuid,
    lease_expires_at timestamptz,
    last_error       text CHECK (char_length(last_error) <= 2048),
    created_at       timestamptz NOT NULL,
    finished_at      timestamptz,
    CONSTRAINT jobs_lease_only_while_running CHECK (
        (state = 'running') = (lease_token IS NOT NULL AND lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)
    )
);
CREATE INDEX jobs_available ON jobs (run_at, id) WHERE state = 'available';
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE state = 'running';

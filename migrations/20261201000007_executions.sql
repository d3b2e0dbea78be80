-- Pipeline executions. The engine's planner (src/engine) decides every change; these tables hold
-- its state. `pipeline_runs` has one row per pipeline that ever ran: every change to a
-- pipeline's executions takes that row's lock first, so changes to one pipeline are serialized
-- and a plan is never applied to states someone else changed meanwhile.
CREATE TABLE pipeline_runs (
    pipeline_id uuid PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    next_seq    bigint NOT NULL CHECK (next_seq >= 1),
    -- The planner's logical time (orders arrivals at a stage's gate).
    clock       bigint NOT NULL CHECK (clock >= 0)
);

-- Inbound transitions that are disabled (enabled is the default, and has no row).
CREATE TABLE stage_transitions (
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    stage_name  text NOT NULL,
    reason      text NOT NULL CHECK (char_length(reason) <= 300),
    changed_by  text NOT NULL,
    changed_at  timestamptz NOT NULL,
    PRIMARY KEY (pipeline_id, stage_name)
);

CREATE TABLE pipeline_executions (
    id               uuid PRIMARY KEY,
    pipeline_id      uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    seq              bigint NOT NULL,
    pipeline_version integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('InProgress', 'Stopping', 'Stopped', 'Succeeded', 'Failed', 'Superseded', 'Cancelled')),
    place            text NOT NULL CHECK (place IN ('waiting', 'in', 'finished')),
    place_stage      integer,
    waiting_since    bigint,
    trigger_type     text NOT NULL,
    trigger_detail   text NOT NULL CHECK (char_length(trigger_detail) <= 1024),
    variables        jsonb NOT NULL,
    started_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (pipeline_id, seq),
    CONSTRAINT pipeline_executions_place CHECK (
        (place = 'finished') = (place_stage IS NULL)
        AND (place = 'waiting') = (waiting_since IS NOT NULL)
    )
);
CREATE INDEX pipeline_executions_active ON pipeline_executions (pipeline_id) WHERE place <> 'finished';
CREATE INDEX pipeline_executions_history ON pipeline_executions (pipeline_id, seq DESC);

-- Which execution entered each stage last (only it may be retried there).
CREATE TABLE stage_latest (
    pipeline_id  uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    stage_name   text NOT NULL,
    execution_id uuid NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    PRIMARY KEY (pipeline_id, stage_name)
);

CREATE TABLE stage_executions (
    execution_id uuid NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    stage_index  integer NOT NULL,
    status       text NOT NULL CHECK (status IN ('InProgress', 'Stopping', 'Stopped', 'Succeeded', 'Failed', 'Cancelled', 'Skipped')),
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (execution_id, stage_index)
);

-- Every attempt of every action: a new attempt is a new row, so history is never rewritten.
CREATE TABLE action_executions (
    execution_id uuid NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    stage_index  integer NOT NULL,
    action_index integer NOT NULL,
    attempt      integer NOT NULL CHECK (attempt >= 1),
    status       text NOT NULL CHECK (status IN ('InProgress', 'Succeeded', 'Failed', 'Abandoned')),
    job_id       bigint REFERENCES jobs (id) ON DELETE SET NULL,
    started_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (execution_id, stage_index, action_index, attempt)
);

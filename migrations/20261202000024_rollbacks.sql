-- ROLLBACK executions (RollbackStage, a stage's onFailure ROLLBACK): the one stage each runs and
-- the execution whose artifacts and variables it runs it with. A STANDARD execution has no row.
CREATE TABLE execution_rollbacks (
    execution_id        uuid PRIMARY KEY REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    stage_index         integer NOT NULL CHECK (stage_index >= 1),
    target_execution_id uuid NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE
);
CREATE INDEX execution_rollbacks_target ON execution_rollbacks (target_execution_id);

-- A stage's automatic retry (onFailure RETRY) happens once per execution and stage.
CREATE TABLE stage_auto_retries (
    execution_id uuid NOT NULL REFERENCES pipeline_executions (id) ON DELETE CASCADE,
    stage_index  integer NOT NULL,
    retried_at   timestamptz NOT NULL,
    PRIMARY KEY (execution_id, stage_index)
);

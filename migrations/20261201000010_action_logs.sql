-- Every action attempt gets an id of its own (ListActionExecutions' actionExecutionId, the key of
-- its log), and records what it ran with: its configuration with references resolved (secrets
-- masked) and the artifacts it read ({"name": {"address": sha256}}).
ALTER TABLE action_executions ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid();
ALTER TABLE action_executions ADD CONSTRAINT action_executions_id UNIQUE (id);
ALTER TABLE action_executions ADD COLUMN resolved_configuration jsonb;
ALTER TABLE action_executions ADD COLUMN input_artifacts jsonb;

-- An attempt's log, one row per line, numbered from 1 in the order the process wrote them. Lines
-- arrive in batches while the action runs; secrets are masked before they are written.
CREATE TABLE action_logs (
    action_execution_id uuid NOT NULL REFERENCES action_executions (id) ON DELETE CASCADE,
    line                integer NOT NULL CHECK (line >= 1),
    at                  timestamptz NOT NULL,
    text                text NOT NULL CHECK (char_length(text) <= 8192),
    PRIMARY KEY (action_execution_id, line)
);

-- StartPipelineExecution's idempotency: a repeated clientRequestToken returns the execution it
-- started. Source revision overrides ([{actionName, revisionType, revisionValue}]) pin what a
-- source action fetches; the stop reason is StopPipelineExecution's.
ALTER TABLE pipeline_executions ADD COLUMN client_request_token text
    CHECK (char_length(client_request_token) BETWEEN 1 AND 128);
CREATE UNIQUE INDEX pipeline_executions_client_request_token
    ON pipeline_executions (pipeline_id, client_request_token) WHERE client_request_token IS NOT NULL;
ALTER TABLE pipeline_executions ADD COLUMN source_revisions jsonb NOT NULL DEFAULT '[]';
ALTER TABLE pipeline_executions ADD COLUMN stop_reason text CHECK (char_length(stop_reason) <= 200);

-- A data key per pipeline seals its artifacts; it is stored wrapped (sealed with the master key,
-- bound to the pipeline and the key id), so the database alone opens nothing.
CREATE TABLE pipeline_data_keys (
    pipeline_id uuid PRIMARY KEY REFERENCES pipelines (id) ON DELETE CASCADE,
    key_id      text NOT NULL UNIQUE,
    wrapped     text NOT NULL,
    created_at  timestamptz NOT NULL
);

-- What an action attempt produced: its summary, output variables and output artifacts
-- ({"name": {"address": sha256, "size": bytes}}).
ALTER TABLE action_executions ADD COLUMN summary text CHECK (char_length(summary) <= 2048);
ALTER TABLE action_executions ADD COLUMN output_variables jsonb;
ALTER TABLE action_executions ADD COLUMN output_artifacts jsonb;

-- Execution, stage and action state changes in the shape of CodePipeline's EventBridge events,
-- written in the transaction that made the change (so an event exists exactly when its change
-- does), for notifications to deliver in order.
CREATE TABLE pipeline_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    detail_type text NOT NULL,
    detail      jsonb NOT NULL
);
CREATE INDEX pipeline_events_pipeline ON pipeline_events (pipeline_id, seq);

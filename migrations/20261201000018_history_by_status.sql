-- The console's history filters by status: newest first within one status of one pipeline.
CREATE INDEX pipeline_executions_history_by_status ON pipeline_executions (pipeline_id, status, seq DESC);

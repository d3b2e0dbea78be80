-- The pipelines list shows each pipeline's type and execution mode; keeping them on the pipeline
-- row (written with every version) spares the list a join and JSON extraction per row.
ALTER TABLE pipelines ADD COLUMN pipeline_type text NOT NULL DEFAULT 'V2';
ALTER TABLE pipelines ADD COLUMN execution_mode text NOT NULL DEFAULT 'SUPERSEDED';

UPDATE pipelines p
SET pipeline_type = COALESCE(v.declaration->>'pipelineType', 'V2'),
    execution_mode = COALESCE(v.declaration->>'executionMode', 'SUPERSEDED')
FROM pipeline_versions v
WHERE v.pipeline_id = p.id AND v.version = p.current_version;

-- The time of a pipeline's last change to its runs. Changes to a pipeline are serialized by the
-- runs lock, but each takes its time before waiting for the lock; a change never records a time
-- earlier than the one before it, so the history's times follow the order things happened in.
ALTER TABLE pipeline_runs ADD COLUMN last_change_at timestamptz;

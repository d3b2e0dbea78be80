-- Fleet deploys: a Directory deploy naming a DeploymentGroup deploys on every live worker pool
-- whose labels hold the group. The action's own job (the rollout, run by any worker) queues one
-- job per host, targeted at that host's pool and claimed only by it; a host job belongs to the
-- rollout's job, so cancelling the rollout cancels its hosts' jobs.
ALTER TABLE jobs ADD COLUMN target_pool uuid;
ALTER TABLE jobs ADD COLUMN parent_id bigint REFERENCES jobs (id) ON DELETE CASCADE;
DROP INDEX jobs_available;
CREATE INDEX jobs_available ON jobs (run_at, id) WHERE state = 'available' AND target_pool IS NULL;
CREATE INDEX jobs_targeted ON jobs (target_pool, run_at, id)
    WHERE state = 'available' AND target_pool IS NOT NULL;
CREATE INDEX jobs_children ON jobs (parent_id) WHERE parent_id IS NOT NULL;

-- The hosts of one attempt of a fleet deploy, in rollout order, fixed when the rollout begins
-- (a worker that joins the group later deploys in the next run). `state` is the rollout's
-- (engine::rollout::Host); release and previous_release say what the host served before and
-- after, so that a rollback knows where to switch back to.
CREATE TABLE deploy_hosts (
    action_execution_id uuid NOT NULL REFERENCES action_executions (id) ON DELETE CASCADE,
    position         integer NOT NULL CHECK (position >= 0),
    pool_id          uuid NOT NULL,
    host             text NOT NULL CHECK (char_length(host) <= 255),
    pid              integer NOT NULL,
    state            text NOT NULL CHECK (state IN ('Pending', 'Deploying', 'Deployed', 'Failed',
                         'Skipped', 'RollingBack', 'RolledBack', 'RollbackFailed')),
    job_id           bigint REFERENCES jobs (id) ON DELETE SET NULL,
    release          text CHECK (char_length(release) <= 200),
    previous_release text CHECK (char_length(previous_release) <= 200),
    summary          text CHECK (char_length(summary) <= 4096),
    started_at       timestamptz,
    finished_at      timestamptz,
    PRIMARY KEY (action_execution_id, position)
);

-- Each host's log (its hooks' output), a row per line like an attempt's log.
CREATE TABLE deploy_host_logs (
    action_execution_id uuid NOT NULL,
    position            integer NOT NULL,
    line                integer NOT NULL CHECK (line >= 1),
    at                  timestamptz NOT NULL,
    text                text NOT NULL CHECK (char_length(text) <= 8192),
    PRIMARY KEY (action_execution_id, position, line),
    FOREIGN KEY (action_execution_id, position) REFERENCES deploy_hosts ON DELETE CASCADE
);

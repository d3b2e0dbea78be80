-- Manual approvals. An approval is an action attempt with no job: it waits as this row, holding
-- no worker, until enough answers decide it, its deadline passes, or its execution is stopped.
-- The attempt's status stays the one truth of whether it is still waiting (InProgress); the
-- outcome says how an approval ended when it ended here.
CREATE TABLE approvals (
    action_execution_id  uuid PRIMARY KEY REFERENCES action_executions (id) ON DELETE CASCADE,
    pipeline_id          uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    -- As stored in the execution's pinned version (what PutApprovalResult names).
    stage_name           text NOT NULL,
    action_name          text NOT NULL,
    -- CodePipeline's token: a fresh UUID per attempt.
    token                uuid NOT NULL UNIQUE,
    requested_at         timestamptz NOT NULL,
    deadline             timestamptz NOT NULL,
    -- CustomData and ExternalEntityLink with their variables resolved when it was requested.
    custom_data          text,
    external_entity_link text,
    -- The rules (Sluice's extensions; the defaults are CodePipeline's approval).
    required_approvals   integer NOT NULL DEFAULT 1 CHECK (required_approvals BETWEEN 1 AND 20),
    approver_groups      text[] NOT NULL DEFAULT '{}',
    forbid_self_approval boolean NOT NULL DEFAULT false,
    require_comment      boolean NOT NULL DEFAULT false,
    outcome              text CHECK (outcome IN ('Approved', 'Rejected', 'TimedOut')),
    decided_at           timestamptz,
    CONSTRAINT approvals_decided CHECK ((outcome IS NULL) = (decided_at IS NULL))
);
CREATE INDEX approvals_open ON approvals (requested_at) WHERE outcome IS NULL;
CREATE INDEX approvals_deadline ON approvals (deadline) WHERE outcome IS NULL;
CREATE INDEX approvals_gate ON approvals (pipeline_id, stage_name, action_name, decided_at DESC)
    WHERE outcome = 'Approved';

-- Every answer that counted: who, when, from where, with what comment. One per principal.
CREATE TABLE approval_decisions (
    action_execution_id uuid NOT NULL REFERENCES approvals (action_execution_id) ON DELETE CASCADE,
    principal           text NOT NULL,
    user_name           text NOT NULL,
    approved            boolean NOT NULL,
    comment             text NOT NULL CHECK (char_length(comment) <= 512),
    source_address      text,
    decided_at          timestamptz NOT NULL,
    PRIMARY KEY (action_execution_id, principal)
);

-- The commits a Git source saw behind the one it checked out (newest first, at most 50:
-- {"id", "author", "email", "message"}), so an approval can list what it promotes since the
-- last approved execution without going back to the repository.
ALTER TABLE action_executions ADD COLUMN source_commits jsonb;

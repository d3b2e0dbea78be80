-- Manual approvals. An approval is an action attempt with no job: it waits as this row, holding
-- no worker, until enough answers decide it, its deadline passes, or its execution is stopped.
-- It is open while its outcome is NULL: every way its attempt ends sets one, in the transaction
-- that ends it, so the inbox reads this table alone.
CREATE TABLE approvals (
    action_execution_id  uuid PRIMARY KEY REFERENCES action_executions (id) ON DELETE CASCADE,
    pipeline_id          uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    -- The pipeline's name (pipelines are never renamed) and who started the execution (its
    -- trigger detail: an ARN for a person's start), copied so the inbox needs no join.
    pipeline_name        text NOT NULL,
    execution_id         uuid NOT NULL,
    started_by           text NOT NULL,
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
    -- What the execution promotes (its source revisions: action, commit, message, author), kept
    -- when it was requested (sources run in the first stage, so all have run by then).
    promoted             jsonb NOT NULL DEFAULT '[]',
    -- The rules (Sluice's extensions; the defaults are CodePipeline's approval).
    required_approvals   integer NOT NULL DEFAULT 1 CHECK (required_approvals BETWEEN 1 AND 20),
    approver_groups      text[] NOT NULL DEFAULT '{}',
    forbid_self_approval boolean NOT NULL DEFAULT false,
    require_comment      boolean NOT NULL DEFAULT false,
    -- Approved, Rejected, TimedOut; Abandoned (its execution was stopped and abandoned); Failed
    -- (it could not be requested: a reference in its CustomData did not resolve).
    outcome              text CHECK (outcome IN ('Approved', 'Rejected', 'TimedOut', 'Abandoned', 'Failed')),
    decided_at           timestamptz,
    CONSTRAINT approvals_decided CHECK ((outcome IS NULL) = (decided_at IS NULL))
);
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

-- The gates with approvals: how many are open at each (with the same rules), which the inbox and
-- its count authorize, a row per gate however many executions wait there. Kept by triggers on
-- every approval's insert and change of outcome, so no path can forget it.
CREATE TABLE approval_gates (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id        uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    pipeline_name      text NOT NULL,
    stage_name         text NOT NULL,
    action_name        text NOT NULL,
    required_approvals integer NOT NULL,
    approver_groups    text[] NOT NULL,
    open               integer NOT NULL CHECK (open >= 0),
    UNIQUE (pipeline_id, stage_name, action_name, required_approvals, approver_groups)
);
ALTER TABLE approvals ADD COLUMN gate_id bigint NOT NULL REFERENCES approval_gates (id) ON DELETE CASCADE;
CREATE INDEX approvals_open_by_time ON approvals (requested_at, action_execution_id) WHERE outcome IS NULL;

CREATE FUNCTION approval_gates_join() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO approval_gates (pipeline_id, pipeline_name, stage_name, action_name,
                                required_approvals, approver_groups, open)
    VALUES (NEW.pipeline_id, NEW.pipeline_name, NEW.stage_name, NEW.action_name,
            NEW.required_approvals, NEW.approver_groups, (NEW.outcome IS NULL)::int)
    ON CONFLICT (pipeline_id, stage_name, action_name, required_approvals, approver_groups)
    DO UPDATE SET open = approval_gates.open + (NEW.outcome IS NULL)::int
    RETURNING id INTO NEW.gate_id;
    RETURN NEW;
END $$;

CREATE FUNCTION approval_gates_leave() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.outcome IS NULL AND (TG_OP = 'DELETE' OR NEW.outcome IS NOT NULL) THEN
        UPDATE approval_gates SET open = open - 1 WHERE id = OLD.gate_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER approvals_join_gate BEFORE INSERT ON approvals
    FOR EACH ROW EXECUTE FUNCTION approval_gates_join();
CREATE TRIGGER approvals_leave_gate AFTER UPDATE OF outcome OR DELETE ON approvals
    FOR EACH ROW EXECUTE FUNCTION approval_gates_leave();

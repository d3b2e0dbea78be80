-- The live console: every commit that changes what a console page shows announces it on one
-- channel, `sluice_changes`, so that each server process's one listener can tell its open
-- streams. Triggers rather than calls in the code, so that no path can forget one. PostgreSQL
-- delivers a transaction's notifications at commit and folds identical ones, so a transition
-- that writes many rows announces its pipeline once.
--
-- Payloads: `p:<pipeline id>` (its executions, transitions, approvals or versions changed),
-- `l:<attempt id>` (new log lines), `s:<session id>` (a session ended), `access` (policies,
-- attachments, group members or users changed: every stream checks its access again),
-- `gates` (the number of open approvals changed).

CREATE FUNCTION announce_pipeline() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row record;
BEGIN
    IF TG_OP = 'DELETE' THEN row := OLD; ELSE row := NEW; END IF;
    IF TG_TABLE_NAME = 'pipelines' THEN
        PERFORM pg_notify('sluice_changes', 'p:' || row.id);
    ELSE
        PERFORM pg_notify('sluice_changes', 'p:' || row.pipeline_id);
    END IF;
    RETURN NULL;
END $$;

-- Every engine transition updates its pipeline's runs row (the runs lock, clock and time).
CREATE TRIGGER pipeline_runs_announce AFTER INSERT OR UPDATE ON pipeline_runs
    FOR EACH ROW EXECUTE FUNCTION announce_pipeline();
CREATE TRIGGER stage_transitions_announce AFTER INSERT OR UPDATE OR DELETE ON stage_transitions
    FOR EACH ROW EXECUTE FUNCTION announce_pipeline();
-- An answer that does not decide an approval yet ("1 of 2 approvals") changes no runs row.
CREATE TRIGGER approvals_announce AFTER UPDATE ON approvals
    FOR EACH ROW EXECUTE FUNCTION announce_pipeline();
CREATE TRIGGER pipelines_announce AFTER UPDATE OR DELETE ON pipelines
    FOR EACH ROW EXECUTE FUNCTION announce_pipeline();

CREATE FUNCTION announce_log_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sluice_changes', 'l:' || a.id)
    FROM (SELECT DISTINCT action_execution_id AS id FROM new_lines) AS a;
    RETURN NULL;
END $$;

CREATE TRIGGER action_logs_announce AFTER INSERT ON action_logs
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION announce_log_lines();

CREATE FUNCTION announce_session_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sluice_changes', 's:' || OLD.id);
    RETURN NULL;
END $$;

CREATE TRIGGER sessions_announce_end AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION announce_session_end();

CREATE FUNCTION announce_access() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sluice_changes', 'access');
    RETURN NULL;
END $$;

CREATE TRIGGER users_announce_access AFTER UPDATE OF enabled OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION announce_access();
CREATE TRIGGER policies_announce_access AFTER UPDATE OF document OR DELETE ON policies
    FOR EACH STATEMENT EXECUTE FUNCTION announce_access();
CREATE TRIGGER user_policies_announce_access AFTER INSERT OR UPDATE OR DELETE ON user_policies
    FOR EACH STATEMENT EXECUTE FUNCTION announce_access();
CREATE TRIGGER group_policies_announce_access AFTER INSERT OR UPDATE OR DELETE ON group_policies
    FOR EACH STATEMENT EXECUTE FUNCTION announce_access();
CREATE TRIGGER group_members_announce_access AFTER INSERT OR UPDATE OR DELETE ON group_members
    FOR EACH STATEMENT EXECUTE FUNCTION announce_access();

CREATE FUNCTION announce_gates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sluice_changes', 'gates');
    RETURN NULL;
END $$;

CREATE TRIGGER approval_gates_announce AFTER INSERT OR UPDATE OR DELETE ON approval_gates
    FOR EACH STATEMENT EXECUTE FUNCTION announce_gates();

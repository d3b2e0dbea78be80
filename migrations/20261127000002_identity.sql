-- Identity and access: users, groups, policies and their attachments, sessions, API tokens,
-- sign-in throttling, and the append-only audit log.

-- Names follow the access-control contract: 1-64 of A-Za-z0-9._@- for users and groups,
-- unique regardless of case.
CREATE TABLE users (
    id              uuid PRIMARY KEY,
    user_name       text NOT NULL CONSTRAINT users_user_name_format
                        CHECK (user_name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    -- NULL: the user cannot sign in to the console (API tokens only).
    password_hash   text,
    enabled         boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz
);
CREATE UNIQUE INDEX users_user_name_key ON users (lower(user_name));
CREATE TRIGGER users_set_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE groups (
    id         uuid PRIMARY KEY,
    group_name text NOT NULL CONSTRAINT groups_group_name_format
                   CHECK (group_name ~ '^[A-Za-z0-9._@-]{1,64}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX groups_group_name_key ON groups (lower(group_name));

CREATE TABLE group_members (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_id ON group_members (user_id);

-- Managed policies are rows too (kept in step with the binary at every start, `managed` true and
-- read-only), so attachments always reference a row and a customer policy cannot be deleted while
-- attached (ON DELETE RESTRICT).
CREATE TABLE policies (
    id          uuid PRIMARY KEY,
    policy_name text NOT NULL CONSTRAINT policies_policy_name_format
                    CHECK (policy_name ~ '^[A-Za-z0-9+=,.@_-]{1,128}$'),
    managed     boolean NOT NULL DEFAULT false,
    description text NOT NULL DEFAULT '' CONSTRAINT policies_description_length
                    CHECK (char_length(description) <= 1000),
    document    text NOT NULL CONSTRAINT policies_document_length
                    CHECK (char_length(document) <= 6144),
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX policies_policy_name_key ON policies (lower(policy_name));
CREATE TRIGGER policies_set_updated_at BEFORE UPDATE ON policies
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE user_policies (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    policy_id   uuid NOT NULL REFERENCES policies (id) ON DELETE RESTRICT,
    attached_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, policy_id)
);
CREATE INDEX user_policies_policy_id ON user_policies (policy_id);

CREATE TABLE group_policies (
    group_id    uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    policy_id   uuid NOT NULL REFERENCES policies (id) ON DELETE RESTRICT,
    attached_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, policy_id)
);
CREATE INDEX group_policies_policy_id ON group_policies (policy_id);

-- Console sessions. Only the SHA-256 of the cookie's token is stored.
CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    token_hash   bytea NOT NULL UNIQUE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    source_ip    text,
    user_agent   text
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- API tokens (IAM's access keys). Only the SHA-256 of the token is stored.
CREATE TABLE access_keys (
    id              uuid PRIMARY KEY,
    token_hash      bytea NOT NULL UNIQUE,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- A narrowing policy: the token may do only what both the user and this document allow.
    policy_document text CONSTRAINT access_keys_policy_document_length
                        CHECK (char_length(policy_document) <= 6144),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    last_used_at    timestamptz
);
CREATE INDEX access_keys_user_id ON access_keys (user_id);

-- Failed sign-ins, for throttling (per user name and client address, and per address).
CREATE TABLE sign_in_failures (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_key    text NOT NULL,
    client_addr text NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_user_addr ON sign_in_failures (user_key, client_addr, failed_at);
CREATE INDEX sign_in_failures_addr ON sign_in_failures (client_addr, failed_at);

-- The audit log (CloudTrail's role). Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE.
-- Each row's hash covers the previous row's hash and its own canonical content, so a row changed
-- behind the application's back breaks the chain (`sluice audit verify`).
CREATE TABLE audit_events (
    seq                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id           uuid NOT NULL UNIQUE,
    event_time         timestamptz NOT NULL,
    user_name          text,
    token_id           uuid,
    source_ip          text,
    user_agent         text,
    event_name         text NOT NULL,
    resource_arn       text,
    request_parameters jsonb NOT NULL,
    outcome            text NOT NULL,
    error_message      text,
    request_id         text,
    prev_hash          bytea,
    hash               bytea NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (event_time DESC, seq DESC);
CREATE INDEX audit_events_user ON audit_events (user_name, seq DESC);
CREATE INDEX audit_events_name ON audit_events (event_name, seq DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

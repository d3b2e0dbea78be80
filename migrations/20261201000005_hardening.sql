-- Hardening: a keyed audit chain over exactly what is stored, throttling that counts attempts
-- before checking them, named API tokens, and pipeline tags.

-- Audit events from now on keep their request parameters as the canonical JSON text that was
-- hashed (jsonb would normalise numbers such as -0.0 and break the hash). Chain version 1 rows
-- (unkeyed SHA-256 over jsonb) stay as they are and are verified as they were made.
ALTER TABLE audit_events ADD COLUMN request_parameters_text text;
ALTER TABLE audit_events ADD COLUMN chain_version smallint NOT NULL DEFAULT 1;
ALTER TABLE audit_events ALTER COLUMN request_parameters DROP NOT NULL;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_parameters_by_version CHECK (
    (chain_version = 1 AND request_parameters IS NOT NULL AND request_parameters_text IS NULL)
    OR (chain_version = 2 AND request_parameters IS NULL AND request_parameters_text IS NOT NULL)
);

-- Sign-in attempts are recorded before the password is checked; failures across addresses slow
-- down further attempts on the same account.
CREATE INDEX sign_in_failures_user_time ON sign_in_failures (user_key, failed_at);

-- Refused (throttled) sign-ins are counted here rather than audited one row each.
CREATE TABLE sign_in_throttled (
    user_key    text NOT NULL,
    client_addr text NOT NULL,
    first_at    timestamptz NOT NULL,
    last_at     timestamptz NOT NULL,
    refused     bigint NOT NULL CHECK (refused >= 1),
    PRIMARY KEY (user_key, client_addr)
);

-- API tokens get a name, so a list of them means something.
ALTER TABLE access_keys ADD COLUMN name text NOT NULL DEFAULT ''
    CONSTRAINT access_keys_name_length CHECK (char_length(name) <= 100);

-- Tags on pipelines (CodePipeline's TagResource): at most 50 per pipeline, keys unique.
CREATE TABLE pipeline_tags (
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    key         text NOT NULL CHECK (char_length(key) BETWEEN 1 AND 128),
    value       text NOT NULL CHECK (char_length(value) <= 256),
    PRIMARY KEY (pipeline_id, key)
);

-- A new API token is shown once, on the page its creation redirects to (post/redirect/get):
-- sealed here for the creating session until that page reads and deletes it.
CREATE TABLE access_key_reveals (
    access_key_id uuid PRIMARY KEY REFERENCES access_keys (id) ON DELETE CASCADE,
    session_id    uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    sealed_token  text NOT NULL,
    created_at    timestamptz NOT NULL
);

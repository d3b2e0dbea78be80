-- Pipelines and their immutable versions. A pipeline row points at its current version; every
-- save adds a version (compare-and-set on current_version), and old versions stay readable.
-- Secret configuration values are stored sealed (AES-256-GCM, "sluice:enc:v1:…"), never in clear.

CREATE TABLE pipelines (
    id              uuid PRIMARY KEY,
    name            text NOT NULL CONSTRAINT pipelines_name_format
                        CHECK (name ~ '^[A-Za-z0-9.@_-]{1,100}$'),
    current_version integer NOT NULL CHECK (current_version >= 1),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
-- CodePipeline's names are case-sensitive.
CREATE UNIQUE INDEX pipelines_name_key ON pipelines (name);

CREATE TABLE pipeline_versions (
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    version     integer NOT NULL CHECK (version >= 1),
    declaration jsonb NOT NULL,
    author      text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (pipeline_id, version)
);

-- Push webhooks: each Git source action of a pipeline has a hook (`POST /hooks/<pipeline>/<action>`)
-- with a secret of its own, sealed, made when someone allowed to see it first asks for it.
CREATE TABLE source_hooks (
    pipeline_id   uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    action_name   text NOT NULL CHECK (char_length(action_name) BETWEEN 1 AND 100),
    sealed_secret text NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (pipeline_id, action_name)
);

-- What each hook received, newest kept (at most 100 per hook). A delivery id accepted once is
-- never accepted again: the unique index is the replay protection. Refused deliveries have none.
CREATE TABLE hook_deliveries (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pipeline_id  uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    action_name  text NOT NULL,
    delivery_id  text CHECK (char_length(delivery_id) <= 200),
    host         text NOT NULL CHECK (char_length(host) <= 40),
    event        text NOT NULL CHECK (char_length(event) <= 100),
    outcome      text NOT NULL CHECK (char_length(outcome) <= 500),
    execution_id uuid,
    received_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX hook_deliveries_once ON hook_deliveries (pipeline_id, action_name, delivery_id)
    WHERE delivery_id IS NOT NULL;
CREATE INDEX hook_deliveries_recent ON hook_deliveries (pipeline_id, action_name, id DESC);

-- Polling (PollForSourceChanges): the commit each polled source action last saw at its branch.
CREATE TABLE source_polls (
    pipeline_id uuid NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    action_name text NOT NULL,
    last_commit text NOT NULL,
    checked_at  timestamptz NOT NULL,
    PRIMARY KEY (pipeline_id, action_name)
);

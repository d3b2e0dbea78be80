-- The keyring: root keys that seal secrets and wrap the pipelines' data keys, and the audit
-- chain's key, each sealed by the master key (which never enters the database). Rotating the
-- master key rewraps these rows; one root key is current, older ones stay to open what they
-- sealed.
CREATE TABLE keyring (
    id         text PRIMARY KEY,
    purpose    text NOT NULL CHECK (purpose IN ('root', 'audit-chain')),
    state      text NOT NULL CHECK (state IN ('current', 'retired')),
    sealed     text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX keyring_one_current ON keyring (purpose) WHERE state = 'current';

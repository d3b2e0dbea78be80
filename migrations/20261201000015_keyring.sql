-- The keyring: the root key, which seals every secret and wraps the pipelines' data keys, and
-- the audit chain's key, each sealed by the master key (which never enters the database). One
-- row of each; `sluice keys rotate` replaces both in the transaction that reseals everything.
CREATE TABLE keyring (
    purpose    text PRIMARY KEY CHECK (purpose IN ('root', 'audit-chain')),
    id         text NOT NULL,
    sealed     text NOT NULL,
    created_at timestamptz NOT NULL
);

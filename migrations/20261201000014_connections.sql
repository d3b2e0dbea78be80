-- Connections: named credentials a Git source clones with (CodeConnections' role). The token is
-- sealed by the master key, bound to the connection's id; it is never returned.
CREATE TABLE connections (
    id             uuid PRIMARY KEY,
    name           text NOT NULL CHECK (name ~ '^[A-Za-z0-9.@_-]{1,32}$'),
    provider_type  text NOT NULL,
    username       text NOT NULL CHECK (char_length(username) BETWEEN 1 AND 256),
    sealed_token   text NOT NULL,
    ca_certificate text CHECK (char_length(ca_certificate) <= 65536),
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);
-- Names are unique whatever their case: `Deploy` and `deploy` are one connection.
CREATE UNIQUE INDEX connections_name ON connections (lower(name));

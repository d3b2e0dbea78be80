-- A connection authenticates with a token over HTTPS (as before) or with an SSH private key.
-- For a key, `sealed_token` holds the sealed private key, `public_key` what to install on the
-- Git server (derived from it, not secret) and `known_hosts` the server keys a clone accepts.
ALTER TABLE connections
    ADD COLUMN auth_type text NOT NULL DEFAULT 'Token' CHECK (auth_type IN ('Token', 'SshKey')),
    ADD COLUMN public_key text,
    ADD COLUMN known_hosts text;
ALTER TABLE connections ADD CONSTRAINT connections_ssh_key_parts CHECK (
    (auth_type = 'SshKey') = (public_key IS NOT NULL AND known_hosts IS NOT NULL)
    AND (auth_type = 'Token' OR ca_certificate IS NULL)
);

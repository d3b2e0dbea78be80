-- A connection may be bound to one host: its credentials are then sent nowhere else, whatever
-- RepositoryUrl an action names. Stored lowercase (host, or host:port).
ALTER TABLE connections ADD COLUMN host text CHECK (char_length(host) BETWEEN 1 AND 255);

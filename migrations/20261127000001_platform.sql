-- Platform foundations shared by later tables.
--
-- Migrations are append-only: never edit one that has been applied anywhere; add a new one.

-- Keeps an `updated_at timestamptz` column current on every UPDATE. Tables opt in with:
--   CREATE TRIGGER <table>_set_updated_at BEFORE UPDATE ON <table>
--     FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

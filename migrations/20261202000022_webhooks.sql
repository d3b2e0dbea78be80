-- The URL each server is reached at, registered with its pool: a worker on another machine puts a
-- server's URL in the artifact links it sends to a webhook (`Invoke/Sluice/Webhook/1`).
ALTER TABLE worker_pools ADD COLUMN public_url text CHECK (char_length(public_url) <= 2048);

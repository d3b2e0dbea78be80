-- The labels a worker pool was started with (`sluice worker --labels web,eu`): the deployment
-- groups its host is in. Stored canonical (lowercase, sorted, each once) by the process.
ALTER TABLE worker_pools ADD COLUMN labels text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(labels) <= 16);

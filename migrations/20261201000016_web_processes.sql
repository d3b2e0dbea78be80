-- Every process registers, web-only servers too (with no workers), so that `sluice keys rotate`
-- sees every process holding keys and /admin/workers lists every server.
ALTER TABLE worker_pools DROP CONSTRAINT worker_pools_slots_check;
ALTER TABLE worker_pools ADD CONSTRAINT worker_pools_slots_check CHECK (slots >= 0);

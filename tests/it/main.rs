//! The integration test binary: every test goes through the front door (the real server on a
//! random port, the real `sluice` binary, a real browser) against real PostgreSQL.

mod harness;

mod api;
mod approvals;
mod artifact_store;

mod browser;
mod buckets;
mod cli;
mod connections;
mod console;
mod console_executions;
mod console_pipelines;
mod deploy;
mod docs;
mod embedded;
mod executions;
mod hardening;
mod http;
mod identity;
mod jobs;
mod keys;
mod live;
mod pipelines;
mod ssh;
mod triggers;
mod webhooks;
mod workers;

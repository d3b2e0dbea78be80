//! Sluice: a self-hosted continuous delivery service modelled on AWS CodePipeline.
//!
//! The module list below is the code map in code; `ARCHITECTURE.md` explains how the parts fit.

/// Authorization: IAM-style policy documents and the one pure `authorize` function.
pub mod access;
/// Artifacts: zip files between actions, sealed in streaming chunks, kept by content address.
pub mod artifacts;
/// The append-only, hash-chained audit log.
pub mod audit;
/// Micro-benchmarks behind `sluice bench`.
pub mod bench;
/// Command line: parses arguments once into typed settings and runs a command.
pub mod cli;
/// Time, injectable for tests.
pub mod clock;
/// Typed settings, built once at start and passed down; nothing deeper reads the environment.
pub mod config;
/// Persistence: the connection pool, migrations and every SQL statement.
pub mod db;
/// The private PostgreSQL cluster Sluice runs when no `DATABASE_URL` is given.
pub mod embedded_pg;
/// The execution engine's rules, pure: states, and the planner that applies one event.
pub mod engine;
/// The error of the operations layer, mapped to HTTP by the console and the API.
pub mod error;
/// Identity: names, passwords (argon2id), session and API-token secrets.
pub mod identity;
/// Periodic maintenance beside the server: pruning what has expired.
pub mod maintenance;
/// Process-wide measurements for `/metrics` (histograms in memory).
pub mod metrics;
/// Operations shared by the console and the API: authorize, act in one transaction, audit.
pub mod ops;
/// Pipelines: CodePipeline-compatible declarations, action types, validation.
pub mod pipeline;
/// Action providers: what runs each built-in action type on a worker.
pub mod providers;
/// Secrets at rest: AES-256-GCM under the master key.
pub mod sealing;
/// Wiring: opens the database (embedded or external), serves HTTP, shuts down in order.
pub mod startup;
/// Logging setup (tracing).
pub mod telemetry;
/// The only module that knows HTTP: routes, middleware, console pages, static files.
pub mod web;
/// The worker pool: claims jobs, runs them under renewed leases, finishes them fenced.
pub mod workers;

/// The version printed by `--version` and shown in the console footer.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

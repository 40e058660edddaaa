//! dbsync core: byte-identical, chunked, streaming PostgreSQL-to-PostgreSQL data sync.
//!
//! Module map (what each owns):
//! - [`conn`]: connection specs, TLS, pinned session settings.
//! - [`secrets`]: connection specs from AWS Secrets Manager secrets.
//! - [`aws`]: the one AWS SDK configuration every service client is built from.
//! - [`scope`]: which tables a job covers.
//! - [`catalog`]: introspection of the source and target.
//! - [`plan`]: pure decisions: FK levels, chunks, slice SQL.
//! - [`store`]: where parts live (local directory now; S3 beside it later).
//! - [`copy_out`] / [`copy_in`]: streaming one chunk out of the source / into the target.
//! - [`ledger`]: the target-side record that makes part loads exactly-once.
//! - [`manifest`]: the versioned JSON description of an export.
//! - [`compat`]: the pre-flight check that refuses before anything is touched.
//! - [`verify`]: row counts and content checksums on both sides.
//! - [`job`]: the pipelines (sync, export, import) that tie the above together.
//! - [`jobs`]: job records and target locks (DynamoDB, or memory).
//! - [`snapshot`]: holding one source snapshot for exports in separate processes.
//! - [`serverless`]: the steps each Lambda calls (plan, export a segment, ...).
//! - [`api`]: the HTTP API and the schedule entry point (validate, lock, start, status).
//! - [`lambda`]: the one module that knows `lambda_runtime` (settings, clients, errors).
//!
//! Invariants: no row data or credentials in logs or errors; nothing on the target changes
//! before every pre-flight check has passed; a part is loaded at most once per job.

pub mod api;
pub mod aws;
pub mod catalog;
pub mod compat;
pub mod conn;
pub mod copy_in;
pub mod copy_out;
pub mod error;
pub mod ident;
pub mod job;
pub mod jobs;
pub mod lambda;
pub mod ledger;
pub mod manifest;
pub mod plan;
pub mod progress;
pub mod scope;
pub mod secrets;
pub mod serverless;
pub mod size;
pub mod snapshot;
pub mod store;
pub mod verify;

pub use error::{Error, Result, Role};

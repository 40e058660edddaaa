//! dbsync core: byte-identical, chunked, streaming PostgreSQL-to-PostgreSQL data sync.
//!
//! Layers (each folder's `mod.rs` says what it owns; `docs/DESIGN.md` draws the picture).
//! Dependencies run one way, checked by a test (`tests/layers.rs`):
//!
//! ```text
//!   cloud ──► pipeline ──► plan ──► model
//!     │          │  └────► pg ────► model
//!     │          └───────► parts ─► model
//!     └──► everything            (all ──► error, aws)
//! ```
//!
//! - [`model`]: pure data (identifiers, scope, catalog types, chunks, parts, manifest).
//! - [`plan`]: pure decisions (FK order, chunking, compatibility, load waves).
//! - [`pg`]: the only place that writes SQL or calls tokio-postgres.
//! - [`parts`]: part stores (local, S3) and the gzip framing of parts.
//! - [`pipeline`]: sync, export, import and verify over one worker/wave/retry loop.
//! - [`cloud`]: secrets, Lambda glue, snapshot holder, job store, serverless steps, HTTP API.
//! - Base modules any layer may import: [`error`] (the one error type) and [`aws`] (the one
//!   AWS SDK configuration, shared by the S3 part store and the cloud layer).
//!
//! Invariants: no row data or credentials in logs or errors; nothing on the target changes
//! before every pre-flight check has passed; a part is loaded at most once per job.

pub mod aws;
pub mod cloud;
pub mod error;
pub mod model;
pub mod parts;
pub mod pg;
pub mod pipeline;
pub mod plan;

pub use error::{Error, Result, Role};

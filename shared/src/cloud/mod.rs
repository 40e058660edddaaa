//! Everything that runs in AWS or talks to it: credentials from Secrets Manager, the Lambda
//! glue, the snapshot holder, the job store (memory, DynamoDB), the serverless steps (one
//! file per step, with their event types) and the HTTP API. The top layer: may import every
//! other; nothing below imports it.

pub mod api;
pub mod holder;
pub mod jobstore;
pub mod lambda;
pub mod remote;
pub mod secrets;
pub mod steps;

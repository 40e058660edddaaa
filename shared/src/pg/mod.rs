//! The only layer that writes SQL or calls tokio-postgres: connections and TLS, snapshots,
//! catalog introspection and key sampling, the slice SQL of chunks, COPY out of the source and
//! into the target, the ledger, verification queries, target session set-up, and the named
//! SQLSTATEs errors are classified by. May import `model` and the base modules (`error`);
//! never `plan`, `parts`, `pipeline` or `cloud`.

pub mod catalog;
pub mod column_rules;
pub mod conn;
pub mod copy_in;
pub mod copy_out;
pub mod ddl;
pub mod finish;
pub mod handshake;
pub mod ledger;
pub mod ledger_owner;
pub mod pgfiles;
pub mod preflight;
pub mod probe;
pub mod refresh;
pub mod rules;
pub mod sample;
pub mod script;
pub mod shadow;
pub mod slice;
pub mod snapshot;
pub mod sqlstate;
pub mod start;
pub mod stats;
pub mod steps;
pub mod target;
pub mod tls;
pub mod truncate;
pub mod verify;

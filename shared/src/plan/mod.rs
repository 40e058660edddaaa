//! Pure decisions from catalog data: foreign-key order, chunking, the pre-flight
//! compatibility check, the COPY format of each table, and how a load runs (what it takes
//! away, its waves). No SQL, no I/O: everything here is tested without a database. May
//! import `model` and the base modules only.

pub mod chunks;
pub mod column_rules;
pub mod compat;
pub mod cost;
pub mod ddl;
pub mod format;
pub mod load;
pub mod narrow;
pub mod order;
pub mod refresh;
pub mod rules;
pub mod stats;

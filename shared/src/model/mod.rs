//! Pure data, shared by every layer: identifiers, scope, catalog types, chunks and plans,
//! parts and their hashing, the manifest (with its consistency), what a load takes away,
//! verification results, byte sizes. No SQL, no I/O; imports only the base modules.

pub mod catalog;
pub mod chunk;
pub mod ddl;
pub mod ident;
pub mod manifest;
pub mod options;
pub mod part;
pub mod restore;
pub mod rules;
pub mod scope;
pub mod settings;
pub mod size;
pub mod verify;

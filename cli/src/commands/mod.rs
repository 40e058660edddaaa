//! One file per command, as cargo lays its own out: the command's flags (`Args`) and one
//! `exec` that turns them into the core's options, calls one pipeline and prints the result.

pub mod check;
pub mod console;
pub mod dump;
pub mod export;
pub mod import;
pub mod plan;
pub mod sync;
pub mod verify;

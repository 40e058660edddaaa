//! How results reach the user: stdout for results (a closed pipe ends the run quietly),
//! JSON with --json, English counts.

use anyhow::Context;

/// `println!` for results on stdout, ending the process quietly (exit 0) when stdout is a
/// pipe its reader closed (`dbsync plan | head`) instead of panicking on the broken pipe.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` likewise.
macro_rules! say_raw {
    ($($arg:tt)*) => {
        $crate::output::write_out(format_args!($($arg)*))
    };
}

/// Writes to stdout; a reader that went away ends the run quietly, any other error is
/// reported on stderr.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("dbsync: error: writing the result to stdout: {e}");
    }
}

pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    say!(
        "{}",
        serde_json::to_string_pretty(v).context("serialising the result")?
    );
    Ok(())
}

/// How results are shown.
#[derive(Clone, Copy)]
pub struct Output {
    /// JSON on stdout (`--json`).
    pub json: bool,
    /// No progress and no per-table summary (`--quiet`).
    pub quiet: bool,
}

/// `n` things, in English: "1 table", "2 tables".
pub fn count(n: usize, thing: &str) -> String {
    crate::progress::count(n as u64, thing)
}

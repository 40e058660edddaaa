//! The `dbsync` command line: the whole pipeline on one machine, parts on local disk. Each
//! command is a file of `commands/` with its flags and one `exec` that calls the core; the
//! flag groups several share are in `args`. All logic lives in `dbsync-core`.

#[macro_use]
mod output;
mod args;
mod commands;
mod console;
mod live;
mod progress;
mod signals;

use clap::{Parser, Subcommand};
use output::Output;
use signals::{interrupt, signal_exit_code, watch_signals};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dbsync",
    version,
    about = "Byte-identical, chunked, streaming PostgreSQL-to-PostgreSQL sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log level (error, warn, info, debug); default info, warn with --quiet.
    #[arg(long, global = true, env = "DBSYNC_LOG")]
    log: Option<String>,
    /// Print the result as JSON on stdout.
    #[arg(long, global = true, env = "DBSYNC_JSON")]
    json: bool,
    /// No progress bar or progress lines, and only warnings and errors in the log.
    #[arg(long, short, global = true, env = "DBSYNC_QUIET")]
    quiet: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Copy the data of every table in scope from source to target (the main job).
    Sync(commands::sync::Args),
    /// Export the source into gzip parts and a manifest in a directory.
    Export(commands::export::Args),
    /// Import an export directory into the target (resumes after a failure).
    Import(commands::import::Args),
    /// Check an export alone: its manifest, and every part read whole against it (gzip,
    /// rows, sha256). Connects to no database.
    Check(commands::check::Args),
    /// Show tables, FK levels, the chunks a sync makes and sizes, changing nothing.
    Plan(commands::plan::Args),
    /// Compare row counts, content checksums and sequences of source and target.
    Verify(commands::verify::Args),
    /// Serve the web console on this machine: databases, new sync, jobs, live progress.
    Console(commands::console::Args),
    /// Write the data of the source (or of an export) as one SQL script that
    /// `psql -v ON_ERROR_STOP=1 -f` restores into a database with the schema.
    Dump(commands::dump::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // --quiet keeps the one-line result and errors, not the info log, unless asked for.
    let level = cli
        .log
        .clone()
        .unwrap_or_else(|| if cli.quiet { "warn" } else { "info" }.to_string());
    let filter =
        tracing_subscriber::EnvFilter::try_new(format!("dbsync={level},dbsync_core={level}"))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dbsync: error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.spawn(watch_signals(interrupt()));
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a person can act on; the stable name for scripts.
            match e.downcast_ref::<dbsync_core::Error>() {
                Some(core) => {
                    eprintln!("dbsync: error[{}]: {core}", core.name());
                    ExitCode::from(match core {
                        dbsync_core::Error::VerifyMismatch { .. } => 3,
                        dbsync_core::Error::Interrupted(by) => signal_exit_code(by),
                        _ => 1,
                    })
                }
                None => {
                    eprintln!("dbsync: error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Sync(a) => commands::sync::exec(a, out).await,
        Command::Export(a) => commands::export::exec(a, out).await,
        Command::Import(a) => commands::import::exec(a, out).await,
        Command::Check(a) => commands::check::exec(a, out).await,
        Command::Plan(a) => commands::plan::exec(a, out).await,
        Command::Verify(a) => commands::verify::exec(a, out).await,
        Command::Dump(a) => commands::dump::exec(a, out).await,
        Command::Console(a) => commands::console::exec(a, out).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use dbsync_core::model::settings::SYNC_SETTINGS;
    use std::collections::BTreeSet;

    #[test]
    fn the_sync_command_s_flags_are_the_settings_table_s_and_no_others() {
        let cli = Cli::command();
        let sync = cli.find_subcommand("sync").expect("sync");
        let flags: BTreeSet<String> = sync
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !["help", "log", "json", "quiet"].contains(l))
            .map(|l| l.replace('-', "_"))
            .collect();
        let listed: BTreeSet<String> = SYNC_SETTINGS
            .iter()
            .filter_map(|s| s.cli.map(String::from))
            .collect();
        assert_eq!(
            flags, listed,
            "dbsync sync against model::settings::SYNC_SETTINGS"
        );
    }
}

//! `dbsync verify`: row counts, checksums and sequences of source and target compared.

use crate::args::{scope, RulesArg, ScopeArgs, WorkersArg};
use crate::output::{count, print_json, Output};
use crate::signals::interrupt;
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::{self, VerifyOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Source URL.
    #[arg(long, env = "DBSYNC_SOURCE")]
    pub source: String,
    /// Target URL.
    #[arg(long, env = "DBSYNC_TARGET")]
    pub target: String,
    #[command(flatten)]
    pub rules: RulesArg,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub workers: WorkersArg,
}

pub async fn exec(a: Args, out: Output) -> anyhow::Result<()> {
    let (rules, source) = a.rules.load(ConnSpec::parse(&a.source, "--source")?)?;
    let target = ConnSpec::parse(&a.target, "--target")?;
    let opts = VerifyOptions {
        rules,
        scope: scope(&a.scope)?,
        workers: a.workers.count()?,
        interrupt: interrupt(),
    };
    let report = pipeline::verify(&source, &target, &opts).await?;
    if out.json {
        print_json(&report)?;
    }
    let n = report.tables.len();
    report.into_result()?;
    if !out.json {
        say!(
            "verified {} and their sequences: source and target are identical",
            count(n, "table")
        );
    }
    Ok(())
}

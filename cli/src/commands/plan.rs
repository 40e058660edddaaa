//! `dbsync plan`: tables, FK levels, chunks and sizes; the serverless price with --mode.

use crate::args::{options, RulesArg, ScopeArgs, WorkArgs};
use crate::output::{print_json, Output};
use crate::progress;
use anyhow::Context;
use dbsync_core::model::chunk::Plan;
use dbsync_core::model::options::Mode;
use dbsync_core::pg::conn::ConnSpec;
use dbsync_core::pipeline::{self, Options};
use dbsync_core::plan::cost;

#[derive(clap::Args)]
pub struct Args {
    /// Source URL.
    #[arg(long, env = "DBSYNC_SOURCE")]
    pub source: String,
    #[command(flatten)]
    pub rules: RulesArg,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub work: WorkArgs,
    /// With --mode: price a job that keeps the target's secondary indexes during the load.
    #[arg(long, env = "DBSYNC_KEEP_INDEXES")]
    pub keep_indexes: bool,
    /// Also price the plan as a serverless job of this kind: sync, export or dump (rates:
    /// DBSYNC_COST_*). Without it the plan is the command line's alone.
    #[arg(long, env = "DBSYNC_MODE", value_enum)]
    pub mode: Option<Mode>,
    /// Chunk exports and part loads at once in that job (the API's "concurrency").
    #[arg(long, env = "DBSYNC_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
}

pub async fn exec(a: Args, out: Output) -> anyhow::Result<()> {
    let (rules, source) = a.rules.load(ConnSpec::parse(&a.source, "--source")?)?;
    let opts = Options {
        rules,
        ..options(&a.scope, &a.work)?
    };
    let plan = pipeline::plan_only(
        &source,
        &opts.scope,
        opts.rules.as_ref(),
        opts.sync_sizing(),
    )
    .await?;
    let cost = match &a.mode {
        Some(mode) => Some(serverless_cost(&a, *mode, &plan)?),
        None => None,
    };
    if out.json {
        let mut v = serde_json::to_value(&plan).context("serialising the plan")?;
        if let Some(cost) = &cost {
            v["serverless"] = serde_json::to_value(cost).context("serialising the cost plan")?;
        }
        print_json(&v)
    } else {
        say_raw!(
            "{}",
            progress::render_plan(&plan, opts.chunk_bytes, opts.workers)
        );
        if let Some(cost) = &cost {
            say_raw!("{}", progress::render_cost(cost));
        }
        Ok(())
    }
}

/// What the plan would take and cost as a serverless job.
fn serverless_cost(a: &Args, mode: Mode, plan: &Plan) -> anyhow::Result<cost::CostPlan> {
    let kind = match mode {
        Mode::Export => cost::JobKind::Export,
        Mode::Dump => cost::JobKind::Dump,
        Mode::Sync | Mode::Refresh => cost::JobKind::Sync,
    };
    let rates = cost::Rates::from_lookup(&|k| std::env::var(k).ok())?;
    let work = cost::Workload {
        keep_indexes: a.keep_indexes,
        ..cost::Workload::from_plan(plan, kind, a.concurrency)
    };
    Ok(cost::estimate(&work, &rates))
}

//! Cost and time estimates of a request before it runs ([`crate::plan::cost`]): `POST
//! /syncs?dry_run=true` makes every check a start makes and answers the estimate, recording,
//! locking and starting nothing; a real start answers the same estimate beside its job id
//! when the source can be planned quickly (null otherwise: the job is not held up for it).

use super::launch::Checked;
use super::request::{chunk_bytes, Mode, SyncRequest};
use super::{Api, ApiResult};
use crate::cloud::jobstore::JobRecord;
use crate::error::{Error, Result};
use crate::pg::conn::ConnSpec;
use crate::pipeline::{self, ExportOptions};
use crate::plan::cost::{estimate, ChunkLoad, CostPlan, JobKind, Workload};
use serde_json::{json, Value};
use std::time::Duration;

/// The longest a dry run plans the source (API Gateway answers within 29 s).
const DRY_RUN_LIMIT: Duration = Duration::from_secs(20);
/// The longest a start waits for its estimate.
const START_LIMIT: Duration = Duration::from_secs(5);

/// An earlier export as the model sees it: its parts (the job record's counts), one wave.
fn workload_of_export(e: &JobRecord, kind: JobKind, fanout: u32) -> Workload {
    let parts = e.parts_total.max(1);
    let chunks = vec![
        ChunkLoad {
            bytes: e.counters.bytes / parts,
            level: 0,
        };
        parts as usize
    ];
    Workload {
        chunks,
        tables: e.tables_total as usize,
        kind,
        fanout,
        keep_indexes: false,
        budget_seconds: 840.0,
        window_seconds: 840.0,
    }
}

impl Api<'_> {
    /// The estimate of `req`: its source planned in at most `limit` (an earlier export's
    /// counts for a `"from"` load).
    async fn estimate(
        &self,
        req: &SyncRequest,
        source: &ConnSpec,
        export: Option<&JobRecord>,
        limit: Duration,
    ) -> Result<CostPlan> {
        let kind = match (req.mode, req.target_secret.is_some()) {
            (Mode::Dump, _) => JobKind::Dump,
            (_, true) => JobKind::Sync,
            _ => JobKind::Export,
        };
        let fanout = req.fanout(self.settings.max_concurrency);
        let mut work = match export {
            Some(e) => workload_of_export(e, kind, fanout),
            None => {
                let opts = ExportOptions {
                    scope: req.scope()?,
                    chunk_bytes: chunk_bytes(req)?,
                    ..ExportOptions::default()
                };
                let planned = pipeline::plan_only(source, &opts.scope, None, opts.sizing());
                let plan = tokio::time::timeout(limit, planned).await.map_err(|_| {
                    Error::config(
                        "dry_run",
                        format!("planning the source took more than {} s; `dbsync plan` from a machine that reaches it has no limit", limit.as_secs()),
                    )
                })??;
                Workload::from_plan(&plan, kind, fanout)
            }
        };
        work.keep_indexes = req.keep_indexes;
        if let Some(b) = req.export_budget_seconds {
            work.budget_seconds = b.max(1) as f64;
        }
        if let Some(w) = req.snapshot_window_seconds {
            work.window_seconds = w as f64;
        }
        Ok(estimate(&work, &self.settings.rates))
    }

    /// The estimate a start answers with, when it comes quickly; none otherwise.
    pub(super) async fn quick_estimate(
        &self,
        req: &SyncRequest,
        source: &ConnSpec,
        export: Option<&JobRecord>,
    ) -> Option<CostPlan> {
        match self.estimate(req, source, export, START_LIMIT).await {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "no estimate for the start's answer");
                None
            }
        }
    }

    /// `POST /syncs?dry_run=true`: the checks of a start, then the estimate.
    pub(super) async fn dry_run(&self, mut req: SyncRequest) -> ApiResult<Value> {
        let Checked { export, source, .. } = self.check_start(&mut req).await?;
        let plan = self
            .estimate(&req, &source, export.as_ref(), DRY_RUN_LIMIT)
            .await?;
        Ok(json!({ "dry_run": true, "estimate": plan }))
    }
}

//! Jobs as the API shows them: status, phase, progress with an estimate of the time left,
//! error, and links to the execution in the console. No secrets (the record never holds any).

use crate::cloud::jobstore::{JobRecord, JobStatus};
use serde_json::{json, Value};

/// The id of the job that backs up the target of `job_id` (`"backup": true`).
pub fn backup_job_id(job_id: &str) -> String {
    format!("{job_id}-backup")
}

/// Links of a job: itself, its execution, the console's view of the execution.
pub fn links(job_id: &str, execution_arn: &str) -> Value {
    let region = execution_arn.split(':').nth(3).unwrap_or("us-east-1");
    json!({
        "self": format!("/syncs/{job_id}"),
        "execution": execution_arn,
        "console": format!(
            "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
        ),
    })
}

/// Seconds from `created_at` to `until` (RFC 3339), or to now.
fn seconds_between(created_at: &str, until: Option<&str>) -> Option<f64> {
    let start = humantime::parse_rfc3339(created_at).ok()?;
    let end = match until {
        Some(u) => humantime::parse_rfc3339(u).ok()?,
        None => std::time::SystemTime::now(),
    };
    end.duration_since(start).ok().map(|d| d.as_secs_f64())
}

/// Seconds left and the whole job's estimated duration of a job created at `created_at`
/// (RFC 3339) and `pct` done: extrapolated from the progress so far while it runs (none
/// before 0.5 % is done), the duration it took (to `updated_at`) once it ended. The local
/// console's jobs are estimated the same way.
pub fn estimates(
    created_at: &str,
    updated_at: &str,
    running: bool,
    pct: f64,
) -> (Option<u64>, Option<u64>) {
    if !running {
        let took = seconds_between(created_at, Some(updated_at)).map(|s| s.round() as u64);
        return (None, took);
    }
    match seconds_between(created_at, None) {
        Some(e) if pct > 0.5 => {
            let total = e * 100.0 / pct;
            (
                Some((total - e).max(0.0).round() as u64),
                Some(total.round() as u64),
            )
        }
        _ => (None, None),
    }
}

/// A job as the API shows it: no secrets (the record never holds any).
pub fn job_view(j: &JobRecord, execution_arn: &str) -> Value {
    let pct = j.progress_pct();
    let running = matches!(j.status, JobStatus::Queued | JobStatus::Running);
    let (eta, duration) = estimates(&j.created_at, &j.updated_at, running, pct);
    json!({
        "job_id": j.job_id,
        "kind": j.kind,
        "status": j.status.as_str(),
        "phase": j.phase.as_str(),
        "request": j.request,
        "target": j.target,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
        "current_table": j.current_table,
        "tables_done": j.tables_done,
        "tables_total": j.tables_total,
        "estimated_duration_seconds": duration,
        "retries": j.retries,
        // `"from"` this job id restores the target as it was before the load.
        "backup_job_id": (j.request["backup"] == json!(true))
            .then(|| backup_job_id(&j.job_id)),
        "progress": {
            "chunks_done": j.counters.chunks_done,
            "chunks_total": j.chunks_total,
            "parts_done": j.counters.parts_done,
            "parts_total": j.parts_total,
            "rows": j.counters.rows,
            "bytes": j.counters.bytes,
            "percent": (pct * 10.0).round() / 10.0,
            "eta_seconds": eta,
        },
        "error": j.error,
        "links": links(&j.job_id, execution_arn),
    })
}

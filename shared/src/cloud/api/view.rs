//! Jobs as the API shows them: status, phase, progress with an estimate of the time left,
//! error, and links to the execution in the console. No secrets (the record never holds any).

use crate::cloud::jobstore::{JobRecord, JobStatus};
use serde_json::{json, Value};

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

/// A job as the API shows it: no secrets (the record never holds any).
pub fn job_view(j: &JobRecord, execution_arn: &str) -> Value {
    let pct = j.progress_pct();
    let elapsed = humantime::parse_rfc3339(&j.created_at)
        .ok()
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs_f64());
    let running = matches!(j.status, JobStatus::Queued | JobStatus::Running);
    let eta = match (running, elapsed) {
        (true, Some(e)) if pct > 0.5 => Some(((e * (100.0 - pct)) / pct).round() as u64),
        _ => None,
    };
    json!({
        "job_id": j.job_id,
        "kind": j.kind,
        "status": j.status.as_str(),
        "phase": j.phase.as_str(),
        "request": j.request,
        "target": j.target,
        "created_at": j.created_at,
        "updated_at": j.updated_at,
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

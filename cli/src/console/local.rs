//! The local backend's answers to the API's routes (docs/openapi.yaml), so the page speaks
//! one JSON to both backends: `GET|POST /syncs` (a dry run checks the target and answers its
//! findings), `GET|DELETE /syncs/{id}`, `POST /syncs/{id}/retry`, `GET /databases`,
//! `POST /connections/test`. Refusals are the API's own ([`ApiError`]: status, name, field).

use super::jobs::{Jobs, SyncAsk};
use dbsync_core::cloud::api::body::read_json;
use dbsync_core::cloud::api::connections::test_connection;
use dbsync_core::cloud::api::request::read_request;
use dbsync_core::cloud::api::{ApiError, Reply};
use dbsync_core::Error;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Answers `method path` as the API would.
pub async fn call(
    jobs: &Arc<Jobs>,
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Reply {
    match route(jobs, method, path, query, body).await {
        Ok(r) => r,
        Err(e) => e.into_reply(),
    }
}

fn links(id: &str) -> Value {
    json!({ "self": format!("/syncs/{id}"), "execution": null, "console": null })
}

/// A request body read as the API reads it: a mistake names its field.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    Ok(read_json(body, "request body", "is not a valid request")?)
}

async fn route(
    jobs: &Arc<Jobs>,
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Reply, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let no_such = |id: &str| ApiError::from(Error::NoSuchJob(id.to_string()));
    match (method, segments.as_slice()) {
        ("GET", ["syncs"]) => {
            let limit = query
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(20usize)
                .clamp(1, 100);
            Ok(Reply::ok(200, json!({ "jobs": jobs.list(limit) })))
        }
        ("POST", ["syncs"]) => {
            let ask: SyncAsk = read_request(body)?;
            if query.get("dry_run").is_some_and(|v| v == "true") {
                let findings = jobs.dry_run(&ask).await?;
                return Ok(Reply::ok(
                    200,
                    json!({ "dry_run": true, "estimate": null, "findings": findings }),
                ));
            }
            let id = jobs.start(ask)?;
            Ok(Reply::ok(
                202,
                json!({ "job_id": id, "status": "running", "links": links(&id), "estimate": null }),
            ))
        }
        ("GET", ["syncs", id]) => jobs
            .get(id)
            .map(|j| Reply::ok(200, j))
            .ok_or_else(|| no_such(id)),
        ("DELETE", ["syncs", id]) => {
            jobs.cancel(id)?;
            Ok(Reply::ok(
                202,
                json!({ "job_id": id, "status": "cancelled", "links": links(id) }),
            ))
        }
        ("POST", ["syncs", id, "retry"]) => {
            let retries = jobs.retry(id)?;
            Ok(Reply::ok(
                202,
                json!({ "job_id": id, "status": "running", "retries": retries, "links": links(id) }),
            ))
        }
        ("GET", ["syncs", id, "download"]) => Err(ApiError::new(
            409,
            Error::config(
                "job",
                format!("job {id} is a sync: the local console makes no dumps (dbsync dump does)"),
            ),
        )),
        ("GET", ["databases"]) => Ok(Reply::ok(200, jobs.databases())),
        ("POST", ["connections", "test"]) => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Ask {
                secret: String,
            }
            let ask: Ask = parse(body)?;
            let (spec, uses) = jobs.database(&ask.secret)?;
            Ok(Reply::ok(
                200,
                test_connection(&ask.secret, &spec, uses).await,
            ))
        }
        _ => Err(ApiError::no_route(
            404,
            format!("no route {method} {path} in the console's API"),
        )),
    }
}

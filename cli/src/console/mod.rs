//! `dbsync console`: a web page to drive dbsync (databases, a new-sync form with its dry run,
//! the job list, a job's live progress with cancel and retry), served on loopback only. Every
//! request carries the random token the console printed (header `x-dbsync-token`, or
//! `?token=` for the page and its event stream), and a request from another site's page (an
//! `Origin` that is not the console's) is refused, so other local users and web pages cannot
//! drive it. Jobs run in this process ([`jobs`]); the page is embedded in the binary.

pub mod jobs;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jobs::{Jobs, Status, SyncAsk};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const PAGE: &str = include_str!("page.html");

/// What every handler shares.
#[derive(Clone)]
pub struct Console {
    jobs: Arc<Jobs>,
    token: Arc<String>,
    /// `http://127.0.0.1:PORT`: the only Origin a browser may send.
    origin: Arc<String>,
}

impl Console {
    pub fn new(jobs: Jobs, token: String, origin: String) -> Self {
        Console {
            jobs: Arc::new(jobs),
            token: Arc::new(token),
            origin: Arc::new(origin),
        }
    }

    /// The routes, behind the token and origin check.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(page))
            .route("/api/databases", get(databases))
            .route("/api/syncs", get(list).post(start))
            .route("/api/syncs/{id}", get(one).delete(cancel))
            .route("/api/syncs/{id}/retry", post(retry))
            .route("/api/syncs/{id}/events", get(events))
            .layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self)
    }
}

fn refuse(status: StatusCode, name: &str, field: Option<&str>, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "name": name, "field": field, "message": message } })),
    )
        .into_response()
}

/// The token, and a browser's Origin, checked before anything else.
async fn guard(State(c): State<Console>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if let Some(origin) = headers.get("origin").and_then(|o| o.to_str().ok()) {
        let localhost = c.origin.replace("127.0.0.1", "localhost");
        if origin != c.origin.as_str() && origin != localhost {
            return refuse(
                StatusCode::FORBIDDEN,
                "DbsyncForbidden",
                None,
                "requests from another site's page are refused",
            );
        }
    }
    let from_header = headers
        .get("x-dbsync-token")
        .and_then(|t| t.to_str().ok())
        .map(str::to_string);
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    match from_header.or(from_query) {
        Some(t) if t == *c.token => next.run(req).await,
        _ => refuse(
            StatusCode::UNAUTHORIZED,
            "DbsyncUnauthorized",
            None,
            "open the address dbsync console printed: it holds the token",
        ),
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn databases(State(c): State<Console>) -> Json<Value> {
    Json(c.jobs.databases())
}

async fn list(State(c): State<Console>) -> Json<Value> {
    Json(json!(c.jobs.list()))
}

async fn one(State(c): State<Console>, Path(id): Path<String>) -> Response {
    match c.jobs.get(&id) {
        Some(j) => Json(j).into_response(),
        None => refuse(
            StatusCode::NOT_FOUND,
            "DbsyncNoSuchJob",
            None,
            &format!("no job {id}"),
        ),
    }
}

async fn start(
    State(c): State<Console>,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let ask: SyncAsk = match serde_json::from_slice(&body) {
        Ok(a) => a,
        Err(e) => {
            let message = e.to_string();
            // serde names an unknown or mistyped field in its message.
            let field = message
                .split('`')
                .nth(1)
                .map(str::to_string)
                .unwrap_or_else(|| "request".into());
            return refuse(
                StatusCode::BAD_REQUEST,
                "DbsyncConfig",
                Some(&field),
                &message,
            );
        }
    };
    let dry_run = q.get("dry_run").is_some_and(|v| v == "true");
    match c.jobs.start(ask, dry_run) {
        Ok(j) => (StatusCode::ACCEPTED, Json(j)).into_response(),
        Err((field, message)) => refuse(
            StatusCode::BAD_REQUEST,
            "DbsyncConfig",
            Some(&field),
            &message,
        ),
    }
}

async fn retry(State(c): State<Console>, Path(id): Path<String>) -> Response {
    match c.jobs.retry(&id) {
        Ok(j) => (StatusCode::ACCEPTED, Json(j)).into_response(),
        Err((_, message)) => refuse(StatusCode::CONFLICT, "DbsyncConflict", None, &message),
    }
}

async fn cancel(State(c): State<Console>, Path(id): Path<String>) -> Response {
    if c.jobs.cancel(&id) {
        (
            StatusCode::ACCEPTED,
            Json(json!({ "job_id": id, "cancelling": true })),
        )
            .into_response()
    } else {
        refuse(
            StatusCode::CONFLICT,
            "DbsyncConflict",
            None,
            &format!("job {id} is not running"),
        )
    }
}

/// The job, pushed every second until it ends (server-sent events), so the page never reloads.
async fn events(
    State(c): State<Console>,
    Path(id): Path<String>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let stream =
        futures_util::stream::unfold((c, id, 0u64, false), |(c, id, n, ended)| async move {
            if ended {
                return None;
            }
            if n > 0 {
                tokio::time::sleep(Duration::from_millis(1000)).await;
            }
            let job = c.jobs.get(&id);
            let done = job.as_ref().is_none_or(|j| j.status != Status::Running);
            let data = serde_json::to_string(&job).unwrap_or_else(|_| "null".into());
            Some((
                Ok(Event::default().event("job").data(data)),
                (c, id, n + 1, done),
            ))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

//! `dbsync console`: a web page to drive dbsync (databases with a connection test, a new-sync
//! form with its dry run, the job list, a job's live progress with cancel and retry), served
//! on loopback only. Every request carries the random token the console printed (header
//! `x-dbsync-token`, or `?token=` for the page and its event stream), and a request from
//! another site's page (an `Origin` that is not the console's) is refused, so other local
//! users and web pages cannot drive it.
//!
//! The page speaks the API's JSON (docs/openapi.yaml) under `/api`, to one of two backends:
//! local ([`jobs`], jobs run in this process) or cloud (the deployed API, each call signed
//! with the user's AWS credentials by [`RemoteApi`]). The page is embedded in the binary.

pub mod jobs;
mod local;

use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use dbsync_core::cloud::api::Reply;
use dbsync_core::cloud::remote::RemoteApi;
use jobs::Jobs;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

const PAGE: &str = include_str!("page.html");

/// How often a job's page is sent its job while it runs.
const PUSH_EVERY: Duration = Duration::from_millis(1000);

/// Where the page's API calls go.
pub enum Backend {
    /// Jobs run in this process.
    Local(Arc<Jobs>),
    /// The deployed API, signed with the user's credentials.
    Cloud(Box<RemoteApi>),
}

impl Backend {
    /// Answers `method path` (an API route: `/syncs/ID`) as the API does.
    async fn call(
        &self,
        method: &str,
        path: &str,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Reply {
        match self {
            Backend::Local(jobs) => local::call(jobs, method, path, query, body).await,
            Backend::Cloud(api) => {
                let mut target = path.to_string();
                let q: Vec<String> = query
                    .iter()
                    .filter(|(k, _)| k.as_str() != "token")
                    .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                    .collect();
                if !q.is_empty() {
                    target = format!("{target}?{}", q.join("&"));
                }
                match api.call(method, &target, body).await {
                    Ok(a) => Reply::ok(a.status, api_body(a.status, &a.body)),
                    Err(e) => Reply::ok(
                        502,
                        json!({ "error": { "name": e.name(), "message": e.to_string() } }),
                    ),
                }
            }
        }
    }

    fn describe(&self) -> Value {
        match self {
            Backend::Local(_) => json!({ "backend": "local", "api": null }),
            Backend::Cloud(api) => json!({ "backend": "cloud", "api": api.base() }),
        }
    }
}

/// The deployed API's body; API Gateway's own refusals (`{"message": ...}` for a bad
/// signature or a missing permission) put in the API's error shape.
fn api_body(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(
        |_| json!({ "message": String::from_utf8_lossy(body).chars().take(500).collect::<String>() }),
    );
    if status >= 400 && v.get("error").is_none() {
        let name = if status == 403 {
            "DbsyncForbidden"
        } else {
            "DbsyncApi"
        };
        let message = v["message"].as_str().unwrap_or("the API refused the call");
        return json!({ "error": { "name": name, "message": format!("the API answered {status}: {message}") } });
    }
    v
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What every handler shares.
#[derive(Clone)]
pub struct Console {
    backend: Arc<Backend>,
    token: Arc<String>,
    /// `http://127.0.0.1:PORT`: the only Origin a browser may send.
    origin: Arc<String>,
}

impl Console {
    pub fn new(backend: Backend, token: String, origin: String) -> Self {
        Console {
            backend: Arc::new(backend),
            token: Arc::new(token),
            origin: Arc::new(origin),
        }
    }

    /// The routes, behind the token and origin check.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(page))
            .route("/api/console", get(describe))
            .route("/api/syncs/{id}/events", get(events))
            .route("/api/{*rest}", any(api))
            .layer(middleware::from_fn_with_state(self.clone(), guard))
            .with_state(self)
    }
}

fn refuse(status: StatusCode, name: &str, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "name": name, "message": message } })),
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
            "open the address dbsync console printed: it holds the token",
        ),
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn describe(State(c): State<Console>) -> Json<Value> {
    Json(c.backend.describe())
}

fn answer(r: Reply) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, Json(r.body)).into_response()
}

/// Every API route, answered by the backend.
async fn api(
    State(c): State<Console>,
    method: Method,
    Path(rest): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/{rest}");
    answer(c.backend.call(method.as_str(), &path, &query, &body).await)
}

/// The job, pushed every second until it ends (server-sent events), so the page never
/// reloads; in cloud mode each push is one `GET /syncs/{id}` of the API.
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
                tokio::time::sleep(PUSH_EVERY).await;
            }
            let r = c
                .backend
                .call("GET", &format!("/syncs/{id}"), &HashMap::new(), &[])
                .await;
            let running = matches!(r.body["status"].as_str(), Some("running" | "queued"));
            // An unanswered poll (the API unreachable for a moment) is sent too; the page says
            // so and the stream goes on.
            let done = r.status == 404 || (r.status == 200 && !running);
            let name = if r.status == 200 { "job" } else { "trouble" };
            let data = r.body.to_string();
            Some((
                Ok(Event::default().event(name).data(data)),
                (c, id, n + 1, done),
            ))
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

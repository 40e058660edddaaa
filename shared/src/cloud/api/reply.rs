//! What an API call answers when it refuses or fails: [`ApiError`], the core error it stands
//! for with the HTTP status that says whose fault it is. Handlers return it as a value; only
//! [`Reply`] at the HTTP edge turns it into a status and a JSON body, and the schedule path
//! takes the core error out of it unchanged.

use crate::error::Error;
use aws_lambda_events::apigw::ApiGatewayProxyResponse;
use aws_lambda_events::encodings::Body;
use serde_json::{json, Value};

/// A refused or failed API call.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// What went wrong: its stable name and message reach the caller.
    pub failure: Failure,
}

/// What an API call failed on: the core's error, or what only HTTP has (a route or method
/// the API does not have), which stays out of the core.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The core refused or failed.
    #[error(transparent)]
    Core(#[from] Error),
    /// No such route, or a method the route does not take (404, 405).
    #[error("{0}")]
    NoRoute(String),
}

impl Failure {
    /// The stable name the caller sees.
    pub fn name(&self) -> &'static str {
        match self {
            Failure::Core(e) => e.name(),
            Failure::NoRoute(_) => "DbsyncNoRoute",
        }
    }
}

impl ApiError {
    /// A refusal with an explicit status (403 for the deployment's rules, 404, 405, 409).
    pub fn new(status: u16, error: Error) -> Self {
        ApiError {
            status,
            failure: Failure::Core(error),
        }
    }

    /// A route or method the API does not have.
    pub fn no_route(status: u16, message: String) -> Self {
        ApiError {
            status,
            failure: Failure::NoRoute(message),
        }
    }

    /// The core's error behind it, for callers that are not HTTP (the schedule).
    pub fn into_core(self) -> Error {
        match self.failure {
            Failure::Core(e) => e,
            Failure::NoRoute(m) => Error::Internal(format!("no route: {m}")),
        }
    }

    /// The answer at the HTTP edge.
    pub fn into_reply(self) -> Reply {
        let mut error = json!({ "name": self.failure.name(), "message": self.failure.to_string() });
        // The request field a refusal concerns, for a form to show the message beside it.
        if let Failure::Core(Error::Config { setting, .. }) = &self.failure {
            error["field"] = json!(setting);
        }
        Reply {
            status: self.status,
            body: json!({ "error": error }),
        }
    }
}

/// A core error with the status its kind implies: the caller's mistake (400), a busy target
/// (409), a passing failure (503) or ours (500).
impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::Config { .. } | Error::SameDatabase(_) | Error::EmptyScope(_) => 400,
            Error::Protected(_) => 403,
            Error::NoSuchJob(_) => 404,
            Error::TargetLocked(_) | Error::JobEnded { .. } => 409,
            e if e.is_retryable() => 503,
            _ => 500,
        };
        ApiError::new(status, error)
    }
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

impl Reply {
    /// A successful answer.
    pub fn ok(status: u16, body: Value) -> Self {
        Reply { status, body }
    }

    /// As an API Gateway proxy response.
    pub fn into_response(self) -> ApiGatewayProxyResponse {
        let mut headers = aws_lambda_events::http::HeaderMap::new();
        headers.insert(
            "content-type",
            aws_lambda_events::http::HeaderValue::from_static("application/json"),
        );
        let mut r = ApiGatewayProxyResponse::default();
        r.status_code = i64::from(self.status);
        r.headers = headers;
        r.body = Some(Body::Text(self.body.to_string()));
        r
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        e.into_reply()
    }
}

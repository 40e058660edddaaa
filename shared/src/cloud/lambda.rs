//! The one module that knows `lambda_runtime`: settings from the environment (parsed once per
//! cold start; a missing one fails the start with its own name), AWS clients built once, the
//! invocation's deadline, JSON logs, and errors turned into `Diagnostic`s whose `error_type` is
//! the core's stable error name - what the state machine's Retry and Catch match on.

use crate::aws::AwsSettings;
use crate::cloud::jobstore::DynamoJobStore;
use crate::error::Error;
use crate::parts::S3Store;
use std::time::{Duration, Instant};

/// The longest a Lambda invocation may hold work (a snapshot, an export page loop): the
/// 15-minute limit less a minute of margin.
pub const MAX_SNAPSHOT_WINDOW_SECONDS: u64 = 840;

/// Settings every function reads from its environment.
#[derive(Debug, Clone)]
pub struct FunctionEnv {
    /// `DBSYNC_BUCKET`: the bucket holding job data (`jobs/<job id>/...`).
    pub bucket: String,
    /// `DBSYNC_JOB_TABLE`: the DynamoDB job table.
    pub job_table: String,
    /// `DBSYNC_TIME_MARGIN_SECONDS` (default 60): stop starting work this long before the
    /// invocation's deadline.
    pub margin: Duration,
    /// `DBSYNC_COMPRESS_LEVEL` (default 1): gzip level of parts.
    pub compress_level: u32,
    /// `DBSYNC_JOB_RETENTION_DAYS` (default 30): TTL of job records.
    pub retention_days: u64,
    /// `DBSYNC_LOCAL_TIMEOUT_SECONDS` (unset in AWS): each invocation's time limit, in place of
    /// the runtime's deadline - for local runtimes (`cargo lambda watch`) whose reported
    /// deadline is not the function's timeout.
    pub local_timeout: Option<Duration>,
    /// `DBSYNC_SOURCE_CONNECTIONS` (unset or 0: the source's `max_connections` less a reserve):
    /// chunk exports a source database takes at once, all jobs together.
    pub source_connections: Option<u32>,
}

impl FunctionEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads settings through `env` (tests pass a map).
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let required = |k: &str| {
            env(k)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::config(k, "is not set"))
        };
        let number = |k: &str, default: u64| Ok::<_, Error>(env_number(env, k)?.unwrap_or(default));
        Ok(FunctionEnv {
            bucket: required("DBSYNC_BUCKET")?,
            job_table: required("DBSYNC_JOB_TABLE")?,
            margin: Duration::from_secs(number("DBSYNC_TIME_MARGIN_SECONDS", 60)?),
            compress_level: number("DBSYNC_COMPRESS_LEVEL", 1)?.min(9) as u32,
            retention_days: number("DBSYNC_JOB_RETENTION_DAYS", 30)?,
            local_timeout: env_number(env, "DBSYNC_LOCAL_TIMEOUT_SECONDS")?
                .map(Duration::from_secs),
            source_connections: env_number(env, "DBSYNC_SOURCE_CONNECTIONS")?
                .filter(|n| *n > 0)
                .map(|n| n.min(u64::from(u32::MAX)) as u32),
        })
    }
}

/// A whole-number setting: `None` when unset, an error naming it when it is not a number.
pub(crate) fn env_number(
    env: &dyn Fn(&str) -> Option<String>,
    k: &str,
) -> Result<Option<u64>, Error> {
    env(k)
        .map(|v| {
            v.parse()
                .map_err(|_| Error::config(k, format!("{v:?} is not a whole number")))
        })
        .transpose()
}

/// What a function builds once per cold start and borrows in every invocation.
#[derive(Clone, Debug)]
pub struct Clients {
    /// Settings.
    pub env: FunctionEnv,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Step Functions.
    pub sfn: aws_sdk_sfn::Client,
}

impl Clients {
    /// Builds every client from one SDK configuration.
    pub async fn new(env: FunctionEnv, aws: &AwsSettings) -> Self {
        let sdk = crate::aws::sdk_config(aws).await;
        Clients {
            s3: crate::parts::s3::client_from(&sdk, aws),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
            sfn: aws_sdk_sfn::Client::new(&sdk),
            env,
        }
    }

    /// The job's folder in the bucket.
    pub fn store_for(&self, job_id: &str) -> Result<S3Store, Error> {
        S3Store::with_client(
            self.s3.clone(),
            &format!("s3://{}/jobs/{job_id}", self.env.bucket),
            8 * 1024 * 1024,
        )
    }

    /// The job table.
    pub fn jobs(&self) -> DynamoJobStore {
        DynamoJobStore::new(
            self.dynamodb.clone(),
            &self.env.job_table,
            self.env.retention_days,
        )
    }
}

/// When to stop starting new work: the invocation's deadline (milliseconds since the epoch,
/// from the Lambda context) less `margin`; never in the past, so one page always runs.
pub fn deadline(context_deadline_ms: u64, margin: Duration) -> Instant {
    let left = Duration::from_millis(context_deadline_ms.saturating_sub(now_ms()));
    Instant::now() + left.saturating_sub(margin)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A function's error: the core error, reported to Lambda under its stable name.
#[derive(Debug)]
pub struct FunctionError(pub Error);

impl From<Error> for FunctionError {
    fn from(e: Error) -> Self {
        FunctionError(e)
    }
}

impl From<FunctionError> for lambda_runtime::Diagnostic {
    fn from(e: FunctionError) -> Self {
        tracing::error!(error_type = e.0.name(), error = %e.0, "invocation failed");
        lambda_runtime::Diagnostic {
            error_type: e.0.name().into(),
            error_message: e.0.to_string(),
        }
    }
}

/// Runs a function: JSON logs, settings and clients built once for the cold start, then each
/// invocation's payload handed to `handler` with the clients and its deadline.
pub async fn serve<E, O, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: serde::de::DeserializeOwned + Send + 'static,
    O: serde::Serialize + Send + 'static,
    F: Fn(std::sync::Arc<Clients>, E, Instant) -> Fut,
    Fut: std::future::Future<Output = Result<O, FunctionError>> + Send,
{
    init_logging();
    let env = FunctionEnv::from_env()?;
    let clients = std::sync::Arc::new(Clients::new(env, &AwsSettings::default()).await);
    lambda_runtime::run(lambda_runtime::service_fn(
        |ev: lambda_runtime::LambdaEvent<E>| {
            let context_deadline = match clients.env.local_timeout {
                Some(t) => now_ms() + t.as_millis() as u64,
                None => ev.context.deadline,
            };
            let deadline = deadline(context_deadline, clients.env.margin);
            tracing::debug!(
                remaining_ms = deadline
                    .saturating_duration_since(Instant::now())
                    .as_millis() as u64,
                "invocation"
            );
            handler(clients.clone(), ev.payload, deadline)
        },
    ))
    .await
}

/// JSON log lines (one object per event) to stdout, which Lambda ships to CloudWatch.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_setting_fails_the_cold_start_with_its_name() {
        let e = FunctionEnv::from_lookup(&|k| (k == "DBSYNC_BUCKET").then(|| "b".to_string()))
            .expect_err("missing");
        assert_eq!(e.to_string(), "setting DBSYNC_JOB_TABLE: is not set");
        let e = FunctionEnv::from_lookup(&|k| match k {
            "DBSYNC_TIME_MARGIN_SECONDS" => Some("soon".into()),
            _ => Some("x".into()),
        })
        .expect_err("bad number");
        assert!(e.to_string().contains("DBSYNC_TIME_MARGIN_SECONDS"));
    }

    #[test]
    fn errors_reach_lambda_under_their_stable_names() {
        let d: lambda_runtime::Diagnostic = FunctionError(Error::TargetLocked("db".into())).into();
        assert_eq!(d.error_type, "DbsyncTargetLocked");
        assert!(d.error_message.contains("another dbsync job"));
    }

    #[test]
    fn the_deadline_keeps_the_margin_and_is_never_in_the_past() {
        let now_ms = now_ms();
        let d = deadline(now_ms + 900_000, Duration::from_secs(60));
        let left = d.saturating_duration_since(Instant::now());
        assert!(
            left > Duration::from_secs(830) && left <= Duration::from_secs(840),
            "{left:?}"
        );
        assert!(
            deadline(now_ms.saturating_sub(5_000), Duration::from_secs(60))
                <= Instant::now() + Duration::from_millis(5)
        );
    }
}

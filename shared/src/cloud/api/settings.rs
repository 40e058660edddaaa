//! The deployment's rules for API requests, read once per cold start from the environment.

use crate::cloud::lambda::env_number;
use crate::error::{Error, Result};

/// The deployment's rules for requests.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `DBSYNC_STATE_MACHINE_ARN`: the state machine executions start on.
    pub state_machine_arn: String,
    /// `DBSYNC_ALLOWED_TARGETS`: comma-separated secret-id patterns a job may load; empty:
    /// any secret the function can read.
    pub allowed_targets: Vec<String>,
    /// `DBSYNC_PROTECTED_TARGETS`: comma-separated patterns, matched against the target's
    /// secret id and its `host:port/db`, that no job may load (production).
    pub protected_targets: Vec<String>,
    /// `DBSYNC_MAX_CONCURRENCY` (default 16): the cap on a request's concurrency, per database.
    pub max_concurrency: u32,
    /// `DBSYNC_LOCK_TTL_SECONDS` (default 43,200): how long a target lock lasts if a job
    /// never releases it.
    pub lock_ttl_secs: u64,
    /// `DBSYNC_DOWNLOAD_EXPIRY_SECONDS` (default 900, at most 43,200): how long a dump's
    /// download link works.
    pub download_expiry_secs: u64,
    /// `DBSYNC_SECRETS_PREFIX` (default `dbsync/`): the secrets `GET /databases` lists (the
    /// functions may read no others).
    pub secrets_prefix: String,
    /// The cost model's rates (`DBSYNC_COST_*`), for estimates.
    pub rates: crate::plan::cost::Rates,
}

impl ApiSettings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Reads settings through `env`.
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let list = |k: &str| -> Vec<String> {
            env(k)
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let number = |k: &str, default: u64| Ok::<_, Error>(env_number(env, k)?.unwrap_or(default));
        Ok(ApiSettings {
            state_machine_arn: env("DBSYNC_STATE_MACHINE_ARN")
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Error::config("DBSYNC_STATE_MACHINE_ARN", "is not set"))?,
            allowed_targets: list("DBSYNC_ALLOWED_TARGETS"),
            protected_targets: list("DBSYNC_PROTECTED_TARGETS"),
            max_concurrency: number("DBSYNC_MAX_CONCURRENCY", 16)?.clamp(1, 1000) as u32,
            lock_ttl_secs: number("DBSYNC_LOCK_TTL_SECONDS", 43_200)?,
            download_expiry_secs: match number("DBSYNC_DOWNLOAD_EXPIRY_SECONDS", 900)? {
                s @ 1..=43_200 => s,
                s => {
                    return Err(Error::config(
                        "DBSYNC_DOWNLOAD_EXPIRY_SECONDS",
                        format!("{s} is out of range: 1 to 43200 seconds"),
                    ))
                }
            },
            secrets_prefix: env("DBSYNC_SECRETS_PREFIX")
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "dbsync/".to_string()),
            rates: crate::plan::cost::Rates::from_lookup(env)?,
        })
    }

    /// The ARN of the execution of job `job_id`.
    pub fn execution_arn(&self, job_id: &str) -> String {
        format!(
            "{}:{job_id}",
            self.state_machine_arn
                .replacen(":stateMachine:", ":execution:", 1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_execution_arn_follows_from_the_state_machine_and_the_job_id() {
        let s = ApiSettings::from_lookup(&|k| {
            (k == "DBSYNC_STATE_MACHINE_ARN")
                .then(|| "arn:aws:states:eu-west-1:123456789012:stateMachine:dbsync".to_string())
        })
        .expect("settings");
        assert_eq!(
            s.execution_arn("j1"),
            "arn:aws:states:eu-west-1:123456789012:execution:dbsync:j1"
        );
    }
}

//! The services an API call reaches through small traits: Step Functions executions,
//! Secrets Manager credentials and the dumps' download links in S3 (tests may record or use
//! a map instead).

use crate::cloud::secrets;
use crate::error::Result;
use crate::pg::conn::ConnSpec;
use async_trait::async_trait;

/// Starting and stopping executions (Step Functions; tests may record instead).
#[async_trait]
pub trait Executions: Send + Sync {
    /// Starts an execution named `name` with `input`; returns its ARN.
    async fn start(&self, name: &str, input: &str) -> Result<String>;
    /// Stops an execution.
    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<()>;
}

/// Executions of one Step Functions state machine.
pub struct StepFunctions {
    client: aws_sdk_sfn::Client,
    state_machine_arn: String,
}

impl StepFunctions {
    /// Executions of `state_machine_arn`.
    pub fn new(client: aws_sdk_sfn::Client, state_machine_arn: &str) -> Self {
        StepFunctions {
            client,
            state_machine_arn: state_machine_arn.to_string(),
        }
    }
}

#[async_trait]
impl Executions for StepFunctions {
    async fn start(&self, name: &str, input: &str) -> Result<String> {
        let out = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
            .map_err(|e| {
                crate::aws::sdk_error(&self.state_machine_arn, "starting an execution", e)
            })?;
        Ok(out.execution_arn().to_string())
    }

    async fn stop(&self, execution_arn: &str, cause: &str) -> Result<()> {
        self.client
            .stop_execution()
            .execution_arn(execution_arn)
            .error("DbsyncCancelled")
            .cause(cause)
            .send()
            .await
            .map_err(|e| crate::aws::sdk_error(execution_arn, "stopping the execution", e))?;
        Ok(())
    }
}

/// Resolves secret ids to connection specs (Secrets Manager; tests may use a map).
#[async_trait]
pub trait Credentials: Send + Sync {
    /// The connection a secret describes; an error naming the secret when it cannot be read.
    async fn resolve(&self, secret_id: &str) -> Result<ConnSpec>;
    /// The data rules' hash key a secret holds (checked, never returned to a caller).
    async fn rules_key(&self, secret_id: &str) -> Result<Vec<u8>>;
    /// The ids of the secrets whose names start with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>>;
}

#[async_trait]
impl Credentials for aws_sdk_secretsmanager::Client {
    async fn resolve(&self, secret_id: &str) -> Result<ConnSpec> {
        secrets::fetch(self, secret_id).await
    }

    async fn rules_key(&self, secret_id: &str) -> Result<Vec<u8>> {
        secrets::fetch_rules_key(self, secret_id).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        secrets::list(self, prefix).await
    }
}

/// The SQL dumps jobs wrote, and links to download them.
#[async_trait]
pub trait Downloads: Send + Sync {
    /// The size of job `job_id`'s dump, or `None` when there is none (never written, or
    /// removed by the bucket's lifecycle).
    async fn size(&self, job_id: &str) -> Result<Option<u64>>;
    /// A presigned GET of the dump, valid for `expires`.
    async fn link(&self, job_id: &str, expires: std::time::Duration) -> Result<String>;
}

/// Dumps in the deployment's bucket (`jobs/<id>/dump.sql.gz`).
pub struct S3Downloads {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Downloads {
    /// The dumps in `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: &str) -> Self {
        S3Downloads {
            client,
            bucket: bucket.to_string(),
        }
    }

    fn key(job_id: &str) -> String {
        format!("jobs/{job_id}/{}", crate::cloud::steps::DUMP_KEY)
    }
}

#[async_trait]
impl Downloads for S3Downloads {
    async fn size(&self, job_id: &str) -> Result<Option<u64>> {
        let key = Self::key(job_id);
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(h) => Ok(Some(h.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(crate::aws::sdk_error(&key, "looking for the dump", e)),
        }
    }

    async fn link(&self, job_id: &str, expires: std::time::Duration) -> Result<String> {
        let key = Self::key(job_id);
        let config =
            aws_sdk_s3::presigning::PresigningConfig::expires_in(expires).map_err(|e| {
                crate::error::Error::config("DBSYNC_DOWNLOAD_EXPIRY_SECONDS", e.to_string())
            })?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .response_content_disposition(format!(
                "attachment; filename=\"dbsync-{job_id}.sql.gz\""
            ))
            .presigned(config)
            .await
            .map_err(|e| crate::aws::sdk_error(&key, "signing the download link", e))?;
        Ok(request.uri().to_string())
    }
}

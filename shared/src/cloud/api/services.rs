//! The services an API call reaches through small traits: Step Functions executions and
//! Secrets Manager credentials (tests may record or use a map instead).

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

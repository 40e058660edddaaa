//! One AWS SDK configuration for every service client (S3, Secrets Manager, later DynamoDB
//! and Step Functions): the standard credential/region chain, an explicit HTTPS client
//! (hyper 1 + rustls with ring, the same crypto provider as the database side), and optional
//! overrides for emulators and S3-compatible stores. Build it once per process or cold start.

/// Overrides of the standard AWS chain; everything unset comes from the environment,
/// profile or role (`AWS_ENDPOINT_URL` and `AWS_REGION` included).
#[derive(Clone, Default)]
pub struct AwsSettings {
    /// Custom endpoint (emulators, S3-compatible stores).
    pub endpoint_url: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Static access key id and secret, for endpoints outside AWS's credential chain.
    pub static_credentials: Option<(String, String)>,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field(
                "static_credentials",
                &self.static_credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AwsSettings {
    /// Whether a custom endpoint is in force (from here or `AWS_ENDPOINT_URL`).
    pub fn custom_endpoint(&self) -> bool {
        self.endpoint_url.is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some()
    }
}

/// Loads the shared SDK configuration.
pub async fn sdk_config(settings: &AwsSettings) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
    if let Some(r) = &settings.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some((id, secret)) = &settings.static_credentials {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            id.clone(),
            secret.clone(),
            None,
            None,
            "dbsync-static",
        ));
    }
    if let Some(e) = &settings.endpoint_url {
        loader = loader.endpoint_url(e.clone());
    }
    loader.load().await
}

/// The message of the innermost error in `err`'s chain of causes (empty when it has none).
pub(crate) fn root_cause<'a>(err: &'a (dyn std::error::Error + 'a)) -> String {
    let mut cur = err.source();
    let mut last = String::new();
    while let Some(e) = cur {
        last = e.to_string();
        cur = e.source();
    }
    last
}

/// Maps an SDK error about `location`: throttling, 5xx-like codes, timeouts and dispatch
/// failures are retryable; the message carries the service's error code.
pub fn sdk_error<E, R>(
    location: &str,
    what: &str,
    err: aws_sdk_s3::error::SdkError<E, R>,
) -> crate::error::Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => matches!(
            se.err().code(),
            Some(
                "SlowDown"
                    | "RequestTimeout"
                    | "InternalError"
                    | "InternalServerError"
                    | "ServiceUnavailable"
                    | "ThrottlingException"
                    | "ProvisionedThroughputExceededException"
                    | "RequestLimitExceeded"
            )
        ),
        _ => false,
    };
    // A service's own code and message say it all; else the innermost cause in plain words
    // (the SDK's full context prints its Rust structures).
    let root = root_cause(&err);
    if root.contains("region must be set") {
        return crate::error::Error::Io {
            path: location.to_string(),
            message: format!(
                "{what}: no AWS region is set: set AWS_REGION (or AWS_DEFAULT_REGION, or region in ~/.aws/config)"
            ),
            retryable: false,
            source: None,
        };
    }
    let detail = match (err.code(), err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ if !root.is_empty() => format!("{err}: {root}"),
        _ => DisplayErrorContext(&err).to_string(),
    };
    crate::error::Error::Io {
        path: location.to_string(),
        message: format!("{what}: {detail}"),
        retryable,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_debug_hides_the_secret() {
        let s = AwsSettings {
            static_credentials: Some(("AKIA".into(), "very-secret".into())),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("very-secret"));
    }
}

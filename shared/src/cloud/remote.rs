//! The deployed API called from outside AWS (`dbsync console --api URL`): each request signed
//! with SigV4 for `execute-api` with the caller's own credentials from the standard chain
//! (environment, profile, SSO cache, role), as the API's AWS_IAM authorizer expects, so the
//! console opens no new way in to the deployment. One client per process; credentials are
//! asked of the chain at each call (it caches and refreshes them).

use crate::aws::AwsSettings;
use crate::error::{Error, Result};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, SystemTime};

type Https = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// The deployed API at `base` (its stage URL, `https://ID.execute-api.REGION.amazonaws.com/v1`).
pub struct RemoteApi {
    base: String,
    region: String,
    credentials: SharedCredentialsProvider,
    client: Client<Https, Full<bytes::Bytes>>,
}

/// One answer: status and body as sent.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: bytes::Bytes,
}

impl RemoteApi {
    /// A client of the API at `base`, with the region and credentials of the standard chain
    /// (or of `settings`). The region is the API's own; from its host when it names one.
    pub async fn new(base: &str, settings: &AwsSettings) -> Result<Self> {
        let base = base.trim_end_matches('/').to_string();
        let bad = |m: String| Error::config("api", m);
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(bad(format!("{base:?} is not an http(s) URL")));
        }
        let config = crate::aws::sdk_config(settings).await;
        let region = region_of(&base)
            .or_else(|| config.region().map(|r| r.to_string()))
            .ok_or_else(
                || bad("no AWS region: the API's host names none; set AWS_REGION".into()),
            )?;
        let credentials = config.credentials_provider().ok_or_else(|| {
            bad("no AWS credentials provider: set AWS_PROFILE or AWS_ACCESS_KEY_ID".into())
        })?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .map_err(|e| bad(format!("TLS roots: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(RemoteApi {
            base,
            region,
            credentials,
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// The API's address (never holds a secret).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path_and_query` (e.g. `GET /syncs/ID`) with `body`, signed.
    pub async fn call(&self, method: &str, path_and_query: &str, body: &[u8]) -> Result<Answer> {
        let url = format!("{}{}", self.base, path_and_query);
        let fail = |m: String| Error::Io {
            path: url.clone(),
            message: m,
            retryable: true,
            source: None,
        };
        let creds = self
            .credentials
            .provide_credentials()
            .await
            .map_err(|e| Error::config("api", format!("AWS credentials: {e}")))?;
        let identity: Identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("execute-api")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| fail(format!("signing: {e}")))?
            .into();
        let content_type = [("content-type", "application/json")];
        let headers = if body.is_empty() {
            &content_type[..0]
        } else {
            &content_type[..]
        };
        let signable = SignableRequest::new(
            method,
            &url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| fail(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| fail(format!("signing: {e}")))?
            .into_parts();
        let mut req = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req
            .body(Full::new(bytes::Bytes::copy_from_slice(body)))
            .map_err(|e| fail(e.to_string()))?;
        instructions.apply_to_request_http1x(&mut req);
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .map_err(|_| fail("no answer within 30 s".into()))?
            .map_err(|e| match crate::aws::root_cause(&e) {
                root if root.is_empty() => fail(e.to_string()),
                root => fail(format!("{e}: {root}")),
            })?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        Ok(Answer { status, body })
    }
}

/// The region in an `execute-api` host (`ID.execute-api.REGION.amazonaws.com`).
fn region_of(base: &str) -> Option<String> {
    let host = base.split("://").nth(1)?.split(['/', ':']).next()?;
    let mut parts = host.split('.');
    while let Some(p) = parts.next() {
        if p == "execute-api" {
            return parts.next().map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_an_execute_api_host() {
        assert_eq!(
            region_of("https://a1b2.execute-api.eu-west-1.amazonaws.com/v1").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("http://127.0.0.1:55501/execute-api"), None);
    }
}

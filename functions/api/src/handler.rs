//! Translates an API Gateway request or a schedule input into one core call.

use dbsync_core::cloud::api::{Api, ApiEvent, ApiOutput, ApiSettings, S3Downloads, StepFunctions};
use dbsync_core::cloud::lambda::{Clients, FunctionError};
use std::sync::Arc;
use std::time::Instant;

/// Answers an API request (always with an HTTP response, errors included), or starts the
/// scheduled sync (a refusal is the invocation's error, so the schedule's retries and alarms
/// see it).
pub async fn handle(
    clients: Arc<Clients>,
    settings: Arc<ApiSettings>,
    event: ApiEvent,
    _deadline: Instant,
) -> Result<ApiOutput, FunctionError> {
    let jobs = clients.jobs();
    let executions = StepFunctions::new(clients.sfn.clone(), &settings.state_machine_arn);
    let downloads = S3Downloads::new(clients.s3.clone(), &clients.env.bucket);
    let api = Api {
        settings: &settings,
        jobs: &jobs,
        executions: &executions,
        credentials: &clients.secrets,
        downloads: &downloads,
    };
    match event {
        ApiEvent::Http(request) => Ok(ApiOutput::Http(Box::new(
            api.handle(&request).await.into_response(),
        ))),
        ApiEvent::Schedule(s) => Ok(ApiOutput::Schedule(api.scheduled(&s).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbsync_core::cloud::jobstore::JobStore;
    use serde_json::{json, Value};

    #[tokio::test]
    async fn the_sample_request_starts_a_job_that_can_be_read_and_cancelled() {
        let f =
            dbsync_tests::FunctionFixture::new("fn_api", "unused", "CREATE TABLE t (id int)", "")
                .await;
        // A state machine that waits, so the job is still running when it is cancelled.
        let machine = f
            .clients
            .sfn
            .create_state_machine()
            .name(format!("dbsync-{}", f.pair.name.replace('_', "-")))
            .definition(
                r#"{"StartAt":"Wait","States":{"Wait":{"Type":"Wait","Seconds":60,"End":true}}}"#,
            )
            .role_arn("arn:aws:iam::123456789012:role/dbsync")
            .send()
            .await
            .expect("state machine")
            .state_machine_arn()
            .to_string();
        let settings = Arc::new(
            ApiSettings::from_lookup(&|k| {
                (k == "DBSYNC_STATE_MACHINE_ARN").then(|| machine.clone())
            })
            .expect("settings"),
        );
        let clients = Arc::new(f.clients.clone());
        let call = |event: Value| {
            let (clients, settings) = (clients.clone(), settings.clone());
            async move {
                let event: ApiEvent = serde_json::from_value(event).expect("event");
                match handle(clients, settings, event, Instant::now()).await {
                    Ok(ApiOutput::Http(r)) => {
                        let body = match &r.body {
                            Some(aws_lambda_events::encodings::Body::Text(t)) => {
                                serde_json::from_str(t).expect("json body")
                            }
                            _ => Value::Null,
                        };
                        (r.status_code, body)
                    }
                    other => panic!("not an HTTP answer: {other:?}"),
                }
            }
        };

        let mut event: Value =
            serde_json::from_str(include_str!("../../../events/api-post-sync.json"))
                .expect("sample");
        let mut body: Value =
            serde_json::from_str(event["body"].as_str().expect("body")).expect("body json");
        body["source_secret"] = json!(f.source_secret);
        body["target_secret"] = json!(f.target_secret);
        body["schemas"] = json!(["public"]);
        event["body"] = json!(body.to_string());
        let (status, started) = call(event.clone()).await;
        assert_eq!(status, 202, "{started}");
        let job_id = started["job_id"].as_str().expect("job id").to_string();
        assert!(started["links"]["execution"]
            .as_str()
            .is_some_and(|e| e.ends_with(&job_id)));

        // The job record: the request without secrets, who asked, and the target's lock.
        let job = f
            .clients
            .jobs()
            .get(&job_id)
            .await
            .expect("get")
            .expect("job");
        assert_eq!(job.request["concurrency"], 8);
        assert_eq!(
            job.request["origin"]["api"]["caller"],
            "arn:aws:sts::123456789012:assumed-role/platform-oncall/jane"
        );
        assert!(!job.request.to_string().contains("postgresql://"));

        let mut get = event.clone();
        get["httpMethod"] = json!("GET");
        get["path"] = json!(format!("/syncs/{job_id}"));
        get["body"] = Value::Null;
        let (status, view) = call(get.clone()).await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["status"], "running");
        assert_eq!(view["progress"]["percent"], 0.0);

        let mut delete = get.clone();
        delete["httpMethod"] = json!("DELETE");
        let (status, cancelled) = call(delete).await;
        assert_eq!(status, 202, "{cancelled}");
        let (_, view) = call(get).await;
        assert_eq!(view["status"], "cancelled");
        let execution = f
            .clients
            .sfn
            .describe_execution()
            .execution_arn(settings.execution_arn(&job_id))
            .send()
            .await
            .expect("execution");
        assert_eq!(
            execution.status(),
            &aws_sdk_sfn::types::ExecutionStatus::Aborted
        );
    }
}

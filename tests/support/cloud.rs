//! The local deployment the cloud tests run against: the state machine of
//! `statemachine/sync.asl.json` in the emulator's Step Functions with the local functions'
//! ARNs, the bucket, the job table, and a pair's two databases as Secrets Manager secrets.
//! The functions' settings are fixed when the gateway starts (scripts/lambda.sh): bucket
//! `dbsync-e2e`, table `dbsync-e2e-jobs`, state machine `dbsync-e2e-sync`, protected targets
//! `e2e/protected*`. The deployed API's stage URL is [`api_url`] (the gateway's SigV4-checking
//! stand-in for API Gateway).

use crate::Pair;
use serde_json::{json, Value};

pub const BUCKET: &str = "dbsync-e2e";
pub const JOB_TABLE: &str = "dbsync-e2e-jobs";
pub const STATE_MACHINE: &str = "dbsync-e2e-sync";
pub const ACCOUNT: &str = "123456789012";

/// The functions the state machine's `${...FunctionArn}` substitutions name.
const FUNCTIONS: &[(&str, &str)] = &[
    ("HoldSnapshotFunctionArn", "hold-snapshot"),
    ("PlanFunctionArn", "plan"),
    ("ExportChunkFunctionArn", "export-chunk"),
    ("AssembleFunctionArn", "assemble"),
    ("WriteDumpFunctionArn", "write-dump"),
    ("PrepareFunctionArn", "prepare"),
    ("ImportPartFunctionArn", "import-part"),
    ("FinalizeFunctionArn", "finalize"),
    ("FailFunctionArn", "fail"),
];

/// The definition as deployed, with the function ARNs of the local functions and retry
/// intervals and waits cut to a second (the emulator waits them out in real time).
pub fn local_definition() -> String {
    let mut text = include_str!("../../statemachine/sync.asl.json").to_string();
    for (var, function) in FUNCTIONS {
        text = text.replace(
            &format!("${{{var}}}"),
            &format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}"),
        );
    }
    text = text.replace("${DataBucketName}", BUCKET);
    let mut v: Value = serde_json::from_str(&text).expect("the definition is JSON");
    fn shorten(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.get("Type") == Some(&json!("Wait")) {
                    m.insert("Seconds".into(), json!(1));
                }
                if let Some(Value::Array(retries)) = m.get_mut("Retry") {
                    for r in retries {
                        r["IntervalSeconds"] = json!(1);
                        // Waiting for a connection lease is how the flow works, not a fault.
                        if r["ErrorEquals"][0] != "DbsyncConnectionsBusy" {
                            r["MaxAttempts"] = json!(1);
                        } else {
                            r["MaxDelaySeconds"] = json!(2);
                        }
                    }
                }
                m.values_mut().for_each(shorten);
            }
            Value::Array(a) => a.iter_mut().for_each(shorten),
            _ => {}
        }
    }
    shorten(&mut v);
    v.to_string()
}

/// The stage URL of the API: the gateway checks the signature and invokes the api function.
pub fn api_url() -> String {
    format!("{}/execute-api", crate::lambda_gateway())
}

/// What [`deploy`] made.
pub struct Deployment {
    pub sfn: aws_sdk_sfn::Client,
    pub clients: dbsync_core::cloud::lambda::Clients,
    /// Secret ids of the pair's source and target: `e2e/<pair>/source`, `.../target`.
    pub source_secret: String,
    pub target_secret: String,
}

/// The bucket, the job table, this checkout's state machine, and the pair's databases as
/// secrets.
pub async fn deploy(pair: &Pair) -> Deployment {
    crate::lambda_gateway();
    let env = dbsync_core::cloud::lambda::FunctionEnv::from_lookup(&|k| match k {
        "DBSYNC_BUCKET" => Some(BUCKET.into()),
        "DBSYNC_JOB_TABLE" => Some(JOB_TABLE.into()),
        _ => None,
    })
    .expect("env");
    let clients = dbsync_core::cloud::lambda::Clients::new(env, &crate::aws_settings()).await;
    let _ = clients.s3.create_bucket().bucket(BUCKET).send().await;
    let _ =
        dbsync_core::cloud::jobstore::DynamoJobStore::create_table(&clients.dynamodb, JOB_TABLE)
            .await;
    let sfn = clients.sfn.clone();
    let arn = format!("arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{STATE_MACHINE}");
    // Always the definition of this checkout (moto's UpdateStateMachine leaves executions
    // on the old one).
    let _ = sfn
        .delete_state_machine()
        .state_machine_arn(&arn)
        .send()
        .await;
    sfn.create_state_machine()
        .name(STATE_MACHINE)
        .definition(local_definition())
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/dbsync-e2e"))
        .send()
        .await
        .expect("create the state machine");
    let source_secret = format!("e2e/{}/source", pair.name);
    let target_secret = format!("e2e/{}/target", pair.name);
    secret(&clients, &source_secret, &pair.source_url).await;
    secret(&clients, &target_secret, &pair.target_url).await;
    Deployment {
        sfn,
        clients,
        source_secret,
        target_secret,
    }
}

/// A database's secret (`{"url": ...}`) in the emulator's Secrets Manager.
pub async fn secret(clients: &dbsync_core::cloud::lambda::Clients, id: &str, url: &str) {
    clients
        .secrets
        .create_secret()
        .name(id)
        .secret_string(json!({ "url": url }).to_string())
        .send()
        .await
        .expect("secret");
}

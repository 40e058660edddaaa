//! Job state in DynamoDB: one table, items keyed by `pk` - `JOB#<id>` for jobs, `LOCK#<target>`
//! for target locks - with a global secondary index `recent` (`entity`, `created_at`) to list
//! recent jobs, TTL on `expires_at`, counters changed with `ADD` so parallel chunks and parts
//! never lose an update, and the lock taken with a conditional write whose expected failure
//! becomes [`Error::TargetLocked`].

use super::{
    now_epoch, now_rfc3339, parse_enum, Counters, JobChange, JobError, JobRecord, JobStore,
};
use crate::aws::sdk_error;
use crate::error::{Error, Result};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue as Av;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

/// The index listing recent jobs.
pub const RECENT_INDEX: &str = "recent";

/// Job state in a DynamoDB table.
#[derive(Clone, Debug)]
pub struct DynamoJobStore {
    pub(super) client: Client,
    pub(super) table: String,
    retention_secs: u64,
}

pub(super) fn s(v: &str) -> Av {
    Av::S(v.to_string())
}

pub(super) fn n(v: u64) -> Av {
    Av::N(v.to_string())
}

impl DynamoJobStore {
    /// A store over `table`; job records expire `retention_days` after creation.
    pub fn new(client: Client, table: &str, retention_days: u64) -> Self {
        DynamoJobStore {
            client,
            table: table.to_string(),
            retention_secs: retention_days * 86_400,
        }
    }

    pub(super) fn location(&self, what: &str) -> String {
        format!("dynamodb table {} {what}", self.table)
    }

    /// Creates the table with its index (tests and local runs; the SAM template creates it in
    /// AWS, with TTL and point-in-time recovery).
    pub async fn create_table(client: &Client, table: &str) -> Result<()> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType,
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let key = |name: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(t)
                .build()
        };
        let built = (|| {
            Ok::<_, aws_sdk_dynamodb::error::BuildError>((
                vec![attr("pk")?, attr("entity")?, attr("created_at")?],
                key("pk", KeyType::Hash)?,
                GlobalSecondaryIndex::builder()
                    .index_name(RECENT_INDEX)
                    .key_schema(key("entity", KeyType::Hash)?)
                    .key_schema(key("created_at", KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()?,
            ))
        })();
        let (attrs, pk, gsi) = built.map_err(|e| Error::config("job table", e.to_string()))?;
        client
            .create_table()
            .table_name(table)
            .set_attribute_definitions(Some(attrs))
            .key_schema(pk)
            .global_secondary_indexes(gsi)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| sdk_error(&format!("dynamodb table {table}"), "creating the table", e))?;
        Ok(())
    }
}

fn to_item(j: &JobRecord, expires_at: u64) -> HashMap<String, Av> {
    let mut m = HashMap::from([
        ("pk".to_string(), s(&format!("JOB#{}", j.job_id))),
        ("entity".to_string(), s("job")),
        ("job_id".to_string(), s(&j.job_id)),
        ("kind".to_string(), s(&j.kind)),
        ("status".to_string(), s(j.status.as_str())),
        ("phase".to_string(), s(j.phase.as_str())),
        ("request".to_string(), s(&j.request.to_string())),
        ("created_at".to_string(), s(&j.created_at)),
        ("updated_at".to_string(), s(&j.updated_at)),
        ("chunks_total".to_string(), n(j.chunks_total)),
        ("parts_total".to_string(), n(j.parts_total)),
        ("chunks_done".to_string(), n(j.counters.chunks_done)),
        ("parts_done".to_string(), n(j.counters.parts_done)),
        ("rows".to_string(), n(j.counters.rows)),
        ("bytes".to_string(), n(j.counters.bytes)),
        ("expires_at".to_string(), n(expires_at)),
    ]);
    if let Some(t) = &j.target {
        m.insert("target".into(), s(t));
    }
    if let Some(e) = &j.error {
        m.insert("error_name".into(), s(&e.name));
        m.insert("error_message".into(), s(&e.message));
    }
    if let Some(snap) = &j.snapshot {
        m.insert("snapshot".into(), s(snap));
    }
    m.insert("exports_done".into(), Av::Bool(j.exports_done));
    m.insert("tables_total".into(), n(j.tables_total));
    m.insert("tables_done".into(), n(j.tables_done));
    m.insert("retries".into(), n(j.retries));
    if let Some(t) = &j.current_table {
        m.insert("current_table".into(), s(t));
    }
    if let Some(e) = &j.execution {
        m.insert("execution".into(), s(e));
    }
    m
}

fn from_item(m: &HashMap<String, Av>) -> Option<JobRecord> {
    let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
    let num = |k: &str| {
        m.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(JobRecord {
        job_id: text("job_id")?,
        kind: text("kind")?,
        status: parse_enum(&text("status")?)?,
        phase: parse_enum(&text("phase")?)?,
        request: serde_json::from_str(&text("request")?).ok()?,
        target: text("target"),
        created_at: text("created_at")?,
        updated_at: text("updated_at")?,
        chunks_total: num("chunks_total"),
        parts_total: num("parts_total"),
        counters: Counters {
            chunks_done: num("chunks_done"),
            parts_done: num("parts_done"),
            rows: num("rows"),
            bytes: num("bytes"),
        },
        error: match (text("error_name"), text("error_message")) {
            (Some(name), Some(message)) => Some(JobError { name, message }),
            _ => None,
        },
        snapshot: text("snapshot"),
        exports_done: m
            .get("exports_done")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        tables_total: num("tables_total"),
        tables_done: num("tables_done"),
        current_table: text("current_table"),
        execution: text("execution"),
        retries: num("retries"),
    })
}

pub(super) fn is_conditional_failure<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    e.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl JobStore for DynamoJobStore {
    async fn create(&self, job: &JobRecord) -> Result<()> {
        let expires = now_epoch() + self.retention_secs;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(job, expires)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    &self.location(&format!("job {}", job.job_id)),
                    "creating",
                    e,
                )
            })?;
        Ok(())
    }

    async fn get(&self, job_id: &str) -> Result<Option<JobRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&format!("JOB#{job_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(&self.location(&format!("job {job_id}")), "reading", e))?;
        Ok(out.item().and_then(from_item))
    }

    async fn recent(&self, limit: usize) -> Result<Vec<JobRecord>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(RECENT_INDEX)
            .key_condition_expression("entity = :e")
            .expression_attribute_values(":e", s("job"))
            .scan_index_forward(false)
            .limit(limit.min(1000) as i32)
            .send()
            .await
            .map_err(|e| sdk_error(&self.location("recent jobs"), "listing", e))?;
        Ok(out.items().iter().filter_map(from_item).collect())
    }

    async fn update(&self, job_id: &str, change: JobChange) -> Result<()> {
        let mut sets = vec!["updated_at = :u".to_string()];
        let mut names = HashMap::new();
        let mut values = HashMap::from([(":u".to_string(), s(&now_rfc3339()))]);
        if let Some(st) = change.status {
            sets.push("#st = :st".into());
            names.insert("#st".to_string(), "status".to_string());
            values.insert(":st".into(), s(st.as_str()));
        }
        if let Some(p) = change.phase {
            sets.push("#ph = :ph".into());
            names.insert("#ph".to_string(), "phase".to_string());
            values.insert(":ph".into(), s(p.as_str()));
        }
        if let Some((c, p)) = change.totals {
            sets.push("chunks_total = :ct, parts_total = :pt".into());
            values.insert(":ct".into(), n(c));
            values.insert(":pt".into(), n(p));
        }
        if let Some(e) = change.error {
            sets.push("error_name = :en, error_message = :em".into());
            values.insert(":en".into(), s(&e.name));
            values.insert(":em".into(), s(&e.message));
        }
        if let Some(snap) = change.snapshot {
            sets.push("#sn = :sn".into());
            names.insert("#sn".to_string(), "snapshot".to_string());
            values.insert(":sn".into(), s(&snap));
        }
        if let Some(d) = change.exports_done {
            sets.push("exports_done = :xd".into());
            values.insert(":xd".into(), Av::Bool(d));
        }
        if let Some(t) = change.tables_total {
            sets.push("tables_total = :tt".into());
            values.insert(":tt".into(), n(t));
        }
        let mut expression = format!("SET {}", sets.join(", "));
        // Names are substituted whether or not DynamoDB reserves them.
        if let Some(name) = change.retry {
            expression.push_str(", #ex = :ex REMOVE error_name, error_message ADD retries :one");
            names.insert("#ex".to_string(), "execution".to_string());
            values.insert(":ex".into(), s(&name));
            values.insert(":one".into(), n(1));
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&format!("JOB#{job_id}")))
            .update_expression(expression)
            .condition_expression("attribute_exists(pk)")
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(|e| sdk_error(&self.location(&format!("job {job_id}")), "updating", e))?;
        Ok(())
    }

    async fn add(&self, job_id: &str, d: Counters) -> Result<()> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&format!("JOB#{job_id}")))
            .update_expression(
                "ADD chunks_done :c, parts_done :p, #r :r, #b :b SET updated_at = :u",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#r", "rows")
            .expression_attribute_names("#b", "bytes")
            .expression_attribute_values(":c", n(d.chunks_done))
            .expression_attribute_values(":p", n(d.parts_done))
            .expression_attribute_values(":r", n(d.rows))
            .expression_attribute_values(":b", n(d.bytes))
            .expression_attribute_values(":u", s(&now_rfc3339()))
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    &self.location(&format!("job {job_id}")),
                    "adding progress",
                    e,
                )
            })?;
        Ok(())
    }

    async fn progress(&self, job_id: &str, current_table: &str, tables_done: u64) -> Result<()> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&format!("JOB#{job_id}")))
            .update_expression("SET current_table = :t, tables_done = :d, updated_at = :u")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(tables_done) OR tables_done <= :d)",
            )
            .expression_attribute_values(":t", s(current_table))
            .expression_attribute_values(":d", n(tables_done))
            .expression_attribute_values(":u", s(&now_rfc3339()))
            .send()
            .await;
        match r {
            // A later report got there first; a missing job fails on the next update.
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(sdk_error(
                &self.location(&format!("job {job_id}")),
                "recording progress",
                e,
            )),
            Ok(_) => Ok(()),
        }
    }

    async fn lock_target(&self, target: &str, job_id: &str, ttl_secs: u64) -> Result<()> {
        let now = now_epoch();
        let r = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&format!("LOCK#{target}")))
            .item("entity", s("lock"))
            .item("job_id", s(job_id))
            .item("expires_at", n(now + ttl_secs))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now OR job_id = :me")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":me", s(job_id))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if is_conditional_failure(&e) => Err(Error::TargetLocked(target.to_string())),
            Err(e) => Err(sdk_error(
                &self.location(&format!("lock {target}")),
                "locking",
                e,
            )),
        }
    }

    async fn acquire_lease(
        &self,
        endpoint: &str,
        holder: &str,
        limit: u32,
        ttl_secs: u64,
    ) -> Result<bool> {
        self.take_lease(endpoint, holder, limit, ttl_secs).await
    }

    async fn release_lease(&self, endpoint: &str, holder: &str) -> Result<()> {
        self.give_lease(endpoint, holder).await
    }

    async fn release_leases_of(&self, endpoint: &str, prefix: &str) -> Result<usize> {
        self.give_leases_of(endpoint, prefix).await
    }

    async fn release_target(&self, target: &str, job_id: &str) -> Result<()> {
        let r = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&format!("LOCK#{target}")))
            .condition_expression("job_id = :me")
            .expression_attribute_values(":me", s(job_id))
            .send()
            .await;
        match r {
            // Not ours (or gone already): nothing to release.
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(sdk_error(
                &self.location(&format!("lock {target}")),
                "releasing",
                e,
            )),
            Ok(_) => Ok(()),
        }
    }
}

/// A DynamoDB client from the shared SDK configuration.
pub async fn client(settings: &crate::aws::AwsSettings) -> Client {
    Client::new(&crate::aws::sdk_config(settings).await)
}

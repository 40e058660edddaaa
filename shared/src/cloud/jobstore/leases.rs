//! Connection leases in DynamoDB: one item per database (`LEASE#<host:port/db>`) holding a
//! map of holders to their expiry and a version. Taking a lease reads the item, drops the
//! expired holders, and writes it back with the new one only if nobody wrote in between (the
//! version); giving one back removes the holder and bumps the version, so a taker working from
//! an older read cannot bring it back.

use super::dynamodb::{is_conditional_failure, n, s, DynamoJobStore};
use super::now_epoch;
use crate::aws::sdk_error;
use crate::error::{Error, Result};
use aws_sdk_dynamodb::types::AttributeValue as Av;
use std::collections::HashMap;

/// Optimistic rounds before a taker reports contention (retryable).
const ROUNDS: usize = 25;

impl DynamoJobStore {
    /// The live holders of `endpoint`'s leases and the item's version.
    async fn lease_item(&self, endpoint: &str) -> Result<(HashMap<String, u64>, u64)> {
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&format!("LEASE#{endpoint}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(&self.location(&format!("leases {endpoint}")), "reading", e))?;
        let Some(item) = got.item else {
            return Ok((HashMap::new(), 0));
        };
        let num = |v: &Av| v.as_n().ok().and_then(|x| x.parse::<u64>().ok());
        let version = item.get("version").and_then(num).unwrap_or(0);
        let now = now_epoch();
        let holders = item
            .get("holders")
            .and_then(|h| h.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| num(v).map(|until| (k.clone(), until)))
                    .filter(|(_, until)| *until > now)
                    .collect()
            })
            .unwrap_or_default();
        Ok((holders, version))
    }

    pub(super) async fn take_lease(
        &self,
        endpoint: &str,
        holder: &str,
        limit: u32,
        ttl_secs: u64,
    ) -> Result<bool> {
        let place = self.location(&format!("leases {endpoint}"));
        for _ in 0..ROUNDS {
            let (mut holders, version) = self.lease_item(endpoint).await?;
            if !holders.contains_key(holder) && holders.len() >= limit as usize {
                return Ok(false);
            }
            let until = now_epoch() + ttl_secs;
            holders.insert(holder.to_string(), until);
            let last = holders.values().copied().max().unwrap_or(until);
            let map = holders.into_iter().map(|(k, v)| (k, n(v))).collect();
            let r = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&format!("LEASE#{endpoint}")))
                .item("entity", s("lease"))
                .item("holders", Av::M(map))
                .item("version", n(version + 1))
                // The table's TTL removes an item every holder of which is long gone.
                .item("expires_at", n(last + 86_400))
                .condition_expression("attribute_not_exists(pk) OR version = :v")
                .expression_attribute_values(":v", n(version))
                .send()
                .await;
            match r {
                Ok(_) => return Ok(true),
                Err(e) if is_conditional_failure(&e) => continue,
                Err(e) => return Err(sdk_error(&place, "taking a lease", e)),
            }
        }
        Err(Error::Io {
            path: place,
            message: format!("{ROUNDS} concurrent writers in a row; try again"),
            retryable: true,
            source: None,
        })
    }

    pub(super) async fn give_lease(&self, endpoint: &str, holder: &str) -> Result<()> {
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&format!("LEASE#{endpoint}")))
            .update_expression("REMOVE holders.#h ADD version :one")
            .condition_expression("attribute_exists(holders.#h)")
            .expression_attribute_names("#h", holder)
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        match r {
            // Not held (expired and taken over, or given back already): nothing to do.
            Err(e) if is_conditional_failure(&e) => Ok(()),
            Err(e) => Err(sdk_error(
                &self.location(&format!("leases {endpoint}")),
                "giving a lease back",
                e,
            )),
            Ok(_) => Ok(()),
        }
    }

    pub(super) async fn give_leases_of(&self, endpoint: &str, prefix: &str) -> Result<usize> {
        let (holders, _) = self.lease_item(endpoint).await?;
        let mut given = 0;
        for h in holders.keys().filter(|h| h.starts_with(prefix)) {
            self.give_lease(endpoint, h).await?;
            given += 1;
        }
        Ok(given)
    }
}

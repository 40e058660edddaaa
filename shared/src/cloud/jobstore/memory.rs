//! Job state in memory, for tests and single-process runs; keeps the same contract as the
//! DynamoDB store ([`super::contract::check_contract`]).

use super::{now_epoch, now_rfc3339, Counters, JobChange, JobRecord, JobStore};
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// Job state in memory: tests and single-process runs.
#[derive(Default)]
pub struct MemoryJobStore {
    jobs: Mutex<HashMap<String, JobRecord>>,
    locks: Mutex<HashMap<String, (String, u64)>>,
    leases: Mutex<HashMap<String, HashMap<String, u64>>>,
}

fn poisoned() -> Error {
    Error::Internal("a thread panicked while holding the memory job store".into())
}

fn missing(job_id: &str) -> Error {
    Error::NoSuchJob(job_id.to_string())
}

#[async_trait]
impl JobStore for MemoryJobStore {
    async fn create(&self, job: &JobRecord) -> Result<()> {
        let mut jobs = self.jobs.lock().map_err(|_| poisoned())?;
        if jobs.contains_key(&job.job_id) {
            return Err(Error::Io {
                path: format!("job {}", job.job_id),
                message: "exists already".into(),
                retryable: false,
                source: None,
            });
        }
        jobs.insert(job.job_id.clone(), job.clone());
        Ok(())
    }

    async fn get(&self, job_id: &str) -> Result<Option<JobRecord>> {
        Ok(self
            .jobs
            .lock()
            .map_err(|_| poisoned())?
            .get(job_id)
            .cloned())
    }

    async fn recent(&self, limit: usize) -> Result<Vec<JobRecord>> {
        let mut all: Vec<JobRecord> = self
            .jobs
            .lock()
            .map_err(|_| poisoned())?
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| (&b.created_at, &b.job_id).cmp(&(&a.created_at, &a.job_id)));
        all.truncate(limit);
        Ok(all)
    }

    async fn update(&self, job_id: &str, change: JobChange) -> Result<()> {
        let mut jobs = self.jobs.lock().map_err(|_| poisoned())?;
        let j = jobs.get_mut(job_id).ok_or_else(|| missing(job_id))?;
        if let Some(s) = change.status {
            j.status = s;
        }
        if let Some(p) = change.phase {
            j.phase = p;
        }
        if let Some((c, p)) = change.totals {
            j.chunks_total = c;
            j.parts_total = p;
        }
        if change.error.is_some() {
            j.error = change.error;
        }
        if change.snapshot.is_some() {
            j.snapshot = change.snapshot;
        }
        if let Some(d) = change.exports_done {
            j.exports_done = d;
        }
        if let Some(t) = change.tables_total {
            j.tables_total = t;
        }
        if let Some(name) = change.retry {
            j.execution = Some(name);
            j.retries += 1;
            j.error = None;
        }
        j.updated_at = now_rfc3339();
        Ok(())
    }

    async fn add(&self, job_id: &str, d: Counters) -> Result<()> {
        let mut jobs = self.jobs.lock().map_err(|_| poisoned())?;
        let j = jobs.get_mut(job_id).ok_or_else(|| missing(job_id))?;
        j.counters.chunks_done += d.chunks_done;
        j.counters.parts_done += d.parts_done;
        j.counters.rows += d.rows;
        j.counters.bytes += d.bytes;
        Ok(())
    }

    async fn progress(&self, job_id: &str, current_table: &str, tables_done: u64) -> Result<()> {
        let mut jobs = self.jobs.lock().map_err(|_| poisoned())?;
        let j = jobs.get_mut(job_id).ok_or_else(|| missing(job_id))?;
        if tables_done >= j.tables_done {
            j.current_table = Some(current_table.to_string());
            j.tables_done = tables_done;
        }
        Ok(())
    }

    async fn lock_target(&self, target: &str, job_id: &str, ttl_secs: u64) -> Result<()> {
        let mut locks = self.locks.lock().map_err(|_| poisoned())?;
        let now = now_epoch();
        match locks.get(target) {
            Some((holder, until)) if holder != job_id && *until > now => {
                Err(Error::TargetLocked(target.to_string()))
            }
            _ => {
                locks.insert(target.to_string(), (job_id.to_string(), now + ttl_secs));
                Ok(())
            }
        }
    }

    async fn acquire_lease(
        &self,
        endpoint: &str,
        holder: &str,
        limit: u32,
        ttl_secs: u64,
    ) -> Result<bool> {
        let mut leases = self.leases.lock().map_err(|_| poisoned())?;
        let now = now_epoch();
        let held = leases.entry(endpoint.to_string()).or_default();
        held.retain(|_, until| *until > now);
        if !held.contains_key(holder) && held.len() >= limit as usize {
            return Ok(false);
        }
        held.insert(holder.to_string(), now + ttl_secs);
        Ok(true)
    }

    async fn release_lease(&self, endpoint: &str, holder: &str) -> Result<()> {
        let mut leases = self.leases.lock().map_err(|_| poisoned())?;
        if let Some(held) = leases.get_mut(endpoint) {
            held.remove(holder);
        }
        Ok(())
    }

    async fn release_leases_of(&self, endpoint: &str, prefix: &str) -> Result<usize> {
        let mut leases = self.leases.lock().map_err(|_| poisoned())?;
        let Some(held) = leases.get_mut(endpoint) else {
            return Ok(0);
        };
        let before = held.len();
        held.retain(|h, _| !h.starts_with(prefix));
        Ok(before - held.len())
    }

    async fn release_target(&self, target: &str, job_id: &str) -> Result<()> {
        let mut locks = self.locks.lock().map_err(|_| poisoned())?;
        if locks.get(target).is_some_and(|(h, _)| h == job_id) {
            locks.remove(target);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_the_job_store_contract() {
        super::super::contract::check_contract(&MemoryJobStore::default(), "mem").await;
    }
}

//! Export jobs (`POST /users/exports`): the job item that says how far an
//! export to a file has got, and the pointer that makes a worker find it.
//!
//! A job is two items, written together by [`Store::create_export_job`]:
//! - the job, `A#{acct}#EXP#{id}` / `EXPORT`, under the account like
//!   everything else, so only its account reads it; it holds the request,
//!   the state, the rows written so far and where the export resumes;
//! - a pointer, `XJOB#{shard}` / the job's pk, that exists while the job is
//!   not finished: the worker's sweep reads these partitions, and in AWS the
//!   table's stream starts the worker function when one is written or
//!   touched ([`Store::touch_export_pointer`]).
//!
//! One worker at a time works on a job: it takes a *lease* (a token and a
//! time) with a conditional write, and every later write of that worker is
//! conditioned on its token ([`Store::save_export_job`]), so a worker that
//! lost its lease (it outlived it, another took over) can change nothing. A
//! worker that dies leaves a lease that simply runs out.

use serde::{Deserialize, Serialize};

use super::Store;
use super::items::{from_item, key, s, to_item};
use super::keys;
use super::tx::{Expr, Outcome, Transaction, absent, exists, passed};
use crate::error::ApiError;
use crate::model::{AccountId, ObjectId, Timestamp};

/// How long a job and its file are kept after the job was created.
pub const EXPORT_JOB_LIFETIME_SECONDS: i64 = 7 * 24 * 3600;
/// How many partitions the job pointers are spread over.
pub const EXPORT_POINTER_SHARDS: u8 = 4;
/// Sort key of a job item.
pub const EXPORT_JOB_SK: &str = "EXPORT";

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportJobState {
    /// Written, not started.
    Pending,
    /// Started; rows are being written.
    Running,
    /// The file is complete.
    Done,
    /// Stopped for good (the reason is in `error`).
    Failed,
}

impl ExportJobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// An export job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportJob {
    pub pk: String,
    pub sk: String,
    pub account: String,
    pub id: ObjectId,
    pub state: ExportJobState,
    /// The request body, as validated JSON text (same rules as `POST /users/export`).
    pub request: String,
    /// The export's snapshot time (millis): what a `lastSeen` walk reads.
    #[serde(rename = "asOf")]
    pub as_of: i64,
    /// Where the export resumes (JSON of the store's export position), once
    /// a run has ended without finishing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// Rows written so far (all of them when done), as last reported.
    #[serde(default)]
    pub rows: u64,
    /// Rows written up to `position` (what a run resumes from; `rows` may
    /// count further, reported by a run that did not save its position).
    #[serde(default, rename = "resumeRows")]
    pub resume_rows: u64,
    /// Bytes of the file so far (compressed).
    #[serde(default)]
    pub bytes: u64,
    /// The upload in progress, and how many of its parts count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    #[serde(default)]
    pub parts: u32,
    /// The tags of the parts that count, in order (S3's ETags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The object holding what a run wrote after its last part (for the next run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<String>,
    /// Runs started (one per worker invocation that worked on the job).
    #[serde(default)]
    pub runs: u64,
    /// The finished file's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Why a failed job failed, in words for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(rename = "createdAt")]
    pub created_at: i64,
    #[serde(rename = "updatedAt")]
    pub updated_at: i64,
    #[serde(
        default,
        rename = "finishedAt",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    #[serde(
        default,
        rename = "leaseUntil",
        skip_serializing_if = "Option::is_none"
    )]
    pub lease_until: Option<i64>,
    /// Epoch seconds after which DynamoDB's TTL removes the job.
    #[serde(rename = "expiresAt")]
    pub expires_at: i64,
}

impl ExportJob {
    pub fn account_id(&self) -> Result<AccountId, ApiError> {
        AccountId::parse(&self.account)
            .map_err(|_| ApiError::internal("an export job names a malformed account"))
    }

    pub fn created(&self) -> Timestamp {
        Timestamp::from_millis(self.created_at)
    }

    pub fn updated(&self) -> Timestamp {
        Timestamp::from_millis(self.updated_at)
    }

    pub fn finished(&self) -> Option<Timestamp> {
        self.finished_at.map(Timestamp::from_millis)
    }

    /// When the job and its file go away.
    pub fn expires(&self) -> Timestamp {
        Timestamp::from_millis(self.expires_at * 1000)
    }
}

/// The pointer that makes a worker find an unfinished job.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExportPointerItem {
    pk: String,
    sk: String,
    account: String,
    id: ObjectId,
    #[serde(default)]
    passes: u64,
}

/// What taking a job's lease found.
#[derive(Debug)]
pub enum Lease {
    /// The job is this worker's until the lease's end: the job as it now is
    /// (lease and run count included).
    Taken(ExportJob),
    /// Another worker holds it.
    Held,
    /// It is done or failed (the pointer may still be there).
    Finished(ExportJob),
    /// No such job (expired, or never existed).
    Gone,
}

fn job_pk(account: &AccountId, id: ObjectId) -> String {
    format!("A#{account}#EXP#{id}")
}

fn pointer_pk(id: ObjectId) -> String {
    pointer_partition(keys::shard_of(id, EXPORT_POINTER_SHARDS))
}

fn pointer_partition(shard: u8) -> String {
    format!("{}{shard}", keys::EXPORT_POINTER_PREFIX)
}

impl Store {
    /// Writes a new pending job (and its pointer) for `request`, the
    /// validated body of the export.
    pub async fn create_export_job(
        &self,
        account: &AccountId,
        request: String,
    ) -> Result<ExportJob, ApiError> {
        let now = Timestamp::now();
        let id = ObjectId::new();
        let job = ExportJob {
            pk: job_pk(account, id),
            sk: EXPORT_JOB_SK.to_owned(),
            account: account.to_string(),
            id,
            state: ExportJobState::Pending,
            request,
            as_of: now.millis(),
            position: None,
            rows: 0,
            resume_rows: 0,
            bytes: 0,
            upload: None,
            parts: 0,
            tags: Vec::new(),
            tail: None,
            runs: 0,
            file: None,
            error: None,
            created_at: now.millis(),
            updated_at: now.millis(),
            finished_at: None,
            lease: None,
            lease_until: None,
            expires_at: now.unix_seconds() + EXPORT_JOB_LIFETIME_SECONDS,
        };
        let pointer = ExportPointerItem {
            pk: pointer_pk(id),
            sk: job.pk.clone(),
            account: job.account.clone(),
            id,
            passes: 0,
        };
        let mut transaction = Transaction::default();
        let new = || Some(absent());
        transaction.put(self.table(), to_item(&job)?, new());
        transaction.put(self.table(), to_item(&pointer)?, new());
        match self.commit(transaction).await? {
            Outcome::Committed => Ok(job),
            Outcome::Busy => Err(ApiError::Unavailable {
                detail: "TransactWriteItems export job: busy".into(),
            }),
            // Written by an earlier attempt of this request (its
            // Idempotency-Key gives every attempt the same id).
            Outcome::ConditionFailed(_) => self
                .export_job(account, id)
                .await?
                .ok_or_else(|| ApiError::internal("a new export job's id was already taken")),
        }
    }

    /// The job `id` of `account`, read consistently.
    pub async fn export_job(
        &self,
        account: &AccountId,
        id: ObjectId,
    ) -> Result<Option<ExportJob>, ApiError> {
        self.get_consistent("GetItem export job", &job_pk(account, id), EXPORT_JOB_SK)
            .await?
            .map(from_item)
            .transpose()
    }

    /// Every unfinished job, as (account, id), from the pointers.
    pub async fn unfinished_export_jobs(&self) -> Result<Vec<(AccountId, ObjectId)>, ApiError> {
        let mut jobs = Vec::new();
        for shard in 0..EXPORT_POINTER_SHARDS {
            let partition = pointer_partition(shard);
            let mut items = self.partition_items(None, &partition, None).send();
            while let Some(item) = items.next().await {
                let item = item.map_err(|e| super::sdk_error("Query export pointers", e))?;
                let pointer: ExportPointerItem = from_item(item)?;
                if let Ok(account) = AccountId::parse(&pointer.account) {
                    jobs.push((account, pointer.id));
                }
            }
        }
        Ok(jobs)
    }

    /// Takes the job's lease until `until`, unless another worker holds it
    /// or the job is finished.
    pub async fn lease_export_job(
        &self,
        account: &AccountId,
        id: ObjectId,
        until: Timestamp,
    ) -> Result<Lease, ApiError> {
        let Some(mut job) = self.export_job(account, id).await? else {
            return Ok(Lease::Gone);
        };
        if job.state.is_finished() {
            return Ok(Lease::Finished(job));
        }
        let now = Timestamp::now().millis();
        if job.lease_until.is_some_and(|end| end > now) {
            return Ok(Lease::Held);
        }
        let previous = job.lease.clone();
        job.lease = Some(uuid::Uuid::new_v4().simple().to_string());
        job.lease_until = Some(until.millis());
        job.runs += 1;
        if job.state == ExportJobState::Pending {
            job.state = ExportJobState::Running;
        }
        job.updated_at = now;
        // Taken only if nobody took it since it was read.
        let condition = match &previous {
            Some(token) => Expr::new("lease = :previous").value(":previous", s(token)),
            None => exists().and(Expr::new("attribute_not_exists(lease)")),
        };
        match self.put_job(&job, condition).await? {
            Outcome::Committed => Ok(Lease::Taken(job)),
            _ => Ok(Lease::Held),
        }
    }

    /// Writes the job as it now is, if the worker still holds its lease
    /// (`job.lease` is the token it took); `false` when it does not.
    pub async fn save_export_job(&self, job: &ExportJob, token: &str) -> Result<bool, ApiError> {
        let condition = Expr::new("lease = :token").value(":token", s(token));
        Ok(matches!(
            self.put_job(job, condition).await?,
            Outcome::Committed
        ))
    }

    /// Writes the finished job (its lease given back) and removes its
    /// pointer, if the worker still holds the lease.
    pub async fn close_export_job(&self, job: &ExportJob, token: &str) -> Result<bool, ApiError> {
        let mut closed = job.clone();
        closed.lease = None;
        closed.lease_until = None;
        let mut transaction = Transaction::default();
        transaction.put(
            self.table(),
            to_item(&closed)?,
            Some(Expr::new("lease = :token").value(":token", s(token))),
        );
        transaction.delete(self.table(), key(pointer_pk(job.id), &job.pk), None);
        Ok(matches!(
            self.commit(transaction).await?,
            Outcome::Committed
        ))
    }

    /// Removes the pointer of a job that is already finished.
    pub async fn drop_export_pointer(&self, job: &ExportJob) -> Result<(), ApiError> {
        self.client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key(pointer_pk(job.id), &job.pk)))
            .send()
            .await
            .map_err(|e| super::sdk_error("DeleteItem export pointer", e))?;
        Ok(())
    }

    /// Changes the job's pointer, so that the table's stream starts a worker
    /// for it (AWS); a pointer gone meanwhile is fine.
    pub async fn touch_export_pointer(&self, job: &ExportJob) -> Result<(), ApiError> {
        let key = key(pointer_pk(job.id), &job.pk);
        self.update_if("UpdateItem export pointer", key, passed(), exists())
            .await
            .map(|_| ())
    }

    async fn put_job(&self, job: &ExportJob, condition: Expr) -> Result<Outcome, ApiError> {
        self.put_if("PutItem export job", to_item(job)?, condition)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_spread_over_their_shards() {
        let shards: std::collections::HashSet<String> =
            (0..64).map(|_| pointer_pk(ObjectId::new())).collect();
        assert!(shards.len() > 1);
        for shard in shards {
            assert!(shard.starts_with(keys::EXPORT_POINTER_PREFIX));
        }
        let account = AccountId::parse("acme").unwrap();
        assert!(job_pk(&account, ObjectId::new()).starts_with("A#acme#EXP#"));
    }
}

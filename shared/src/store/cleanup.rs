//! Erasing a user and deleting a segment so that they always finish, at any
//! size, whatever stops the process.
//!
//! A delete happens in two parts:
//! 1. **Hiding**, one transaction: the object and its claim go (from then on
//!    `GET` is `404`, filters and details no longer see it, the `userId` or
//!    name is free) and a *job* item is written that says what is left to
//!    clean up. Either all of it happens or none.
//! 2. **Cleaning up**, in steps that may each be repeated: a user's
//!    conversations, ghosts, memberships (each with its segment's counter, in
//!    one transaction) and the paging cursors resting on it; a segment's
//!    memberships (and its id in each member's profile). The job is removed
//!    last, when nothing is left.
//!
//! The request that deleted works on the clean-up for a while
//! ([`CleanupConfig::inline`], never past its deadline); whatever is left is
//! finished without any client: by the clean-up function in AWS (started by
//! the table's stream when a job is written, and every few minutes by a
//! schedule), by a background task in the local server. Repeating the
//! `DELETE` resumes the clean-up too, and answers `200` while a job exists.
//!
//! Deletions are paced ([`CleanupConfig::pace`]): a user's items share one
//! partition, whose limit is 1,000 writes a second, and the clean-up must
//! leave room for the live traffic of the account.
//!
//! A segment's members are found through the members index, which DynamoDB
//! updates a moment after the table; so a segment's job is removed only by a
//! walk that started [`CleanupConfig::index_settle`] after the segment was
//! hidden and found no member.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, WriteRequest};
use tokio::time::Instant;

use super::items::{Item, JobItem, JobKind, from_item, key, n, s, sort_key, to_item};
use super::keys;
use super::segments::{count_members, still_named};
use super::tx::{Expr, Outcome, Transaction, lock, take};
use super::tx::{claim_of, exists, passed};
use super::{Store, sdk_error};
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::model::{AccountId, ObjectId, Timestamp};

/// How clean-ups run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupConfig {
    /// Most deletions (and profile updates) per second, per clean-up.
    pub pace: u32,
    /// How long a `DELETE` request works on its own clean-up before it
    /// answers and leaves the rest to the background.
    pub inline: Duration,
    /// How long after a segment is hidden the members index is trusted to
    /// show every membership. Zero by default: the local engines update an
    /// index with its table. DynamoDB's global indexes follow the table
    /// within about a second: the template sets 2 s for AWS.
    pub index_settle: Duration,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            pace: 500,
            inline: Duration::from_secs(2),
            index_settle: Duration::ZERO,
        }
    }
}

/// The variables that set [`CleanupConfig`] (`CLEANUP_PACE` in items per
/// second, the others in milliseconds).
pub const PACE_ENV: &str = "CLEANUP_PACE";
pub const INLINE_ENV: &str = "CLEANUP_INLINE_MS";
pub const SETTLE_ENV: &str = "CLEANUP_INDEX_SETTLE_MS";

impl CleanupConfig {
    /// The defaults, with what the environment sets.
    pub fn from_env() -> Self {
        let number = |name: &str| std::env::var(name).ok()?.trim().parse::<u64>().ok();
        let defaults = Self::default();
        Self {
            pace: number(PACE_ENV)
                .map_or(defaults.pace, |p| p.clamp(1, u64::from(u32::MAX)) as u32),
            inline: number(INLINE_ENV).map_or(defaults.inline, Duration::from_millis),
            index_settle: number(SETTLE_ENV).map_or(defaults.index_settle, Duration::from_millis),
        }
    }
}

/// What a sweep of the pending clean-ups did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sweep {
    /// Jobs finished (and removed).
    pub finished: usize,
    /// Jobs still pending when the sweep stopped.
    pub pending: usize,
}

/// Items per clean-up page: deletions go 25 to a `BatchWriteItem`, and a
/// transaction holds 100 actions.
const CLEANUP_PAGE: i32 = 100;
/// What a clean-up keeps in hand before its deadline.
const CLEANUP_MARGIN: Duration = Duration::from_millis(300);

/// Keeps deletions under a rate.
struct Pacer {
    started: Instant,
    done: u64,
    per_second: u32,
    deadline: Deadline,
}

impl Pacer {
    fn new(per_second: u32, deadline: Deadline) -> Self {
        Self {
            started: Instant::now(),
            done: 0,
            per_second,
            deadline,
        }
    }

    /// Whether the work must stop now to answer in time.
    fn out_of_time(&self) -> bool {
        self.deadline.is_within(CLEANUP_MARGIN)
    }

    /// Counts `writes` and waits as long as the pace asks; `false` when that
    /// wait would run past the deadline.
    async fn count(&mut self, writes: usize) -> bool {
        self.done += writes as u64;
        let due = self.started
            + Duration::from_secs_f64(self.done as f64 / f64::from(self.per_second.max(1)));
        let wait = due.saturating_duration_since(Instant::now());
        if self.deadline.remaining() < wait + CLEANUP_MARGIN {
            return false;
        }
        tokio::time::sleep(wait).await;
        true
    }
}

/// What hiding an object removes, besides writing its job: the object's item
/// (under `condition`) and its claim.
struct Hiding {
    sk: &'static str,
    condition: Expr,
    claim_pk: String,
}

impl Store {
    /// Erases a user: hides it (profile and `userId` claim go, a job is
    /// written, in one transaction), then cleans up what remains as far as
    /// the request's time allows. `404` when there is neither a user nor a
    /// clean-up pending for it.
    pub async fn delete_user(&self, account: &AccountId, id: ObjectId) -> Result<(), ApiError> {
        self.hide(JobKind::User, account, id, || async {
            Ok(self.get_profile(account, id).await?.map(|profile| Hiding {
                sk: keys::PROFILE_SK,
                condition: exists(),
                claim_pk: keys::user_id_claim_pk(account, &profile.user_id),
            }))
        })
        .await
    }

    /// Deletes a segment: hides it (segment and name claim go, a job is
    /// written, in one transaction), then takes it out of its members as far
    /// as the request's time allows. `404` when there is neither a segment
    /// nor a clean-up pending for it.
    pub async fn delete_segment(&self, account: &AccountId, id: ObjectId) -> Result<(), ApiError> {
        self.hide(JobKind::Segment, account, id, || async {
            let found = self
                .segments_by_id(account, &BTreeSet::from([id]))
                .await?
                .remove(&id);
            Ok(found.map(|segment| Hiding {
                sk: keys::SEGMENT_SK,
                // A rename in between moves the claim: the delete re-reads.
                condition: still_named(&segment.name),
                claim_pk: keys::segment_name_claim_pk(account, &segment.name),
            }))
        })
        .await
    }

    /// Hides the object `id` of `kind` in one transaction (its item and
    /// claim go, its job is written), reading it with `read` at each attempt,
    /// then works on its clean-up for the time the request allows. When the
    /// object is already gone, a pending job is resumed, and without one the
    /// answer is `404`.
    async fn hide<F, Fut>(
        &self,
        kind: JobKind,
        account: &AccountId,
        id: ObjectId,
        read: F,
    ) -> Result<(), ApiError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<Hiding>, ApiError>>,
    {
        let what = kind.object();
        let object_pk = match kind {
            JobKind::User => keys::user_pk(account, id),
            JobKind::Segment => keys::segment_pk(account, id),
        };
        let job = self
            .until_decided(&format!("delete {what}"), || async {
                let Some(hiding) = read().await? else {
                    return match self.job(id, &object_pk).await? {
                        Some(job) => Ok(ControlFlow::Break(job)),
                        None => Err(ApiError::not_found(what)),
                    };
                };
                let job = JobItem::new(kind, account, id, object_pk.clone());
                let mut transaction = Transaction::default();
                transaction.delete(
                    self.table(),
                    key(&object_pk, hiding.sk),
                    Some(hiding.condition),
                );
                transaction.delete(
                    self.table(),
                    key(hiding.claim_pk, keys::CLAIM_SK),
                    Some(claim_of(id)),
                );
                transaction.put(self.table(), to_item(&job)?, None);
                Ok(match self.commit(transaction).await? {
                    Outcome::Committed => ControlFlow::Break(job),
                    _ => ControlFlow::Continue(()),
                })
            })
            .await?;
        self.clean_up_inline(&job).await
    }

    /// The pending clean-up of the object `id` (whose partition key is
    /// `object_pk`), if any.
    async fn job(&self, id: ObjectId, object_pk: &str) -> Result<Option<JobItem>, ApiError> {
        self.get_consistent("GetItem job", &keys::job_pk(id), object_pk)
            .await?
            .map(from_item)
            .transpose()
    }

    /// Works on a job for the time a request may give it. A clean-up that
    /// fails here is not the request's failure: the object is already gone
    /// for the client, and the background finishes the rest.
    async fn clean_up_inline(&self, job: &JobItem) -> Result<(), ApiError> {
        let deadline = Deadline::current()
            .map(|d| Deadline::at(d.instant() - super::tx::DEADLINE_MARGIN))
            .unwrap_or_else(|| Deadline::after(self.cleanup.inline))
            .or_sooner(self.cleanup.inline);
        match self.finish_job(job, deadline).await {
            Ok(true) => tracing::info!(kind = ?job.kind, "clean-up finished"),
            Ok(false) => tracing::info!(kind = ?job.kind, "clean-up goes on in the background"),
            Err(error) => {
                tracing::warn!(kind = ?job.kind, error = ?error, "clean-up interrupted; the background finishes it")
            }
        }
        Ok(())
    }

    /// Works on every pending clean-up until each is finished or `deadline`
    /// is near. A job left unfinished is touched (a stream event), so that in
    /// AWS another invocation takes it up at once.
    pub async fn run_cleanup(&self, deadline: Deadline) -> Result<Sweep, ApiError> {
        let mut sweep = Sweep::default();
        for partition in keys::job_pks() {
            let mut jobs = self
                .partition_items(None, &partition, Some(CLEANUP_PAGE))
                .send();
            while let Some(item) = jobs.next().await {
                let job: JobItem = from_item(item.map_err(|e| sdk_error("Query jobs", e))?)?;
                if deadline.is_within(CLEANUP_MARGIN) {
                    sweep.pending += 1;
                    self.touch_job(&job).await?;
                    continue;
                }
                match self.finish_job(&job, deadline).await {
                    Ok(true) => sweep.finished += 1,
                    Ok(false) => {
                        sweep.pending += 1;
                        self.touch_job(&job).await?;
                    }
                    // One job's failure does not hold up the others; it
                    // stays for the next sweep.
                    Err(error) => {
                        tracing::warn!(kind = ?job.kind, error = ?error, "a clean-up failed; retried later");
                        sweep.pending += 1;
                    }
                }
            }
        }
        Ok(sweep)
    }

    async fn touch_job(&self, job: &JobItem) -> Result<(), ApiError> {
        let key = key(&job.pk, &job.sk);
        // Gone meanwhile (another worker finished it) is fine; busy is left to the next sweep.
        self.update_if("UpdateItem job", key, passed(), exists())
            .await
            .map(|_| ())
    }

    /// Works on one job until it is finished (`true`, the job item removed)
    /// or the deadline is near (`false`).
    pub(crate) async fn finish_job(
        &self,
        job: &JobItem,
        deadline: Deadline,
    ) -> Result<bool, ApiError> {
        let account = AccountId::parse(&job.account)
            .map_err(|_| ApiError::internal("a clean-up job names a malformed account"))?;
        let mut pacer = Pacer::new(self.cleanup.pace, deadline);
        let finished = match job.kind {
            JobKind::User => self.erase_user_items(&account, job.id, &mut pacer).await?,
            JobKind::Segment => {
                self.remove_segment_members(&account, job, &mut pacer)
                    .await?
            }
        };
        if finished {
            self.client
                .delete_item()
                .table_name(self.table())
                .set_key(Some(key(&job.pk, &job.sk)))
                .send()
                .await
                .map_err(|e| sdk_error("DeleteItem job", e))?;
        }
        Ok(finished)
    }

    /// Removes what remains of an erased user: the items of its collection
    /// and the paging cursors resting on it. `true` when nothing is left.
    async fn erase_user_items(
        &self,
        account: &AccountId,
        user: ObjectId,
        pacer: &mut Pacer,
    ) -> Result<bool, ApiError> {
        let user_pk = keys::user_pk(account, user);
        loop {
            if pacer.out_of_time() {
                return Ok(false);
            }
            let collection = self.page_of_keys(&user_pk, None).await?;
            let cursors = self
                .page_of_keys(
                    &keys::cursors_of_user_pk(account, user),
                    Some(keys::BY_SEGMENT),
                )
                .await?;
            if collection.is_empty() && cursors.is_empty() {
                return Ok(true);
            }
            let mut deletions = cursors;
            let mut written = deletions.len();
            for item in collection {
                let sk = sort_key(&item).to_owned();
                match sk
                    .strip_prefix(keys::MEMBERSHIP_PREFIX)
                    .and_then(|id| id.parse::<ObjectId>().ok())
                {
                    Some(segment) => {
                        self.drop_membership(account, user, segment).await?;
                        written += 2;
                    }
                    None => {
                        deletions.push(key(&user_pk, sk));
                        written += 1;
                    }
                }
            }
            self.batch_delete(deletions).await?;
            if !pacer.count(written).await {
                return Ok(false);
            }
        }
    }

    /// The primary keys of one page of the items whose (index) partition key
    /// is `pk`.
    async fn page_of_keys(
        &self,
        pk: &str,
        index: Option<keys::Index>,
    ) -> Result<Vec<Item>, ApiError> {
        let partition = index.map_or(keys::PK, |index| index.pk);
        let output = self
            .client
            .query()
            .table_name(self.table())
            .set_index_name(index.map(|index| index.name.to_owned()))
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", partition)
            .expression_attribute_values(":p", s(pk))
            .projection_expression("pk, sk")
            .set_consistent_read(index.is_none().then_some(true))
            .limit(CLEANUP_PAGE)
            .send()
            .await
            .map_err(|e| sdk_error("Query clean-up", e))?;
        Ok(output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| {
                key(
                    item.get(keys::PK)
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default(),
                    sort_key(&item),
                )
            })
            .collect())
    }

    /// Deletes the items at `keys` (BatchWriteItem, 25 a call, trying again
    /// what DynamoDB leaves unprocessed).
    pub(crate) async fn batch_delete(&self, keys: Vec<Item>) -> Result<(), ApiError> {
        for chunk in keys.chunks(25) {
            let pending = std::sync::Mutex::new(
                chunk
                    .iter()
                    .map(|key| {
                        DeleteRequest::builder()
                            .set_key(Some(key.clone()))
                            .build()
                            .map(|delete| WriteRequest::builder().delete_request(delete).build())
                            .map_err(|e| ApiError::internal_from("build DeleteRequest", e))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            );
            self.until_decided("BatchWriteItem", || {
                let pending = &pending;
                async move {
                    let output = self
                        .client
                        .batch_write_item()
                        .request_items(self.table(), take(pending))
                        .send()
                        .await
                        .map_err(|e| sdk_error("BatchWriteItem", e))?;
                    let rest = output
                        .unprocessed_items
                        .and_then(|mut u| u.remove(self.table()))
                        .unwrap_or_default();
                    if rest.is_empty() {
                        return Ok(ControlFlow::Break(()));
                    }
                    *lock(pending) = rest;
                    Ok(ControlFlow::Continue(()))
                }
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes a membership item and, in the same transaction, takes one off
    /// its segment's counter when the segment still exists.
    pub(crate) async fn drop_membership(
        &self,
        account: &AccountId,
        user: ObjectId,
        segment: ObjectId,
    ) -> Result<(), ApiError> {
        let membership = key(keys::user_pk(account, user), keys::membership_sk(segment));
        self.until_decided("drop membership", || async {
            let user_pk = keys::user_pk(account, user);
            if !self
                .item_exists(&user_pk, &keys::membership_sk(segment))
                .await?
            {
                return Ok(ControlFlow::Break(()));
            }
            let mut transaction = Transaction::default();
            transaction.delete(self.table(), membership.clone(), Some(exists()));
            if !self
                .segments_by_id(account, &BTreeSet::from([segment]))
                .await?
                .is_empty()
            {
                count_members(&mut transaction, self.table(), account, segment, -1);
            }
            Ok(self.commit(transaction).await?.committed())
        })
        .await
    }

    /// Takes a deleted segment out of its members: its id from each member's
    /// profile (which also moves the profile's `segver`, so a concurrent
    /// change of the member's segments re-reads), then the membership items.
    /// `true` when a walk that started after the index settled found none.
    async fn remove_segment_members(
        &self,
        account: &AccountId,
        job: &JobItem,
        pacer: &mut Pacer,
    ) -> Result<bool, ApiError> {
        let members_pk = keys::segment_members_pk(account, job.id);
        let settled_at = job.created_at + self.cleanup.index_settle.as_millis() as i64;
        loop {
            if pacer.out_of_time() {
                return Ok(false);
            }
            let walk_started = Timestamp::now().millis();
            let memberships = self
                .page_of_keys(&members_pk, Some(keys::BY_SEGMENT))
                .await?;
            if memberships.is_empty() {
                if walk_started >= settled_at {
                    return Ok(true);
                }
                let wait = Duration::from_millis((settled_at - walk_started) as u64);
                if pacer.deadline.remaining() < wait + CLEANUP_MARGIN {
                    return Ok(false);
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            let written = memberships.len() * 2;
            for membership in &memberships {
                if let Some(user) = membership
                    .get(keys::PK)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|pk| keys::user_id_of_pk(pk))
                {
                    self.forget_segment(account, user, job.id).await?;
                }
            }
            self.batch_delete(memberships).await?;
            if !pacer.count(written).await {
                return Ok(false);
            }
        }
    }

    /// Removes `segment` from a user's profile (if the user still exists).
    async fn forget_segment(
        &self,
        account: &AccountId,
        user: ObjectId,
        segment: ObjectId,
    ) -> Result<(), ApiError> {
        let forget = Expr::new("DELETE #segs :gone ADD #segver :one")
            .name("#segs", super::items::attr::SEGMENTS)
            .name("#segver", super::items::attr::SEGMENTS_VERSION)
            .value(":gone", AttributeValue::Ss(vec![segment.to_string()]))
            .value(":one", n(1));
        self.until_decided("forget segment", || async {
            let key = key(keys::user_pk(account, user), keys::PROFILE_SK);
            let written = self
                .update_if("UpdateItem forget segment", key, forget.clone(), exists())
                .await;
            Ok(match written? {
                // The user is gone (being erased): nothing to forget.
                Outcome::ConditionFailed(_) => ControlFlow::Break(()),
                outcome => outcome.committed(),
            })
        })
        .await
    }
}

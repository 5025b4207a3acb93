//! Segments and memberships. A membership lives three times, always changed in
//! one transaction: in the user's `segs` set (for filters and details), as a
//! membership item (the segment's members index), and in the segment's
//! `users` counter. The profile's `segver` makes concurrent changes to one
//! user's segments serialise instead of overwriting each other.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use super::items::{
    ClaimItem, Item, MembershipItem, ProfileItem, SegmentItem, attr, from_item, key, n, s, to_item,
};
use super::size::{MAX_SEGMENTS_PER_USER, check_profile_fits};
use super::tx::{Expr, Outcome, Transaction, absent, claim_of, exists};
use super::users::SEGMENTS_PER_TRANSACTION;
use super::{Store, keys, sdk_error};
use crate::error::{ApiError, FieldError};
use crate::model::{AccountId, ObjectId, Segment, Timestamp};

/// The segment is there and still called `name` (a rename in between moved
/// its name claim, so a change made for the old name must not go through).
pub(crate) fn still_named(name: &str) -> Expr {
    exists().and(
        Expr::new("#segment_name = :current_name")
            .name("#segment_name", attr::SEGMENT_NAME)
            .value(":current_name", s(name)),
    )
}

/// `ADD users :delta` on a segment that still exists.
pub(crate) fn count_members(
    transaction: &mut Transaction,
    table: &str,
    account: &AccountId,
    segment: ObjectId,
    delta: i64,
) {
    transaction.update(
        table,
        key(keys::segment_pk(account, segment), keys::SEGMENT_SK),
        Expr::new("ADD #users :delta")
            .name("#users", "users")
            .value(":delta", n(delta)),
        Some(exists()),
    );
}

/// The membership of `user` (created at `created`) in `segment`, and one
/// more member on the segment's counter.
pub(crate) fn join_segment(
    transaction: &mut Transaction,
    table: &str,
    account: &AccountId,
    (user, created): (ObjectId, Timestamp),
    segment: ObjectId,
) -> Result<(), ApiError> {
    let membership = MembershipItem::new(account, user, created, segment);
    transaction.put(table, to_item(&membership)?, None);
    count_members(transaction, table, account, segment, 1);
    Ok(())
}

/// `400` when a user would belong to more segments than it may.
pub(crate) fn check_segment_count(count: usize) -> Result<(), ApiError> {
    if count <= MAX_SEGMENTS_PER_USER {
        return Ok(());
    }
    Err(ApiError::field(
        "segments",
        format!(
            "a user belongs to at most {MAX_SEGMENTS_PER_USER} segments; this change would make {count}"
        ),
    ))
}

fn unknown_segments(missing: &BTreeSet<ObjectId>) -> ApiError {
    let ids: Vec<String> = missing.iter().map(ToString::to_string).collect();
    ApiError::validation(vec![FieldError::new(
        "segments",
        format!("unknown segment ids: {}", ids.join(", ")),
    )])
}

/// What to do with a user's segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentChange {
    Add,
    Replace,
    Remove,
}

fn name_taken(id: Option<ObjectId>) -> ApiError {
    ApiError::Conflict {
        message: "a segment with this name already exists".into(),
        id: id.map(|id| id.to_string()),
    }
}

/// The user a members-index sort key names: `created#id`, or a bare id in
/// memberships written before the key carried the creation time.
pub(super) fn member_of_sort_key(sort_key: &str) -> Option<ObjectId> {
    keys::id_of_sort_key(sort_key).or_else(|| sort_key.parse().ok())
}

/// What one transaction of a segment change does: at most
/// [`SEGMENTS_PER_TRANSACTION`] segments added and removed; the next attempt
/// goes on with the rest.
struct SegmentStep {
    added: Vec<ObjectId>,
    removed: Vec<ObjectId>,
    /// The step is the whole change.
    whole: bool,
}

impl SegmentStep {
    /// The next step of `change` to `ids` for a user in `current`; `None`
    /// when there is nothing left to change.
    fn next(
        change: SegmentChange,
        ids: &BTreeSet<ObjectId>,
        current: &BTreeSet<ObjectId>,
    ) -> Option<SegmentStep> {
        let (added, removed): (Vec<ObjectId>, Vec<ObjectId>) = match change {
            SegmentChange::Add => (ids.difference(current).copied().collect(), vec![]),
            SegmentChange::Remove => (vec![], ids.intersection(current).copied().collect()),
            SegmentChange::Replace => (
                ids.difference(current).copied().collect(),
                current.difference(ids).copied().collect(),
            ),
        };
        if added.is_empty() && removed.is_empty() {
            return None;
        }
        let whole = added.len() + removed.len() <= SEGMENTS_PER_TRANSACTION;
        let added: Vec<ObjectId> = added.into_iter().take(SEGMENTS_PER_TRANSACTION).collect();
        let removed = removed
            .into_iter()
            .take(SEGMENTS_PER_TRANSACTION - added.len())
            .collect();
        Some(SegmentStep {
            added,
            removed,
            whole,
        })
    }

    /// The user's segments once the step is made.
    fn apply(&self, current: &BTreeSet<ObjectId>) -> BTreeSet<ObjectId> {
        let mut target = current.clone();
        target.extend(&self.added);
        for id in &self.removed {
            target.remove(id);
        }
        target
    }
}

impl Store {
    /// Creates a segment; `409` when the account already has one of that name.
    pub async fn create_segment(
        &self,
        account: &AccountId,
        name: &str,
    ) -> Result<ObjectId, ApiError> {
        let id = ObjectId::new();
        let now = Timestamp::now();
        let segment = SegmentItem {
            pk: keys::segment_pk(account, id),
            sk: keys::SEGMENT_SK.into(),
            id,
            name: name.to_owned(),
            users: 0,
            created_at: now.millis(),
            gsi1pk: keys::segments_index_pk(account),
            gsi1sk: keys::time_sort_key(now, id),
            members_in_creation_order: true,
        };
        let claim_pk = keys::segment_name_claim_pk(account, name);
        self.until_decided("create segment", || async {
            let mut transaction = Transaction::default();
            transaction.put(
                self.table(),
                to_item(&ClaimItem {
                    pk: claim_pk.clone(),
                    sk: keys::CLAIM_SK.into(),
                    id,
                })?,
                Some(absent()),
            );
            transaction.put(self.table(), to_item(&segment)?, Some(absent()));
            let outcome = self.commit(transaction).await?;
            if let Outcome::ConditionFailed(_) = outcome
                && let Some(existing) = self.claim_owner(&claim_pk).await?
            {
                if existing == id {
                    // Written by an earlier attempt of this request
                    // (its Idempotency-Key gives every attempt the same id).
                    return Ok(ControlFlow::Break(()));
                }
                return Err(name_taken(Some(existing)));
            }
            Ok(outcome.committed())
        })
        .await?;
        Ok(id)
    }

    /// The account's segments, oldest first: their keys from the created-at
    /// index (which holds no segment's name), then the segments themselves.
    pub async fn list_segments(&self, account: &AccountId) -> Result<Vec<Segment>, ApiError> {
        let mut wanted = Vec::new();
        let mut entries = self
            .partition_items(
                Some(keys::BY_CREATED),
                &keys::segments_index_pk(account),
                None,
            )
            .send();
        while let Some(entry) = entries.next().await {
            let entry = entry.map_err(|e| sdk_error("Query segments", e))?;
            wanted.push(
                [keys::PK, keys::SK]
                    .into_iter()
                    .filter_map(|name| Some((name.to_owned(), entry.get(name)?.clone())))
                    .collect::<Item>(),
            );
        }
        let mut segments = Vec::with_capacity(wanted.len());
        for item in self.batch_get(wanted, false).await? {
            segments.push(from_item::<SegmentItem>(item)?);
        }
        segments.sort_by(|a, b| a.gsi1sk.cmp(&b.gsi1sk));
        Ok(segments
            .into_iter()
            .map(SegmentItem::into_segment)
            .collect())
    }

    /// Renames a segment; `404` if it does not exist, `409` if the name is taken.
    pub async fn rename_segment(
        &self,
        account: &AccountId,
        id: ObjectId,
        name: &str,
    ) -> Result<(), ApiError> {
        self.until_decided("rename segment", || async {
            let segment = self
                .segments_by_id(account, &BTreeSet::from([id]))
                .await?
                .remove(&id)
                .ok_or_else(|| ApiError::not_found("segment"))?;
            if segment.name == name {
                return Ok(ControlFlow::Break(()));
            }
            let new_claim = keys::segment_name_claim_pk(account, name);
            let mut transaction = Transaction::default();
            transaction.put(
                self.table(),
                to_item(&ClaimItem {
                    pk: new_claim.clone(),
                    sk: keys::CLAIM_SK.into(),
                    id,
                })?,
                Some(absent()),
            );
            transaction.delete(
                self.table(),
                key(
                    keys::segment_name_claim_pk(account, &segment.name),
                    keys::CLAIM_SK,
                ),
                Some(claim_of(id)),
            );
            transaction.update(
                self.table(),
                key(keys::segment_pk(account, id), keys::SEGMENT_SK),
                Expr::new("SET #name = :name")
                    .name("#name", attr::SEGMENT_NAME)
                    .value(":name", s(name)),
                Some(still_named(&segment.name)),
            );
            let outcome = self.commit(transaction).await?;
            if let Outcome::ConditionFailed(_) = outcome
                && let Some(owner) = self.claim_owner(&new_claim).await?
                && owner != id
            {
                return Err(name_taken(Some(owner)));
            }
            Ok(outcome.committed())
        })
        .await
    }

    /// Adds a user to segments (already-present ones are fine).
    pub async fn add_segments(
        &self,
        account: &AccountId,
        user: ObjectId,
        ids: &BTreeSet<ObjectId>,
    ) -> Result<(), ApiError> {
        self.change_segments(account, user, SegmentChange::Add, ids)
            .await
    }

    /// The transaction of one step of a user's segment change: the profile's
    /// set (conditional on the `segver` read), the membership items, and
    /// the counters of the segments still there.
    async fn segment_step(
        &self,
        account: &AccountId,
        user: ObjectId,
        profile: &ProfileItem,
        target: &BTreeSet<ObjectId>,
        step: &SegmentStep,
    ) -> Result<Transaction, ApiError> {
        let still_there = self
            .segments_by_id(account, &step.removed.iter().copied().collect())
            .await?;
        let mut transaction = Transaction::default();
        let set: Vec<String> = target.iter().map(ToString::to_string).collect();
        let update = if set.is_empty() {
            Expr::new("REMOVE #segs SET #segver = :next")
        } else {
            Expr::new("SET #segs = :segs, #segver = :next")
                .value(":segs", aws_sdk_dynamodb::types::AttributeValue::Ss(set))
        }
        .name("#segs", attr::SEGMENTS)
        .name("#segver", attr::SEGMENTS_VERSION)
        .value(":next", n(profile.segver + 1));
        transaction.update(
            self.table(),
            key(keys::user_pk(account, user), keys::PROFILE_SK),
            update,
            Some(Expr::new("#segver = :seen").value(":seen", n(profile.segver))),
        );
        let created = Timestamp::from_millis(profile.created_at);
        for &segment in &step.added {
            join_segment(
                &mut transaction,
                self.table(),
                account,
                (user, created),
                segment,
            )?;
        }
        for &segment in &step.removed {
            let membership = key(keys::user_pk(account, user), keys::membership_sk(segment));
            transaction.delete(self.table(), membership, None);
            if still_there.contains_key(&segment) {
                count_members(&mut transaction, self.table(), account, segment, -1);
            }
        }
        Ok(transaction)
    }

    /// Adds, replaces or removes a user's segments. Unknown ids are `400`
    /// with nothing changed; the user's set, the membership items and the
    /// segments' counters move together, and concurrent changes never
    /// overwrite each other (each transaction is conditional on `segver`).
    pub async fn change_segments(
        &self,
        account: &AccountId,
        user: ObjectId,
        change: SegmentChange,
        ids: &BTreeSet<ObjectId>,
    ) -> Result<(), ApiError> {
        // Removing needs no check here: removing a segment that was just
        // deleted is part of deleting it (the route checks the ids itself).
        if change != SegmentChange::Remove {
            self.require_segments(account, ids).await?;
        }
        self.until_decided("change segments", || async {
            let mut profile = self
                .get_profile(account, user)
                .await?
                .ok_or_else(|| ApiError::not_found("user"))?;
            let current: BTreeSet<ObjectId> =
                profile.segs.iter().filter_map(|s| s.parse().ok()).collect();
            let Some(step) = SegmentStep::next(change, ids, &current) else {
                return Ok(ControlFlow::Break(()));
            };
            let target = step.apply(&current);
            if !step.added.is_empty() {
                check_segment_count(target.len())?;
                profile.segs = target.iter().map(ToString::to_string).collect();
                check_profile_fits(&profile, "segments")?;
            }
            let transaction = self
                .segment_step(account, user, &profile, &target, &step)
                .await?;
            let outcome = self.commit(transaction).await?;
            if let Outcome::ConditionFailed(_) = outcome
                && change != SegmentChange::Remove
            {
                self.require_segments(account, &step.added.iter().copied().collect())
                    .await?;
            }
            if matches!(outcome, Outcome::Committed) && step.whole {
                return Ok(ControlFlow::Break(()));
            }
            // The next attempt re-reads: a lost race is retried, and more
            // changes than one transaction holds go on there.
            Ok(ControlFlow::Continue(()))
        })
        .await
    }
}
impl Store {
    /// `400` naming the ids that are not segments of the account.
    pub async fn require_segments(
        &self,
        account: &AccountId,
        ids: &BTreeSet<ObjectId>,
    ) -> Result<(), ApiError> {
        let found = self.segments_by_id(account, ids).await?;
        let missing: BTreeSet<ObjectId> = ids
            .iter()
            .filter(|id| !found.contains_key(id))
            .copied()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(unknown_segments(&missing))
        }
    }

    /// The account's segments among `ids` (BatchGetItem, consistent).
    pub(crate) async fn segments_by_id(
        &self,
        account: &AccountId,
        ids: &BTreeSet<ObjectId>,
    ) -> Result<BTreeMap<ObjectId, SegmentItem>, ApiError> {
        let wanted = ids
            .iter()
            .map(|&id| key(keys::segment_pk(account, id), keys::SEGMENT_SK))
            .collect();
        let mut found = BTreeMap::new();
        for item in self.batch_get(wanted, true).await? {
            let segment: SegmentItem = from_item(item)?;
            found.insert(segment.id, segment);
        }
        Ok(found)
    }
}

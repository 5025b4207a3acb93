//! Users: create (with the `userId` claim in the same transaction), read,
//! update attributes (optimistic concurrency), ban, and erase.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};

use super::items::{
    ClaimItem, ConversationItem, Item, MembershipItem, ProfileItem, SegmentItem, attr,
    email_index_pk, from_item, key, n, s, to_item,
};
use super::tx::{Expr, MAX_TRANSACTION_ITEMS, Outcome, Transaction, backoff};
use super::{Store, is_condition_failure, keys, sdk_error};
use crate::error::{ApiError, FieldError};
use crate::model::{
    AccountId, Attributes, MAX_ATTRIBUTES, ObjectId, SegmentRef, Timestamp, User, UserDetails,
};
use crate::validate::{AttributePatch, NewUser};

/// How often a write retries after losing a race before answering 503.
pub(crate) const MAX_ATTEMPTS: u32 = 20;

/// Segments whose membership fits in one transaction with the two user items
/// (a membership item and its segment's counter take two actions each).
pub(crate) const SEGMENTS_PER_TRANSACTION: usize = (MAX_TRANSACTION_ITEMS - 2) / 2;

pub(crate) fn exists() -> Expr {
    Expr::new("attribute_exists(pk)")
}

pub(crate) fn absent() -> Expr {
    Expr::new("attribute_not_exists(pk)")
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

fn lost_race() -> ApiError {
    ApiError::Unavailable {
        detail: "write lost too many races".into(),
    }
}

fn unknown_segments(missing: &BTreeSet<ObjectId>) -> ApiError {
    let ids: Vec<String> = missing.iter().map(ToString::to_string).collect();
    ApiError::validation(vec![FieldError::new(
        "segments",
        format!("unknown segment ids: {}", ids.join(", ")),
    )])
}

impl Store {
    /// Creates a user; `409` (naming the existing user) when the `userId` is taken.
    pub async fn create_user(
        &self,
        account: &AccountId,
        new: NewUser,
    ) -> Result<ObjectId, ApiError> {
        self.require_segments(account, &new.segments).await?;
        let now = Timestamp::now();
        let user = User {
            id: ObjectId::new(),
            user_id: new.user_id,
            banned: false,
            attributes: Attributes(new.attributes),
            session_attributes: BTreeMap::new(),
            conversations: 0,
            segments: new
                .segments
                .iter()
                .copied()
                .take(SEGMENTS_PER_TRANSACTION)
                .collect(),
            created_at: now,
            last_seen: now,
        };
        let claim_pk = keys::user_id_claim_pk(account, &user.user_id);
        for attempt in 0..MAX_ATTEMPTS {
            let mut transaction = Transaction::default();
            let claim = ClaimItem {
                pk: claim_pk.clone(),
                sk: keys::CLAIM_SK.into(),
                id: user.id,
            };
            transaction.put(self.table(), to_item(&claim)?, Some(absent()));
            transaction.put(
                self.table(),
                to_item(&ProfileItem::new(account, &user))?,
                Some(absent()),
            );
            for &segment in &user.segments {
                transaction.put(
                    self.table(),
                    to_item(&MembershipItem::new(account, user.id, segment))?,
                    None,
                );
                count_members(&mut transaction, self.table(), account, segment, 1);
            }
            if let Outcome::Committed = self.commit(transaction).await? {
                let rest: BTreeSet<ObjectId> =
                    new.segments.difference(&user.segments).copied().collect();
                if !rest.is_empty() {
                    self.add_segments(account, user.id, &rest).await?;
                }
                return Ok(user.id);
            }
            if let Some(existing) = self.claim_owner(&claim_pk).await? {
                return Err(ApiError::Conflict {
                    message: "a user with this userId already exists".into(),
                    id: Some(existing.to_string()),
                });
            }
            self.require_segments(account, &new.segments).await?;
            backoff(attempt).await;
        }
        Err(lost_race())
    }

    /// The id of the object holding a claim, read consistently.
    pub(crate) async fn claim_owner(&self, claim_pk: &str) -> Result<Option<ObjectId>, ApiError> {
        let found = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(claim_pk, keys::CLAIM_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem claim", e))?;
        found
            .item
            .map(|item| from_item::<ClaimItem>(item).map(|c| c.id))
            .transpose()
    }

    /// The id of the account's user with this `userId`.
    pub async fn find_by_user_id(
        &self,
        account: &AccountId,
        user_id: &str,
    ) -> Result<Option<ObjectId>, ApiError> {
        self.claim_owner(&keys::user_id_claim_pk(account, user_id))
            .await
    }

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

    /// The items at `keys` that exist (BatchGetItem, 100 keys a call, retrying
    /// what DynamoDB leaves unprocessed); `consistent` for strong reads.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>, ApiError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(100) {
            let mut pending = chunk.to_vec();
            for attempt in 0..MAX_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(consistent)
                    .build()
                    .map_err(|e| ApiError::Internal(format!("build BatchGetItem: {e}")))?;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(self.table(), request)
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetItem", e))?;
                let items = output
                    .responses
                    .and_then(|mut r| r.remove(self.table()))
                    .unwrap_or_default();
                self.count_read(items.len() as i32);
                found.extend(items);
                if let Some(mut unprocessed) = output.unprocessed_keys
                    && let Some(rest) = unprocessed.remove(self.table())
                {
                    pending = rest.keys;
                    backoff(attempt).await;
                }
            }
            if !pending.is_empty() {
                return Err(lost_race());
            }
        }
        Ok(found)
    }

    /// Whether an item exists, read consistently.
    pub(crate) async fn item_exists(&self, pk: &str, sk: &str) -> Result<bool, ApiError> {
        let found = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(pk, sk)))
            .projection_expression("pk")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(found.item.is_some())
    }

    /// The profile of a user, read consistently.
    pub async fn get_user(
        &self,
        account: &AccountId,
        id: ObjectId,
    ) -> Result<Option<User>, ApiError> {
        Ok(self
            .get_profile(account, id)
            .await?
            .map(ProfileItem::into_user))
    }

    pub(crate) async fn get_profile(
        &self,
        account: &AccountId,
        id: ObjectId,
    ) -> Result<Option<ProfileItem>, ApiError> {
        let found = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(keys::user_pk(account, id), keys::PROFILE_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem profile", e))?;
        found.item.map(from_item).transpose()
    }

    /// Every item of a user's collection (profile, conversations, memberships): one `Query`.
    pub(crate) async fn user_collection(
        &self,
        account: &AccountId,
        id: ObjectId,
    ) -> Result<Vec<Item>, ApiError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(keys::user_pk(account, id)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Query user", e))?;
            self.count_read(output.scanned_count);
            items.extend(output.items.unwrap_or_default());
            start = output.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// The details form of a user: one `Query` for the user's items and one
    /// batch read for the names of its segments.
    pub async fn user_details(
        &self,
        account: &AccountId,
        id: ObjectId,
    ) -> Result<Option<UserDetails>, ApiError> {
        let mut profile = None;
        let mut conversations = Vec::new();
        for item in self.user_collection(account, id).await? {
            let sk = item
                .get(keys::SK)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if sk == keys::PROFILE_SK {
                profile = Some(from_item::<ProfileItem>(item)?);
            } else if sk.starts_with(keys::CONVERSATION_PREFIX) {
                conversations.push(from_item::<ConversationItem>(item)?.into_conversation());
            }
        }
        let Some(profile) = profile else {
            return Ok(None);
        };
        let user = profile.into_user();
        let names = self.segments_by_id(account, &user.segments).await?;
        // A segment deleted a moment ago may still be listed on the profile; it is not shown.
        let segments = names
            .into_values()
            .map(|segment| SegmentRef {
                id: segment.id,
                name: segment.name,
            })
            .collect();
        Ok(Some(UserDetails::new(user, conversations, segments)))
    }

    /// Sets and unsets attributes; `400` if the user would hold more than 99.
    pub async fn update_attributes(
        &self,
        account: &AccountId,
        id: ObjectId,
        patch: &AttributePatch,
    ) -> Result<(), ApiError> {
        for attempt in 0..MAX_ATTEMPTS {
            let profile = self
                .get_profile(account, id)
                .await?
                .ok_or_else(|| ApiError::not_found("user"))?;
            let mut attributes = Attributes(profile.attrs.clone());
            attributes.apply(patch);
            if attributes.len() > MAX_ATTRIBUTES {
                return Err(ApiError::field(
                    "attributes",
                    format!(
                        "a user holds at most {MAX_ATTRIBUTES} attributes; this update would make {}",
                        attributes.len()
                    ),
                ));
            }
            let email_pk = email_index_pk(account, &attributes.0);
            let mut update = Expr::new(match email_pk {
                Some(_) => "SET #attrs = :attrs, #ver = :next, gsi3pk = :email",
                None => "SET #attrs = :attrs, #ver = :next REMOVE gsi3pk",
            })
            .name("#attrs", attr::ATTRS)
            .name("#ver", attr::VERSION)
            .value(
                ":attrs",
                serde_dynamo::to_attribute_value(&attributes.0)
                    .map_err(|e| ApiError::Internal(e.to_string()))?,
            )
            .value(":next", n(profile.ver + 1))
            .value(":seen", n(profile.ver));
            if let Some(email_pk) = email_pk {
                update = update.value(":email", s(email_pk));
            }
            let written = self
                .client
                .update_item()
                .table_name(self.table())
                .set_key(Some(key(keys::user_pk(account, id), keys::PROFILE_SK)))
                .update_expression(update.text)
                .condition_expression("#ver = :seen")
                .set_expression_attribute_names(Some(update.names))
                .set_expression_attribute_values(Some(update.values))
                .send()
                .await;
            match written {
                Ok(_) => return Ok(()),
                Err(e) if is_condition_failure(&e) => backoff(attempt).await,
                Err(e) => return Err(sdk_error("UpdateItem attributes", e)),
            }
        }
        Err(lost_race())
    }

    /// Marks a user banned or not.
    pub async fn set_banned(
        &self,
        account: &AccountId,
        id: ObjectId,
        banned: bool,
    ) -> Result<(), ApiError> {
        let written = self
            .client
            .update_item()
            .table_name(self.table())
            .set_key(Some(key(keys::user_pk(account, id), keys::PROFILE_SK)))
            .update_expression("SET #banned = :banned")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#banned", attr::BANNED)
            .expression_attribute_values(":banned", AttributeValue::Bool(banned))
            .send()
            .await;
        match written {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Err(ApiError::not_found("user")),
            Err(e) => Err(sdk_error("UpdateItem ban", e)),
        }
    }

    /// Erases a user: profile and `userId` claim first, in one transaction
    /// (from then on the user is gone and its `userId` free), then its
    /// memberships (each with its segment's counter) and conversations.
    pub async fn delete_user(&self, account: &AccountId, id: ObjectId) -> Result<(), ApiError> {
        let mut deleted = false;
        for attempt in 0..MAX_ATTEMPTS {
            let Some(profile) = self.get_profile(account, id).await? else {
                break;
            };
            let mut transaction = Transaction::default();
            transaction.delete(
                self.table(),
                key(keys::user_pk(account, id), keys::PROFILE_SK),
                Some(exists()),
            );
            transaction.delete(
                self.table(),
                key(
                    keys::user_id_claim_pk(account, &profile.user_id),
                    keys::CLAIM_SK,
                ),
                Some(Expr::new("id = :id").value(":id", s(id.to_string()))),
            );
            if let Outcome::Committed = self.commit(transaction).await? {
                deleted = true;
                break;
            }
            backoff(attempt).await;
        }
        if !deleted {
            return match self.get_profile(account, id).await? {
                Some(_) => Err(lost_race()),
                None => Err(ApiError::not_found("user")),
            };
        }
        self.erase_collection(account, id).await
    }

    /// Removes what remains of a deleted user's item collection.
    async fn erase_collection(&self, account: &AccountId, id: ObjectId) -> Result<(), ApiError> {
        for item in self.user_collection(account, id).await? {
            let sk = item
                .get(keys::SK)
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default();
            if let Some(segment) = sk
                .strip_prefix(keys::MEMBERSHIP_PREFIX)
                .and_then(|s| s.parse().ok())
            {
                self.drop_membership(account, id, segment).await?;
            } else {
                self.client
                    .delete_item()
                    .table_name(self.table())
                    .set_key(Some(key(keys::user_pk(account, id), sk)))
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteItem", e))?;
            }
        }
        Ok(())
    }

    /// Deletes a membership item and, in the same transaction, takes one off
    /// its segment's counter (when the segment still exists).
    pub(crate) async fn drop_membership(
        &self,
        account: &AccountId,
        user: ObjectId,
        segment: ObjectId,
    ) -> Result<(), ApiError> {
        for attempt in 0..MAX_ATTEMPTS {
            let mut transaction = Transaction::default();
            transaction.delete(
                self.table(),
                key(keys::user_pk(account, user), keys::membership_sk(segment)),
                Some(exists()),
            );
            count_members(&mut transaction, self.table(), account, segment, -1);
            if let Outcome::Committed = self.commit(transaction).await? {
                return Ok(());
            }
            // Either the membership is already gone or the segment is: drop what is left.
            if !self
                .item_exists(&keys::user_pk(account, user), &keys::membership_sk(segment))
                .await?
            {
                return Ok(());
            }
            let segment_exists = !self
                .segments_by_id(account, &BTreeSet::from([segment]))
                .await?
                .is_empty();
            if !segment_exists {
                self.client
                    .delete_item()
                    .table_name(self.table())
                    .set_key(Some(key(
                        keys::user_pk(account, user),
                        keys::membership_sk(segment),
                    )))
                    .send()
                    .await
                    .map_err(|e| sdk_error("DeleteItem membership", e))?;
                return Ok(());
            }
            backoff(attempt).await;
        }
        Err(lost_race())
    }
}

//! Users: create (with the `userId` claim in the same transaction), read,
//! update attributes (optimistic concurrency), ban, and erase (whose
//! clean-up is in `cleanup`). Every change to a profile is measured first
//! (`size`): one that would not fit DynamoDB is `400` before anything is
//! written.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{ClaimItem, ProfileItem, attr, email_index_pk, from_item, key, n, s, to_item};
use super::segments::{check_segment_count, join_segment};
use super::size::check_profile_fits;
use super::tx::{Expr, MAX_TRANSACTION_ITEMS, Outcome, Transaction, UpdateExpr, absent, exists};
use super::{DETAILS_CONVERSATIONS, Store, keys};
use crate::error::ApiError;
use crate::model::{
    AccountId, Attributes, MAX_ATTRIBUTES, ObjectId, SegmentRef, Timestamp, User, UserDetails,
};
use crate::validate::{AttributePatch, NewUser};

/// Segments whose membership fits in one transaction with the two user items
/// (a membership item and its segment's counter take two actions each).
pub(crate) const SEGMENTS_PER_TRANSACTION: usize = (MAX_TRANSACTION_ITEMS - 2) / 2;

impl Store {
    /// Creates a user; `409` (naming the existing user) when the `userId` is taken.
    pub async fn create_user(
        &self,
        account: &AccountId,
        new: NewUser,
    ) -> Result<ObjectId, ApiError> {
        check_segment_count(new.segments.len())?;
        self.require_segments(account, &new.segments).await?;
        let (user, segments) = first_write(new);
        let profile = ProfileItem::new(account, &user, self.index_shards);
        let mut whole = profile.clone();
        whole.segs = segments.iter().map(ToString::to_string).collect();
        check_profile_fits(&whole, "attributes")?;
        let claim = ClaimItem {
            pk: keys::user_id_claim_pk(account, &user.user_id),
            sk: keys::CLAIM_SK.into(),
            id: user.id,
        };
        let claim_pk = &claim.pk;
        self.until_decided("create user", || async {
            let mut transaction = Transaction::default();
            transaction.put(self.table(), to_item(&claim)?, Some(absent()));
            transaction.put(self.table(), to_item(&profile)?, Some(absent()));
            for &segment in &user.segments {
                let joining = (user.id, user.created_at);
                join_segment(&mut transaction, self.table(), account, joining, segment)?;
            }
            let outcome = self.commit(transaction).await?;
            if let Outcome::ConditionFailed(_) = outcome {
                if let Some(existing) = self.claim_owner(claim_pk).await? {
                    if existing == user.id {
                        // Written by an earlier attempt of this request
                        // (its Idempotency-Key gives every attempt the same id).
                        return Ok(ControlFlow::Break(()));
                    }
                    return Err(ApiError::Conflict {
                        message: "a user with this userId already exists".into(),
                        id: Some(existing.to_string()),
                    });
                }
                self.require_segments(account, &segments).await?;
            }
            Ok(outcome.committed())
        })
        .await?;
        let rest: BTreeSet<ObjectId> = segments.difference(&user.segments).copied().collect();
        if !rest.is_empty() {
            self.add_segments(account, user.id, &rest).await?;
        }
        Ok(user.id)
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
        self.get_consistent(
            "GetItem profile",
            &keys::user_pk(account, id),
            keys::PROFILE_SK,
        )
        .await?
        .map(from_item)
        .transpose()
    }

    /// The details form of a user: its profile, its newest
    /// [`DETAILS_CONVERSATIONS`] conversations (older ones are paged with
    /// [`Store::conversations`]) and the names of its segments. The profile
    /// and the conversations are one `Query` (see `conversations`); the
    /// names of its segments, when it is in any, one `BatchGetItem` more.
    pub async fn user_details(
        &self,
        account: &AccountId,
        id: ObjectId,
    ) -> Result<Option<UserDetails>, ApiError> {
        let Some((profile, newest)) = self
            .profile_and_newest(account, id, DETAILS_CONVERSATIONS)
            .await?
        else {
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
        Ok(Some(UserDetails::new(
            user,
            newest.conversations,
            newest.next,
            segments,
        )))
    }

    /// Sets and unsets attributes; `400` if the user would hold more than 99,
    /// or more bytes than a profile may.
    pub async fn update_attributes(
        &self,
        account: &AccountId,
        id: ObjectId,
        patch: &AttributePatch,
    ) -> Result<(), ApiError> {
        self.until_decided("update attributes", || async {
            let mut profile = self
                .get_profile(account, id)
                .await?
                .ok_or_else(|| ApiError::not_found("user"))?;
            let mut attributes = Attributes(std::mem::take(&mut profile.attrs));
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
            profile.attrs = attributes.0;
            profile.gsi3pk = email_index_pk(account, &profile.attrs);
            check_profile_fits(&profile, "attributes")?;
            let mut update = UpdateExpr::default()
                .set("#ver = :next")
                .patch_map(attr::ATTRS, "a", patch)
                .name("#ver", attr::VERSION)
                .value(":next", n(profile.ver + 1));
            update = match &profile.gsi3pk {
                Some(email_pk) => update
                    .set("#email_pk = :email")
                    .value(":email", s(email_pk)),
                None => update.remove("#email_pk"),
            }
            .name("#email_pk", keys::BY_EMAIL.pk);
            let key = key(keys::user_pk(account, id), keys::PROFILE_SK);
            let unchanged = Expr::new("#ver = :seen").value(":seen", n(profile.ver));
            let written = self
                .update_if("UpdateItem attributes", key, update.build(), unchanged)
                .await?;
            Ok(written.committed())
        })
        .await
    }

    /// Marks a user banned or not.
    pub async fn set_banned(
        &self,
        account: &AccountId,
        id: ObjectId,
        banned: bool,
    ) -> Result<(), ApiError> {
        self.until_decided("ban", || async {
            let key = key(keys::user_pk(account, id), keys::PROFILE_SK);
            let ban = Expr::new("SET #banned = :banned")
                .name("#banned", attr::BANNED)
                .value(":banned", AttributeValue::Bool(banned));
            match self.update_if("UpdateItem ban", key, ban, exists()).await? {
                Outcome::ConditionFailed(_) => Err(ApiError::not_found("user")),
                outcome => Ok(outcome.committed()),
            }
        })
        .await
    }
}

/// The user `new` describes as its creation writes it, in its first
/// [`SEGMENTS_PER_TRANSACTION`] segments (the rest are added after), and
/// all the segments `new` names.
fn first_write(new: NewUser) -> (User, BTreeSet<ObjectId>) {
    let now = Timestamp::now();
    let created_at = new.created_at.unwrap_or(now);
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
        created_at,
        last_seen: new.last_seen.unwrap_or(created_at).max(created_at),
    };
    (user, new.segments)
}

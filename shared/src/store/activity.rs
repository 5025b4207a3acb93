//! Recording activity: a new conversation moves the user's counter, its
//! `lastSeen` (and with it the user's place in the last-seen index) and
//! merges its session attributes, all in one transaction with the
//! conversation item. The profile's conversation count is the
//! optimistic-concurrency check, so concurrent recordings each land.
//! The user's former place in the last-seen index stays behind as a ghost
//! item for as long as a paging snapshot lives. The new place is in the
//! user's shard for the store's current shard count, so a user created
//! before the count grew moves to its new shard at its next conversation
//! (the index entry is rewritten anyway).

use std::ops::ControlFlow;

use super::items::{ConversationItem, GhostItem, ProfileItem, attr, key, n, s, to_item};
use super::size::check_profile_fits;
use super::tx::{Expr, Outcome, Transaction, UpdateExpr, absent};
use super::{Store, keys};
use crate::error::ApiError;
use crate::model::{AccountId, Attributes, MAX_ATTRIBUTES, ObjectId, Timestamp};
use crate::validate::NewConversation;

/// How long a user's former place in the last-seen index is kept: the
/// lifetime of a paging snapshot (see `list`).
pub const GHOST_LIFETIME_SECONDS: i64 = super::list::CURSOR_LIFETIME_SECONDS;

impl Store {
    /// Records a conversation; returns its id. `404` if the user does not exist.
    pub async fn record_conversation(
        &self,
        account: &AccountId,
        user: ObjectId,
        conversation: &NewConversation,
    ) -> Result<ObjectId, ApiError> {
        let id = ObjectId::new();
        self.until_decided("record conversation", || async {
            let mut profile = self
                .get_profile(account, user)
                .await?
                .ok_or_else(|| ApiError::not_found("user"))?;
            apply_session(&mut profile, conversation)?;
            // lastSeen never moves backwards, even when clocks of two writers disagree.
            let now = Timestamp::now().max(Timestamp::from_millis(profile.last_seen));
            let item = ConversationItem {
                pk: keys::user_pk(account, user),
                sk: keys::conversation_sk(id),
                id,
                date: now.millis(),
                first_message: conversation.first_message.clone(),
            };
            let transaction = self.recording(account, &profile, &item, conversation, now)?;
            let outcome = self.commit(transaction).await?;
            if let Outcome::ConditionFailed(failed) = &outcome
                && (failed.contains(&0)
                    || failed.is_empty()
                        && self
                            .get_consistent("GetItem conversation", &item.pk, &item.sk)
                            .await?
                            .is_some())
            {
                // Recorded by an earlier attempt of this request (its
                // Idempotency-Key gives every attempt the same id).
                return Ok(ControlFlow::Break(()));
            }
            Ok(outcome.committed())
        })
        .await?;
        Ok(id)
    }

    /// The transaction that records `item` of the user of `profile`: the
    /// conversation (new), the ghost of the user's place in the last-seen
    /// index, and the profile moved to `now` (conditional on the count read).
    fn recording(
        &self,
        account: &AccountId,
        profile: &ProfileItem,
        item: &ConversationItem,
        conversation: &NewConversation,
        now: Timestamp,
    ) -> Result<Transaction, ApiError> {
        let user = profile.id;
        let ghost = GhostItem {
            pk: keys::user_pk(account, user),
            sk: keys::ghost_sk(&profile.gsi2sk),
            ghost_of: user,
            valid_from: profile.seen_since.unwrap_or(profile.created_at),
            valid_until: now.millis(),
            gsi2pk: profile.gsi2pk.clone(),
            gsi2sk: profile.gsi2sk.clone(),
            expires_at: now.unix_seconds() + GHOST_LIFETIME_SECONDS,
        };
        let mut transaction = Transaction::default();
        transaction.put(self.table(), to_item(item)?, Some(absent()));
        transaction.put(self.table(), to_item(&ghost)?, None);
        transaction.update(
            self.table(),
            key(keys::user_pk(account, user), keys::PROFILE_SK),
            UpdateExpr::default()
                .set("#seen = :now")
                .set("#since = :now")
                .set("#seen_pk = :seen_shard")
                .set("#seen_sk = :seen_key")
                .patch_map(attr::SESSION, "s", &conversation.session_attributes)
                .add("#convs :one")
                .add("#pconvs :one")
                .name("#since", attr::SEEN_SINCE)
                .name("#seen_pk", keys::BY_SEEN.pk)
                .name("#seen_sk", keys::BY_SEEN.sk)
                .name("#seen", attr::LAST_SEEN)
                .name("#convs", attr::CONVERSATIONS)
                .name("#pconvs", attr::CURRENT_CONVERSATIONS)
                .value(":now", n(now.millis()))
                .value(
                    ":seen_shard",
                    s(keys::users_index_pk(
                        account,
                        keys::user_index_shard(user, self.index_shards),
                    )),
                )
                .value(":seen_key", s(keys::time_sort_key(now, user)))
                .value(":one", n(1))
                .build(),
            Some(Expr::new("#convs = :count").value(":count", n(profile.convs))),
        );
        Ok(transaction)
    }
}

/// Merges the conversation's session attributes into the profile's, within
/// the limits of a user.
fn apply_session(
    profile: &mut ProfileItem,
    conversation: &NewConversation,
) -> Result<(), ApiError> {
    let mut session = Attributes(std::mem::take(&mut profile.sess));
    session.apply(&conversation.session_attributes);
    if session.len() > MAX_ATTRIBUTES {
        return Err(ApiError::field(
            "sessionAttributes",
            format!("a user holds at most {MAX_ATTRIBUTES} session attributes"),
        ));
    }
    profile.sess = session.0;
    // Only a value set can make the profile grow; most conversations set
    // none, and measuring means serialising the whole profile.
    if conversation
        .session_attributes
        .values()
        .any(Option::is_some)
    {
        check_profile_fits(profile, "sessionAttributes")?;
    }
    Ok(())
}

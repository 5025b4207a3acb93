//! A user's conversations, newest first, a page at a time. The details of a
//! user show the newest [`DETAILS_CONVERSATIONS`]; `GET
//! /users/{id}/conversations` pages through the rest. So no answer grows
//! with a user's history (Lambda returns at most 6 MB), and no request reads
//! a whole history into memory.
//!
//! A conversation is keyed `P#{its id with every hex digit inverted}`
//! ([`keys::conversation_sk`]) in the user's item collection. Ids are
//! time-ordered (to the second, then by the writer's counter), so the
//! conversations sort right after the profile (`P`), newest first: one
//! forward `Query` from `P` returns the profile and the newest
//! conversations, and the details of a user take one request.
//!
//! Conversations written before that key were keyed `C#{id}`
//! ([`keys::legacy_conversation_sk`]). The profile counts all of a user's
//! conversations (`convs`) and those keyed the current way (`pconvs`), so a
//! user whose counts differ has legacy ones, and its pages merge the two
//! ranges by id. That also covers conversations that a function of the
//! previous version writes while a deployment rolls out: it counts them in
//! `convs` only.

use super::items::{ConversationItem, Item, ProfileItem, from_item, s, sort_key};
use super::{Store, keys, sdk_error};
use crate::error::ApiError;
use crate::model::{AccountId, Conversation, ObjectId};

/// How many conversations the details of a user show (the newest).
pub const DETAILS_CONVERSATIONS: usize = 20;
/// Most conversations one page of `GET /users/{id}/conversations` holds.
pub const MAX_CONVERSATIONS_PAGE: usize = 100;

/// One page of a user's conversations, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationPage {
    pub conversations: Vec<Conversation>,
    /// What to pass as `after` for the older ones; `None` when there are none.
    pub next: Option<ObjectId>,
}

impl ConversationPage {
    /// The newest `limit` of the conversations read from the current and
    /// the legacy ranges, each read as up to `limit + 1` (one more than a
    /// page tells whether older ones follow).
    fn merged(mut read: Vec<Conversation>, legacy: Vec<Conversation>, limit: usize) -> Self {
        read.extend(legacy);
        read.sort_by_key(|c| std::cmp::Reverse(c.id));
        let more = read.len() > limit;
        read.truncate(limit);
        let next = more.then(|| read.last().map(|c| c.id)).flatten();
        Self {
            conversations: read,
            next,
        }
    }
}

/// Where a user's conversations are kept (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Current,
    Legacy,
}

impl Layout {
    /// The sort-key range of the conversations from `after` (included) on
    /// to the oldest, and whether a forward `Query` reads it newest first.
    fn range(self, after: Option<ObjectId>) -> (String, String, bool) {
        match self {
            Layout::Current => (
                after.map_or_else(
                    || keys::CONVERSATION_PREFIX.to_owned(),
                    keys::conversation_sk,
                ),
                format!("{}{}", keys::CONVERSATION_PREFIX, keys::PAST_HEX),
                true,
            ),
            Layout::Legacy => (
                keys::LEGACY_CONVERSATION_PREFIX.to_owned(),
                after.map_or_else(
                    || format!("{}{}", keys::LEGACY_CONVERSATION_PREFIX, keys::PAST_HEX),
                    keys::legacy_conversation_sk,
                ),
                false,
            ),
        }
    }
}

/// Conversations read from one range, newest first.
struct RangeRead {
    conversations: Vec<Conversation>,
    /// Whether the conversation named by `after` was found there.
    found_after: bool,
}

impl Store {
    /// Up to `limit` of a user's conversations older than `after` (the
    /// newest when `None`). `None` when the user does not exist; `400` when
    /// `after` names no conversation of the user.
    pub async fn conversations(
        &self,
        account: &AccountId,
        user: ObjectId,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<Option<ConversationPage>, ApiError> {
        let user_pk = keys::user_pk(account, user);
        let (profile, current) = tokio::try_join!(
            self.get_profile(account, user),
            self.conversation_range(&user_pk, Layout::Current, after, limit + 1)
        )?;
        let Some(profile) = profile else {
            return Ok(None);
        };
        let legacy = self.legacy_range(&profile, after, limit + 1).await?;
        if after.is_some() && !current.found_after && !legacy.found_after {
            return Err(ApiError::field(
                "after",
                "names no conversation of this user",
            ));
        }
        Ok(Some(ConversationPage::merged(
            current.conversations,
            legacy.conversations,
            limit,
        )))
    }

    /// A user's profile and its newest `limit` conversations (one `Query`,
    /// and a second for a user with legacy conversations); `None` when the
    /// user does not exist.
    pub(crate) async fn profile_and_newest(
        &self,
        account: &AccountId,
        user: ObjectId,
        limit: usize,
    ) -> Result<Option<(ProfileItem, ConversationPage)>, ApiError> {
        let user_pk = keys::user_pk(account, user);
        let (_, highest, _) = Layout::Current.range(None);
        let mut items = self
            .query_collection(&user_pk, keys::PROFILE_SK, &highest, true, limit + 2)
            .await?
            .into_iter();
        let Some(first) = items.next() else {
            return Ok(None);
        };
        if sort_key(&first) != keys::PROFILE_SK {
            // Conversations whose user is being erased.
            return Ok(None);
        }
        let profile: ProfileItem = from_item(first)?;
        let current = items
            .map(|item| {
                from_item::<ConversationItem>(item).map(ConversationItem::into_conversation)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let legacy = self.legacy_range(&profile, None, limit + 1).await?;
        let page = ConversationPage::merged(current, legacy.conversations, limit);
        Ok(Some((profile, page)))
    }

    /// The legacy conversations of `profile`'s user from `after` on; none
    /// read when it has none.
    async fn legacy_range(
        &self,
        profile: &ProfileItem,
        after: Option<ObjectId>,
        want: usize,
    ) -> Result<RangeRead, ApiError> {
        if !profile.has_legacy_conversations() {
            return Ok(RangeRead {
                conversations: Vec::new(),
                found_after: false,
            });
        }
        self.conversation_range(&profile.pk, Layout::Legacy, after, want)
            .await
    }

    /// Up to `want` conversations of one range older than `after`, newest first.
    async fn conversation_range(
        &self,
        user_pk: &str,
        layout: Layout,
        after: Option<ObjectId>,
        want: usize,
    ) -> Result<RangeRead, ApiError> {
        let (lowest, highest, forward) = layout.range(after);
        // The range starts at `after` itself, when it is there.
        let read = want + usize::from(after.is_some());
        let mut found_after = false;
        let mut conversations = Vec::with_capacity(read);
        for item in self
            .query_collection(user_pk, &lowest, &highest, forward, read)
            .await?
        {
            let conversation = from_item::<ConversationItem>(item)?.into_conversation();
            if Some(conversation.id) == after {
                found_after = true;
            } else {
                conversations.push(conversation);
            }
        }
        conversations.truncate(want);
        Ok(RangeRead {
            conversations,
            found_after,
        })
    }

    /// Up to `want` items of a user's collection with sort keys from
    /// `lowest` to `highest`, read consistently in the given direction.
    async fn query_collection(
        &self,
        user_pk: &str,
        lowest: &str,
        highest: &str,
        forward: bool,
        want: usize,
    ) -> Result<Vec<Item>, ApiError> {
        let mut items: Vec<Item> = Vec::with_capacity(want);
        // Pages are read as they are consumed: none after the one that
        // completes `want`.
        let mut found = self
            .client
            .query()
            .table_name(self.table())
            .key_condition_expression("#pk = :pk AND #sk BETWEEN :lowest AND :highest")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_values(":pk", s(user_pk))
            .expression_attribute_values(":lowest", s(lowest))
            .expression_attribute_values(":highest", s(highest))
            .scan_index_forward(forward)
            .consistent_read(true)
            .limit(want.clamp(1, i32::MAX as usize) as i32)
            .into_paginator()
            .items()
            .send();
        while items.len() < want
            && let Some(item) = found.next().await
        {
            items.push(item.map_err(|e| sdk_error("Query user collection", e))?);
        }
        Ok(items)
    }
}

//! A user's conversations, newest first, a page at a time. The details of a
//! user show the newest [`DETAILS_CONVERSATIONS`]; `GET
//! /users/{id}/conversations` pages through the rest. So no answer grows
//! with a user's history (Lambda returns at most 6 MB), and no request reads
//! a whole history into memory.
//!
//! Conversation items sort by id (`C#{id}`) in the user's item collection,
//! and ids are time-ordered (to the second, then by the writer's counter),
//! so a backwards `Query` from the end of the `C#` range yields them newest
//! first and stops after the page.

use super::items::{ConversationItem, from_item, s};
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
        if !self.item_exists(&user_pk, keys::PROFILE_SK).await? {
            return Ok(None);
        }
        if let Some(after) = after
            && !self
                .item_exists(&user_pk, &keys::conversation_sk(after))
                .await?
        {
            return Err(ApiError::field(
                "after",
                "names no conversation of this user",
            ));
        }
        self.conversation_page(account, user, after, limit)
            .await
            .map(Some)
    }

    /// Up to `limit` conversations older than `after`, newest first.
    pub(crate) async fn conversation_page(
        &self,
        account: &AccountId,
        user: ObjectId,
        after: Option<ObjectId>,
        limit: usize,
    ) -> Result<ConversationPage, ApiError> {
        let lowest = keys::CONVERSATION_PREFIX.to_owned();
        // The `after` item itself is within the range (BETWEEN includes its
        // ends) and is skipped below.
        let highest = match after {
            Some(after) => keys::conversation_sk(after),
            // Past every `C#…` key, before the next prefix.
            None => format!("{}\u{10FFFF}", keys::CONVERSATION_PREFIX),
        };
        let mut conversations = Vec::with_capacity(limit);
        let mut more = false;
        let mut start = None;
        'pages: loop {
            let want = limit + 1 - conversations.len() + usize::from(after.is_some());
            let output = self
                .client
                .query()
                .table_name(self.table())
                .key_condition_expression("pk = :pk AND sk BETWEEN :lowest AND :highest")
                .expression_attribute_values(":pk", s(keys::user_pk(account, user)))
                .expression_attribute_values(":lowest", s(&lowest))
                .expression_attribute_values(":highest", s(&highest))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(want.min(i32::MAX as usize) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Query conversations", e))?;
            for item in output.items.unwrap_or_default() {
                let conversation = from_item::<ConversationItem>(item)?.into_conversation();
                if Some(conversation.id) == after {
                    continue;
                }
                if conversations.len() == limit {
                    more = true;
                    break 'pages;
                }
                conversations.push(conversation);
            }
            start = output.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let next = more.then(|| conversations.last().map(|c| c.id)).flatten();
        Ok(ConversationPage {
            conversations,
            next,
        })
    }
}

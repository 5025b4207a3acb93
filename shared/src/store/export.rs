//! The users of an export, page by page, as a stream: what lets the export
//! function send rows while it is still reading, in memory that does not grow
//! with the account.
//!
//! - Filters (or none): the account's sort index is read in order with
//!   `Query`, [`EXPORT_PAGE`] items per call and no read budget, filters going
//!   to DynamoDB as the list's `FilterExpression`. Each page of the stream is
//!   what one call matched (a call that matched nobody is skipped), so only
//!   one page is held at a time. By `lastSeen` the walk reads the snapshot at
//!   the export's start, ghosts included, exactly as the list pages (see
//!   `list`): activity during the export neither repeats nor drops a user.
//! - Filters an index answers (equality on `userId`, `default_email` or a
//!   segment, as in the list): when the lookup finds at most the list's
//!   `READ_BUDGET` candidates, they are filtered and sorted in memory;
//!   otherwise the sort index is walked as above.
//! - `users`: at most 1000 profiles are read with `BatchGetItem` (unknown ids
//!   and other accounts' ids simply are not found), sorted in memory in the
//!   requested sort, and handed out a page at a time. 1000 users is the
//!   bound the contract puts on the request, so memory stays bounded too.
//!
//! Every key read starts with the account, so an export never reaches another
//! account's users. Nothing is read until the stream is first polled.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::Stream;

use super::Store;
use super::items::{GhostItem, Item, ProfileItem, attr, from_item, s};
use super::keys::{self, Index};
use super::list::{Entry, index_lookup, sort_index, sort_key_of, walk_filter};
use super::sdk_error;
use crate::error::ApiError;
use crate::export::{ExportRequest, ExportScope};
use crate::filter::{FilterSet, Sort, SortOrder};
use crate::model::{AccountId, Timestamp, User};

/// Items read per `Query` call, and most users per page of the stream.
pub const EXPORT_PAGE: usize = 250;

impl Store {
    /// The users an export covers, in the requested sort, one page (at most
    /// [`EXPORT_PAGE`] users, never empty) per item; the stream ends after
    /// the last user or at the first error.
    pub fn export_users(
        &self,
        account: &AccountId,
        request: &ExportRequest,
    ) -> impl Stream<Item = Result<Vec<User>, ApiError>> + Send + 'static {
        let cursor = Cursor {
            store: self.clone(),
            account: account.clone(),
            sort: request.sort,
            source: Source::Start(request.scope.clone()),
        };
        futures_util::stream::try_unfold(cursor, |mut cursor| async move {
            Ok(cursor.next_page().await?.map(|page| (page, cursor)))
        })
    }
}

/// Where an export is in its reading.
struct Cursor {
    store: Store,
    account: AccountId,
    sort: Sort,
    source: Source,
}

enum Source {
    /// Nothing read yet.
    Start(ExportScope),
    /// Walking the sort index (boxed: it is the large variant).
    Walk(Box<Walk>),
    /// Users already read and sorted (at most 1000), handed out in pages.
    Loaded(std::vec::IntoIter<User>),
    Done,
}

/// A walk of the sort index: the query's fixed parts and where it resumes.
struct Walk {
    index: Index,
    ascending: bool,
    /// The filters, for the users behind ghosts (checked in memory).
    filters: FilterSet,
    filter_text: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    start: Option<Item>,
}

impl Walk {
    /// A walk of the account's index for `sort`. By `lastSeen` it reads the
    /// snapshot at `as_of`, as the list's paging does: a profile counts if it
    /// had its place by then, a ghost if its place was its user's then; so a
    /// user who is active during the export is exported once, at its place
    /// when the export began, and users created since are left out.
    fn new(account: &AccountId, sort: Sort, filters: FilterSet, as_of: Timestamp) -> Self {
        let index = sort_index(sort);
        let mut names = HashMap::from([("#ipk".to_owned(), index.pk.to_owned())]);
        let mut values = HashMap::from([(":ipk".to_owned(), s(keys::users_index_pk(account)))]);
        let filter_text = walk_filter(sort, &filters, Some(as_of), &mut names, &mut values);
        Self {
            index,
            ascending: sort.order == SortOrder::Asc,
            filters,
            filter_text,
            names,
            values,
            start: None,
        }
    }
}

/// Orders users as the sort index would: by the sort's time, ties by id.
fn sort_in_memory(users: &mut [User], sort: Sort) {
    users.sort_by_cached_key(|user| sort_key_of(user, sort));
    if sort.order == SortOrder::Desc {
        users.reverse();
    }
}

impl Cursor {
    /// The next page of users; `None` at the end.
    async fn next_page(&mut self) -> Result<Option<Vec<User>>, ApiError> {
        loop {
            // Whatever fails leaves the cursor done.
            match std::mem::replace(&mut self.source, Source::Done) {
                Source::Start(scope) => self.source = self.open(scope).await?,
                Source::Loaded(mut users) => {
                    let page: Vec<User> = users.by_ref().take(EXPORT_PAGE).collect();
                    if page.is_empty() {
                        return Ok(None);
                    }
                    self.source = Source::Loaded(users);
                    return Ok(Some(page));
                }
                Source::Walk(mut walk) => {
                    let (page, more) = self.store.walk_page(&self.account, &mut walk).await?;
                    if more {
                        self.source = Source::Walk(walk);
                    }
                    if !page.is_empty() {
                        return Ok(Some(page));
                    }
                }
                Source::Done => return Ok(None),
            }
        }
    }

    /// Decides how to read the scope, reading everything at once only when
    /// it is bounded (listed users, a narrow index lookup).
    async fn open(&self, scope: ExportScope) -> Result<Source, ApiError> {
        match scope {
            ExportScope::Users(ids) => {
                let users = self.store.users_by_id(&self.account, &ids).await?;
                Ok(self.loaded(users))
            }
            ExportScope::Filters(filters) => {
                if let Some(lookup) = index_lookup(&filters)
                    && let Some(candidates) = self.store.candidates(&self.account, lookup).await?
                {
                    let matching: Vec<User> = candidates
                        .into_iter()
                        .filter(|user| filters.matches(user))
                        .collect();
                    return Ok(self.loaded(matching));
                }
                Ok(Source::Walk(Box::new(Walk::new(
                    &self.account,
                    self.sort,
                    filters,
                    Timestamp::now(),
                ))))
            }
        }
    }

    fn loaded(&self, mut users: Vec<User>) -> Source {
        sort_in_memory(&mut users, self.sort);
        Source::Loaded(users.into_iter())
    }
}

impl Store {
    /// One `Query` call of a walk: the users it matched, and whether the
    /// index goes on.
    async fn walk_page(
        &self,
        account: &AccountId,
        walk: &mut Walk,
    ) -> Result<(Vec<User>, bool), ApiError> {
        let output = self
            .client
            .query()
            .table_name(self.table())
            .index_name(walk.index.name)
            .key_condition_expression("#ipk = :ipk")
            .set_filter_expression(walk.filter_text.clone())
            .set_expression_attribute_names(Some(walk.names.clone()))
            .set_expression_attribute_values(Some(walk.values.clone()))
            .scan_index_forward(walk.ascending)
            .limit(EXPORT_PAGE as i32)
            .set_exclusive_start_key(walk.start.take())
            .send()
            .await
            .map_err(|e| sdk_error("Query users for export", e))?;
        self.count_read(output.scanned_count);
        let items = output.items.unwrap_or_default();
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            if item.contains_key(attr::GHOST_OF) {
                entries.push(Entry::Ghost(from_item::<GhostItem>(item)?.ghost_of));
            } else {
                entries.push(Entry::User(from_item::<ProfileItem>(item)?.into_user()));
            }
        }
        walk.start = output.last_evaluated_key;
        let users = self
            .resolve_entries(account, entries, &walk.filters)
            .await?;
        Ok((users, walk.start.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::SortField;
    use crate::model::{ObjectId, sample_user};

    #[test]
    fn in_memory_order_is_the_index_order() {
        let user = |seconds: i64, seen: i64| {
            let mut user = sample_user();
            user.id = ObjectId::at_seconds(seconds);
            user.created_at = Timestamp::from_millis(seconds * 1000);
            user.last_seen = Timestamp::from_millis(seen);
            user
        };
        // Two users created in the same millisecond break the tie by id.
        let (a, b, c, d) = (user(1, 40), user(2, 10), user(2, 30), user(3, 20));
        let ids = |users: &[User]| users.iter().map(|u| u.id).collect::<Vec<_>>();
        let mut users = vec![c.clone(), a.clone(), d.clone(), b.clone()];
        sort_in_memory(
            &mut users,
            Sort {
                field: SortField::CreatedAt,
                order: SortOrder::Asc,
            },
        );
        assert_eq!(ids(&users), [a.id, b.id, c.id, d.id]);
        sort_in_memory(
            &mut users,
            Sort {
                field: SortField::CreatedAt,
                order: SortOrder::Desc,
            },
        );
        assert_eq!(ids(&users), [d.id, c.id, b.id, a.id]);
        sort_in_memory(
            &mut users,
            Sort {
                field: SortField::LastSeen,
                order: SortOrder::Desc,
            },
        );
        assert_eq!(ids(&users), [a.id, c.id, d.id, b.id]);
    }
}

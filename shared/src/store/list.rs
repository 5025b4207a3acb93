//! `GET /users` (and the export's walk): users of one account in sort order.
//!
//! The walk reads the account's created-at or last-seen index in order with
//! `Query`, never `Scan`, resuming strictly after the cursor's sort key.
//! Filters go to DynamoDB as a `FilterExpression`; the walk stops when the
//! page is full or a read budget is spent, and then says where to go on.
//! Equality on `userId`, `default_email` or a segment is answered from an
//! index instead: a lookup narrows the account to a handful of candidates,
//! which are filtered and sorted in memory by the reference evaluator.
//!
//! ## Paging by `lastSeen` while activity is recorded
//! Activity moves a user in the last-seen index. So that paging neither
//! repeats nor skips anyone, a last-seen listing pages over a *snapshot*: the
//! first page fixes the instant `asOf`, and `next` names a cursor item that
//! holds `asOf` and the position reached. Each move leaves a ghost item at
//! the user's former place, valid from when the user got there until it
//! moved; a page under snapshot `asOf` shows a profile only if it has been in
//! its place since before `asOf`, and a ghost only if its place was the
//! user's at `asOf` (showing that user's current data). Every user who
//! existed at `asOf` thus sits in exactly one place of the snapshot; users
//! created later are left out of it. Cursors and ghosts live
//! [`CURSOR_LIFETIME_SECONDS`]; an expired cursor is `400`. Passing a user id
//! as `after` (as reference clients do) resumes after that user's current
//! place, without a snapshot.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use super::expression::{ExprValue, filter_expression};
use super::items::{
    CursorItem, GhostItem, Item, ProfileItem, SegmentItem, attr, from_item, key, n, s, to_item,
};
use super::keys::{self, BY_CREATED, BY_EMAIL, BY_SEEN, Index};
use super::{Store, sdk_error};
use crate::error::ApiError;
use crate::filter::{
    Filter, FilterField, FilterSet, FilterValue, ListQuery, Match, Operator, Sort, SortField,
    SortOrder,
};
use crate::model::{AccountId, EMAIL_KEY, ObjectId, Timestamp, User};

/// Most items one request may read while looking for matches.
pub const READ_BUDGET: usize = 1_000;
/// Items read per `Query` call of a filtered walk.
const FILTERED_READ: usize = 250;
/// How long a last-seen paging snapshot (its cursors and ghosts) lives.
pub const CURSOR_LIFETIME_SECONDS: i64 = 3_600;

/// Where a page starts: strictly after `key` in the sort, under snapshot `as_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub key: String,
    pub as_of: Option<Timestamp>,
}

/// One entry of the index as the walk meets it.
pub(super) enum Entry {
    User(User),
    /// A user's former place: resolved to the user after the page is read.
    Ghost(ObjectId),
}

/// One page of users and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub users: Vec<User>,
    /// What to pass as `after` for the following page; `None` at the end.
    pub next: Option<ObjectId>,
}

/// A lookup that narrows the account to a few candidates.
pub(super) enum Lookup<'a> {
    UserId(&'a str),
    Email(&'a str),
    Segment(ObjectId),
}

/// A filter that every result must satisfy and that an index can answer.
pub(super) fn index_lookup(filters: &FilterSet) -> Option<Lookup<'_>> {
    if filters.match_mode == Match::Any && filters.filters.len() != 1 {
        return None;
    }
    filters.filters.iter().find_map(
        |Filter {
             field,
             operator,
             value,
         }| match (field, operator, value) {
            (FilterField::UserId, Operator::Eq, FilterValue::Text(v)) => Some(Lookup::UserId(v)),
            (FilterField::Attribute(k), Operator::Eq, FilterValue::Text(v)) if k == EMAIL_KEY => {
                Some(Lookup::Email(v))
            }
            (FilterField::Segments, Operator::Eq, FilterValue::Segment(id)) => {
                Some(Lookup::Segment(*id))
            }
            _ => None,
        },
    )
}

pub(super) fn sort_index(sort: Sort) -> Index {
    match sort.field {
        SortField::CreatedAt => BY_CREATED,
        SortField::LastSeen => BY_SEEN,
    }
}

pub(super) fn sort_key_of(user: &User, sort: Sort) -> String {
    match sort.field {
        SortField::CreatedAt => keys::time_sort_key(user.created_at, user.id),
        SortField::LastSeen => keys::time_sort_key(user.last_seen, user.id),
    }
}

/// The key condition of a walk of `index`'s partition `pk` that starts
/// strictly after `after` in the walk's direction, with its placeholders.
fn walk_key_condition(
    index: Index,
    pk: String,
    after: Option<&str>,
    ascending: bool,
) -> (
    String,
    HashMap<String, String>,
    HashMap<String, AttributeValue>,
) {
    let mut condition = "#ipk = :ipk".to_owned();
    let mut names = HashMap::from([("#ipk".to_owned(), index.pk.to_owned())]);
    let mut values = HashMap::from([(":ipk".to_owned(), s(pk))]);
    if let Some(after) = after {
        condition.push_str(if ascending {
            " AND #isk > :after"
        } else {
            " AND #isk < :after"
        });
        names.insert("#isk".to_owned(), index.sk.to_owned());
        values.insert(":after".to_owned(), s(after.to_owned()));
    }
    (condition, names, values)
}

pub(super) fn to_attribute_value(value: &ExprValue) -> AttributeValue {
    match value {
        ExprValue::S(text) => AttributeValue::S(text.clone()),
        ExprValue::N(number) => AttributeValue::N(number.to_string()),
        ExprValue::Bool(flag) => AttributeValue::Bool(*flag),
    }
}

/// The `FilterExpression` of a walk over `sort`'s index: the user's filters
/// and, on the last-seen index, the ghost rule — outside a snapshot ghosts are
/// skipped; under snapshot `as_of` a profile counts if it had its place by
/// then and a ghost if its place was its user's then (see the module doc).
/// Adds the placeholders it uses to `names` and `values`.
pub(super) fn walk_filter(
    sort: Sort,
    filters: &FilterSet,
    as_of: Option<Timestamp>,
    names: &mut HashMap<String, String>,
    values: &mut HashMap<String, AttributeValue>,
) -> Option<String> {
    let filter = filter_expression(filters);
    if let Some(filter) = &filter {
        names.extend(filter.names.iter().map(|(k, v)| (k.clone(), v.clone())));
        values.extend(
            filter
                .values
                .iter()
                .map(|(k, v)| (k.clone(), to_attribute_value(v))),
        );
    }
    let user_filter = filter.map(|f| f.text);
    if sort.field != SortField::LastSeen {
        return user_filter;
    }
    names.insert("#ghost".to_owned(), attr::GHOST_OF.to_owned());
    let Some(as_of) = as_of else {
        return Some(match user_filter {
            Some(f) => format!("(attribute_not_exists(#ghost) AND {f})"),
            None => "attribute_not_exists(#ghost)".to_owned(),
        });
    };
    names.extend([
        ("#vfrom".to_owned(), attr::VALID_FROM.to_owned()),
        ("#vuntil".to_owned(), attr::VALID_UNTIL.to_owned()),
        ("#since".to_owned(), attr::SEEN_SINCE.to_owned()),
        ("#created".to_owned(), attr::CREATED_AT.to_owned()),
    ]);
    values.insert(":asof".to_owned(), n(as_of.millis()));
    let placed = "(#since <= :asof OR (attribute_not_exists(#since) AND #created <= :asof))";
    let profile = match user_filter {
        Some(f) => format!("(attribute_not_exists(#ghost) AND {placed} AND {f})"),
        None => format!("(attribute_not_exists(#ghost) AND {placed})"),
    };
    Some(format!(
        "({profile} OR (attribute_exists(#ghost) AND #vfrom <= :asof AND #vuntil > :asof))"
    ))
}

impl Store {
    /// One page of the account's users matching the query.
    pub async fn list_users(
        &self,
        account: &AccountId,
        query: &ListQuery,
    ) -> Result<Page, ApiError> {
        let after = match query.after {
            Some(id) => Some(self.position_of(account, id, query.sort).await?),
            None => None,
        };
        let lookup = index_lookup(&query.filters);
        if let Some(Lookup::Segment(segment)) = lookup
            && query.sort.field == SortField::CreatedAt
            && let Some(page) = self
                .walk_members(
                    account,
                    segment,
                    query,
                    after.as_ref().map(|p| p.key.clone()),
                )
                .await?
        {
            return Ok(page);
        }
        if let Some(lookup) = lookup
            && let Some(candidates) = self.candidates(account, lookup).await?
        {
            return Ok(page_of_candidates(
                candidates,
                query,
                after.map(|p| p.key).as_deref(),
            ));
        }
        self.walk(account, query, after, READ_BUDGET).await
    }

    /// Where the page after `after` starts: after that user's current place,
    /// or where the cursor `after` names.
    async fn position_of(
        &self,
        account: &AccountId,
        id: ObjectId,
        sort: Sort,
    ) -> Result<Position, ApiError> {
        if let Some(user) = self.get_user(account, id).await? {
            return Ok(Position {
                key: sort_key_of(&user, sort),
                as_of: None,
            });
        }
        let found = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(keys::cursor_pk(account, id), keys::CURSOR_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem cursor", e))?;
        let Some(item) = found.item else {
            return Err(ApiError::field("after", "names no user of this account"));
        };
        let cursor: CursorItem = from_item(item)?;
        if cursor.expires_at < Timestamp::now().unix_seconds() {
            return Err(ApiError::field(
                "after",
                "this paging cursor has expired; start again from the first page",
            ));
        }
        if sort.field != SortField::LastSeen {
            return Err(ApiError::field(
                "after",
                "this cursor belongs to a listing sorted by lastSeen",
            ));
        }
        Ok(Position {
            key: cursor.position,
            as_of: Some(Timestamp::from_millis(cursor.as_of)),
        })
    }

    /// A cursor for the page after `key` under snapshot `as_of`. It lives as
    /// long as the snapshot's ghosts are sure to: a ghost left at any time
    /// after `as_of` lives at least [`CURSOR_LIFETIME_SECONDS`] from then.
    /// It is indexed under the user at `key`, so erasing that user removes it.
    async fn mint_cursor(
        &self,
        account: &AccountId,
        key_after: String,
        as_of: Timestamp,
    ) -> Result<ObjectId, ApiError> {
        let id = ObjectId::new();
        let cursor = CursorItem {
            pk: keys::cursor_pk(account, id),
            sk: keys::CURSOR_SK.to_owned(),
            gsi4pk: keys::id_of_sort_key(&key_after)
                .map(|user| keys::cursors_of_user_pk(account, user)),
            gsi4sk: Some(id.to_string()),
            position: key_after,
            as_of: as_of.millis(),
            expires_at: as_of.unix_seconds() + CURSOR_LIFETIME_SECONDS,
        };
        self.client
            .put_item()
            .table_name(self.table())
            .set_item(Some(to_item(&cursor)?))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem cursor", e))?;
        Ok(id)
    }

    /// Walks the sort index from `after`, filtering in DynamoDB, until the
    /// page is full, the index ends, or `budget` items have been read.
    pub(crate) async fn walk(
        &self,
        account: &AccountId,
        query: &ListQuery,
        after: Option<Position>,
        budget: usize,
    ) -> Result<Page, ApiError> {
        let index = sort_index(query.sort);
        let ascending = query.sort.order == SortOrder::Asc;
        let by_seen = query.sort.field == SortField::LastSeen;
        let limit = query.limit as usize;
        let (key_condition, mut names, mut values) = walk_key_condition(
            index,
            keys::users_index_pk(account),
            after.as_ref().map(|p| p.key.as_str()),
            ascending,
        );
        // By lastSeen every page reads a snapshot, the first one too: fixed
        // before anything is read, so activity during the read moves nobody
        // into or out of the page.
        let as_of = match after.as_ref().and_then(|p| p.as_of) {
            Some(as_of) => Some(as_of),
            None if by_seen => Some(Timestamp::now()),
            None => None,
        };
        let filter_text = walk_filter(query.sort, &query.filters, as_of, &mut names, &mut values);
        let filtered = filter_text.is_some();
        let mut entries: Vec<Entry> = Vec::with_capacity(limit);
        let mut last_key: Option<String> = None;
        let mut more = false;
        let mut read = 0usize;
        let mut start: Option<Item> = None;
        'pages: loop {
            // Unfiltered, one item beyond the page tells whether another page exists.
            let want = if filtered {
                FILTERED_READ.min(budget - read)
            } else {
                limit - entries.len() + 1
            };
            let output = self
                .client
                .query()
                .table_name(self.table())
                .index_name(index.name)
                .key_condition_expression(&key_condition)
                .set_filter_expression(filter_text.clone())
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(ascending)
                .limit(want as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query users", e))?;
            read += output.scanned_count.max(0) as usize;
            for item in output.items.unwrap_or_default() {
                if entries.len() == limit {
                    more = true;
                    break 'pages;
                }
                let sort_key = item
                    .get(index.sk)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                if item.contains_key(attr::GHOST_OF) {
                    entries.push(Entry::Ghost(from_item::<GhostItem>(item)?.ghost_of));
                } else {
                    entries.push(Entry::User(from_item::<ProfileItem>(item)?.into_user()));
                }
                last_key = Some(sort_key);
            }
            let Some(evaluated) = output.last_evaluated_key else {
                break;
            };
            if entries.len() == limit {
                more = true;
                break;
            }
            if read >= budget {
                // The page is short: go on after the last item read, matched or not.
                last_key = evaluated.get(index.sk).and_then(|v| v.as_s().ok()).cloned();
                more = true;
                break;
            }
            start = Some(evaluated);
        }
        let users = self
            .resolve_entries(account, entries, &query.filters)
            .await?;
        let next = match last_key.filter(|_| more) {
            None => None,
            Some(key) if by_seen => Some(
                self.mint_cursor(account, key, as_of.unwrap_or_else(Timestamp::now))
                    .await?,
            ),
            Some(key) => keys::id_of_sort_key(&key),
        };
        Ok(Page { users, next })
    }

    /// A page of a segment's members in creation order. The members index is
    /// sorted like the created-at index, so the page reads the members from
    /// `after` on (one `Query`) and their profiles (one `BatchGetItem`, which
    /// also fetches the segment: a deleted segment has no members, whatever
    /// clean-up is still under way). The other filters are applied to the
    /// profiles; while they reject users the walk reads on, within
    /// [`READ_BUDGET`]. `None` for a segment older than ordered memberships
    /// (see [`SegmentItem`]): the caller lists it another way.
    async fn walk_members(
        &self,
        account: &AccountId,
        segment: ObjectId,
        query: &ListQuery,
        after: Option<String>,
    ) -> Result<Option<Page>, ApiError> {
        let ascending = query.sort.order == SortOrder::Asc;
        let limit = query.limit as usize;
        let only_the_segment = query.filters.filters.len() == 1;
        let mut users: Vec<User> = Vec::with_capacity(limit);
        let mut start: Option<Item> = None;
        let mut last_read: Option<String> = after.clone();
        let mut read = 0usize;
        let mut segment_checked = false;
        loop {
            // One member beyond the page tells whether another page exists.
            let want = if only_the_segment {
                limit - users.len() + 1
            } else {
                FILTERED_READ
                    .min(READ_BUDGET - read)
                    .max(limit - users.len() + 1)
            };
            let (key_condition, names, values) = walk_key_condition(
                keys::BY_SEGMENT,
                keys::segment_members_pk(account, segment),
                after.as_deref(),
                ascending,
            );
            let output = self
                .client
                .query()
                .table_name(self.table())
                .index_name(keys::BY_SEGMENT.name)
                .key_condition_expression(key_condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .scan_index_forward(ascending)
                .limit(want as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_error("Query members", e))?;
            let members: Vec<(String, ObjectId)> = output
                .items
                .unwrap_or_default()
                .iter()
                .filter_map(|item| {
                    let sort_key = item.get(keys::BY_SEGMENT.sk)?.as_s().ok()?;
                    Some((
                        sort_key.clone(),
                        super::segments::member_of_sort_key(sort_key)?,
                    ))
                })
                .collect();
            read += members.len();
            let mut wanted: Vec<Item> = members
                .iter()
                .map(|(_, id)| key(keys::user_pk(account, *id), keys::PROFILE_SK))
                .collect();
            let segment_key = key(keys::segment_pk(account, segment), keys::SEGMENT_SK);
            // The segment goes with the first profiles; when there are none
            // after `after`, it alone says whether this was the end or the
            // segment's memberships predate the ordered key.
            if !segment_checked && (!wanted.is_empty() || after.is_some()) {
                wanted.push(segment_key.clone());
            }
            let mut profiles: HashMap<ObjectId, User> = HashMap::new();
            let mut segment_found = None;
            for item in self.batch_get(wanted, false).await? {
                if item.get(keys::PK) == segment_key.get(keys::PK) {
                    segment_found = Some(from_item::<SegmentItem>(item)?);
                    continue;
                }
                let user = from_item::<ProfileItem>(item)?.into_user();
                profiles.insert(user.id, user);
            }
            read += profiles.len();
            if !segment_checked && (!members.is_empty() || after.is_some()) {
                match segment_found {
                    None => return Ok(Some(Page::default())),
                    Some(found) if !found.members_in_creation_order => return Ok(None),
                    Some(_) => segment_checked = true,
                }
            }
            for (sort_key, id) in members {
                if users.len() == limit {
                    let next = users.last().map(|u| u.id);
                    return Ok(Some(Page { users, next }));
                }
                last_read = Some(sort_key);
                // A member whose profile is gone is being erased: not shown.
                if let Some(user) = profiles.remove(&id)
                    && query.filters.matches(&user)
                {
                    users.push(user);
                }
            }
            let Some(evaluated) = output.last_evaluated_key else {
                return Ok(Some(Page { users, next: None }));
            };
            if users.len() == limit {
                let next = users.last().map(|u| u.id);
                return Ok(Some(Page { users, next }));
            }
            if read >= READ_BUDGET {
                // The page is short: go on after the last member read.
                let next = last_read.as_deref().and_then(keys::id_of_sort_key);
                return Ok(Some(Page { users, next }));
            }
            start = Some(evaluated);
        }
    }

    /// Turns a page's entries into users, fetching the users behind ghosts
    /// (and filtering them in memory, since a ghost holds no attributes).
    pub(super) async fn resolve_entries(
        &self,
        account: &AccountId,
        entries: Vec<Entry>,
        filters: &FilterSet,
    ) -> Result<Vec<User>, ApiError> {
        let ghosts: Vec<ObjectId> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Ghost(id) => Some(*id),
                Entry::User(_) => None,
            })
            .collect();
        let mut behind: HashMap<ObjectId, User> = if ghosts.is_empty() {
            HashMap::new()
        } else {
            self.users_by_id(account, &ghosts)
                .await?
                .into_iter()
                .map(|u| (u.id, u))
                .collect()
        };
        Ok(entries
            .into_iter()
            .filter_map(|entry| match entry {
                Entry::User(user) => Some(user),
                Entry::Ghost(id) => behind.remove(&id).filter(|user| filters.matches(user)),
            })
            .collect())
    }

    /// The users an index lookup finds, or `None` when there are too many to
    /// handle in memory (the caller then walks the sort index instead).
    pub(super) async fn candidates(
        &self,
        account: &AccountId,
        lookup: Lookup<'_>,
    ) -> Result<Option<Vec<User>>, ApiError> {
        match lookup {
            Lookup::UserId(user_id) => {
                let Some(id) = self.find_by_user_id(account, user_id).await? else {
                    return Ok(Some(Vec::new()));
                };
                Ok(Some(
                    self.get_user(account, id).await?.into_iter().collect(),
                ))
            }
            Lookup::Email(email) => {
                let mut users = Vec::new();
                let mut start = None;
                loop {
                    let output = self
                        .client
                        .query()
                        .table_name(self.table())
                        .index_name(BY_EMAIL.name)
                        .key_condition_expression("#pk = :pk")
                        .expression_attribute_names("#pk", BY_EMAIL.pk)
                        .expression_attribute_values(":pk", s(keys::email_pk(account, email)))
                        .limit(FILTERED_READ as i32)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| sdk_error("Query email", e))?;
                    for item in output.items.unwrap_or_default() {
                        users.push(from_item::<ProfileItem>(item)?.into_user());
                    }
                    if users.len() > READ_BUDGET {
                        return Ok(None);
                    }
                    start = output.last_evaluated_key;
                    if start.is_none() {
                        return Ok(Some(users));
                    }
                }
            }
            Lookup::Segment(segment) => {
                let found = self
                    .segments_by_id(account, &BTreeSet::from([segment]))
                    .await?;
                let Some(found) = found.get(&segment) else {
                    // A deleted segment has no members, whatever cleanup is still under way.
                    return Ok(Some(Vec::new()));
                };
                if found.users > READ_BUDGET as i64 {
                    // Its counter says the lookup would run out of budget (the
                    // counter only picks the strategy; both give the same page).
                    return Ok(None);
                }
                let mut members = Vec::new();
                let mut start = None;
                loop {
                    let (page, next) = self
                        .segment_members(account, segment, start, FILTERED_READ as i32)
                        .await?;
                    members.extend(page);
                    if members.len() > READ_BUDGET {
                        return Ok(None);
                    }
                    start = next;
                    if start.is_none() {
                        break;
                    }
                }
                self.users_by_id(account, &members).await.map(Some)
            }
        }
    }

    /// Profiles of the given users (BatchGetItem, 100 at a time); missing ones are skipped.
    pub async fn users_by_id(
        &self,
        account: &AccountId,
        ids: &[ObjectId],
    ) -> Result<Vec<User>, ApiError> {
        let wanted = ids
            .iter()
            .map(|&id| key(keys::user_pk(account, id), keys::PROFILE_SK))
            .collect();
        let mut users = Vec::with_capacity(ids.len());
        for item in self.batch_get(wanted, false).await? {
            users.push(from_item::<ProfileItem>(item)?.into_user());
        }
        Ok(users)
    }
}

/// Filters, sorts and cuts a candidate set exactly as the walk would.
fn page_of_candidates(mut candidates: Vec<User>, query: &ListQuery, after: Option<&str>) -> Page {
    let ascending = query.sort.order == SortOrder::Asc;
    let mut keyed: Vec<(String, User)> = candidates
        .drain(..)
        .filter(|user| query.filters.matches(user))
        .map(|user| (sort_key_of(&user, query.sort), user))
        .filter(|(sort_key, _)| match after {
            Some(after) if ascending => sort_key.as_str() > after,
            Some(after) => sort_key.as_str() < after,
            None => true,
        })
        .collect();
    keyed.sort_by(|a, b| {
        if ascending {
            a.0.cmp(&b.0)
        } else {
            b.0.cmp(&a.0)
        }
    });
    let limit = query.limit as usize;
    let more = keyed.len() > limit;
    let users: Vec<User> = keyed
        .into_iter()
        .take(limit)
        .map(|(_, user)| user)
        .collect();
    let next = if more {
        users.last().map(|u| u.id)
    } else {
        None
    };
    Page { users, next }
}

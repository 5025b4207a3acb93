//! `GET /users` (and the export's walk): users of one account in sort order.
//!
//! The walk reads the account's created-at or last-seen index in order with
//! `Query`, never `Scan` (all its shards, merged: `index_walk`), resuming
//! strictly after the cursor's sort key. The indexes hold keys and what
//! activity never changes, not profiles, so the walk fetches the profiles
//! of the entries it keeps (`BatchGetItem`; on the created-at index, only
//! those whose copy passes the filters) and filters them in memory with the
//! reference evaluator;
//! it stops when the page is full or a read budget is spent, and then says
//! where to go on.
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

use super::index_walk::{IndexWalk, key_condition};
use super::items::{CursorItem, Item, ProfileItem, SegmentItem, from_item, key, to_item};
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

    /// Walks the sort index from `after` (all its shards, merged) until the
    /// page is full, the index ends, or `budget` index entries have been
    /// read. The entries that count (the snapshot rule, see the module doc)
    /// are fetched a batch at a time and filtered in memory. One loop on
    /// purpose (about 70 lines): each of its exits is a way a page ends, and
    /// each decides `next`; apart, they would hand that state around.
    pub(crate) async fn walk(
        &self,
        account: &AccountId,
        query: &ListQuery,
        after: Option<Position>,
        budget: usize,
    ) -> Result<Page, ApiError> {
        let by_seen = query.sort.field == SortField::LastSeen;
        let limit = query.limit as usize;
        let filtered = !query.filters.filters.is_empty();
        // By lastSeen every page reads a snapshot, the first one too: fixed
        // before anything is read, so activity during the read moves nobody
        // into or out of the page.
        let as_of = match after.as_ref().and_then(|p| p.as_of) {
            Some(as_of) => Some(as_of),
            None if by_seen => Some(Timestamp::now()),
            None => None,
        };
        let mut walk = self.sort_walk(account, query, after.as_ref());
        let mut users: Vec<User> = Vec::with_capacity(limit);
        let mut last_key: Option<String> = None;
        let mut more = false;
        // A filter the created-at index decides ([`IndexEntry::may_match`])
        // fetches only matches: full batches. Otherwise a filtered walk
        // fetches four pages' worth of profiles first (a filter that one
        // user in four passes fills the page with one `BatchGetItem`), then
        // twice as many each time, so a rare match soon reads in full batches.
        let mut batch = if walk.decides_on_copies() {
            FILTERED_READ
        } else {
            (4 * (limit + 1)).min(FILTERED_READ)
        };
        'batches: loop {
            // Unfiltered, one entry beyond the page tells whether another page exists.
            let want = if filtered {
                batch.min(budget.saturating_sub(walk.read())).max(1)
            } else {
                limit - users.len() + 1
            };
            batch = (batch * 2).min(FILTERED_READ);
            let entries = walk.next(want).await?;
            if entries.is_empty() {
                break;
            }
            for (entry, user) in self
                .matching_users(account, entries, as_of, &query.filters)
                .await?
            {
                if users.len() == limit {
                    more = true;
                    break 'batches;
                }
                users.extend(user);
                last_key = Some(entry.sort_key);
            }
            if users.len() == limit || walk.read() >= budget {
                // A full page, or a short one that goes on after the last
                // entry read, matched or not.
                more = !walk.finished();
                break;
            }
        }
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

    /// The walk of the account's sort index for `query`, from `after`.
    fn sort_walk(
        &self,
        account: &AccountId,
        query: &ListQuery,
        after: Option<&Position>,
    ) -> IndexWalk {
        let limit = query.limit as usize;
        // A filtered walk's first reads stay near one batch, however many shards.
        let first_read = if query.filters.filters.is_empty() {
            limit + 1
        } else {
            FILTERED_READ
                .div_ceil(usize::from(self.index_shards))
                .max(limit + 1)
        };
        IndexWalk::new(
            self,
            sort_index(query.sort),
            keys::users_index_pks(account, self.index_shards),
            query.sort.order == SortOrder::Asc,
            None,
            after.map(|p| p.key.as_str()),
            first_read,
        )
        .deciding(&query.filters)
    }

    /// A page of a segment's members in creation order. The members index is
    /// sorted like the created-at index, so the page reads the members from
    /// `after` on (one `Query`) and their profiles (one `BatchGetItem`, which
    /// also fetches the segment: a deleted segment has no members, whatever
    /// clean-up is still under way). The other filters are applied to the
    /// profiles; while they reject users the walk reads on, within
    /// [`READ_BUDGET`]. `None` for a segment older than ordered memberships
    /// (see [`SegmentItem`]): the caller lists it another way. One loop on
    /// purpose (about 80 lines), as [`Store::walk`]: each exit is a way the
    /// page ends, and decides `next`.
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
            let (members, evaluated) = self
                .members_after(
                    account,
                    segment,
                    after.as_deref(),
                    ascending,
                    want,
                    start.take(),
                )
                .await?;
            read += members.len();
            // The segment goes with the first profiles; when there are none
            // after `after`, it alone says whether this was the end or the
            // segment's memberships predate the ordered key.
            let with_segment = !segment_checked && (!members.is_empty() || after.is_some());
            let (mut profiles, segment_found) = self
                .profiles_of_members(account, &members, with_segment.then_some(segment))
                .await?;
            read += profiles.len();
            if with_segment {
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
            let Some(evaluated) = evaluated else {
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

    /// One `Query` of a segment's members index from `after` (and, within
    /// the query, from `start`): each member's sort key and id, and where the
    /// query stopped when it did not reach the end.
    async fn members_after(
        &self,
        account: &AccountId,
        segment: ObjectId,
        after: Option<&str>,
        ascending: bool,
        want: usize,
        start: Option<Item>,
    ) -> Result<(Vec<(String, ObjectId)>, Option<Item>), ApiError> {
        let (key_condition, names, values) = key_condition(
            keys::BY_SEGMENT,
            keys::segment_members_pk(account, segment),
            None,
            after,
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
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("Query members", e))?;
        let members = output
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
        Ok((members, output.last_evaluated_key))
    }

    /// The profiles of `members` (one `BatchGetItem`), with the segment's
    /// item when `segment` is given (`None` in the second place when it is
    /// not there).
    async fn profiles_of_members(
        &self,
        account: &AccountId,
        members: &[(String, ObjectId)],
        segment: Option<ObjectId>,
    ) -> Result<(HashMap<ObjectId, User>, Option<SegmentItem>), ApiError> {
        let mut wanted: Vec<Item> = members
            .iter()
            .map(|(_, id)| key(keys::user_pk(account, *id), keys::PROFILE_SK))
            .collect();
        let segment_pk = segment.map(|segment| keys::segment_pk(account, segment));
        if let Some(pk) = &segment_pk {
            wanted.push(key(pk, keys::SEGMENT_SK));
        }
        let mut profiles = HashMap::new();
        let mut segment_found = None;
        for item in self.batch_get(wanted, false).await? {
            let pk = item.get(keys::PK).and_then(|pk| pk.as_s().ok());
            if segment_pk.is_some() && pk == segment_pk.as_ref() {
                segment_found = Some(from_item::<SegmentItem>(item)?);
                continue;
            }
            let user = from_item::<ProfileItem>(item)?.into_user();
            profiles.insert(user.id, user);
        }
        Ok((profiles, segment_found))
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
            Lookup::Email(email) => self.users_with_email(account, email).await,
            Lookup::Segment(segment) => self.members_of(account, segment).await,
        }
    }

    /// The users with the e-mail address `email` (see [`Store::candidates`]).
    async fn users_with_email(
        &self,
        account: &AccountId,
        email: &str,
    ) -> Result<Option<Vec<User>>, ApiError> {
        // The index holds keys only: the users are fetched by id.
        let pk = keys::email_pk(account, email);
        let user_of = |item: &Item| keys::user_id_of_pk(item.get(keys::PK)?.as_s().ok()?);
        self.users_in_partition(account, BY_EMAIL, &pk, user_of)
            .await
    }

    /// The members of `segment` (see [`Store::candidates`]).
    async fn members_of(
        &self,
        account: &AccountId,
        segment: ObjectId,
    ) -> Result<Option<Vec<User>>, ApiError> {
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
        let pk = keys::segment_members_pk(account, segment);
        let member_of = |item: &Item| {
            super::segments::member_of_sort_key(item.get(keys::BY_SEGMENT.sk)?.as_s().ok()?)
        };
        self.users_in_partition(account, keys::BY_SEGMENT, &pk, member_of)
            .await
    }

    /// The users (`id_of` each entry) of the partition `pk` of `index`, read
    /// page after page; `None` once they pass [`READ_BUDGET`].
    async fn users_in_partition(
        &self,
        account: &AccountId,
        index: Index,
        pk: &str,
        id_of: impl Fn(&Item) -> Option<ObjectId>,
    ) -> Result<Option<Vec<User>>, ApiError> {
        let mut ids = Vec::new();
        let mut items = self
            .partition_items(Some(index), pk, Some(FILTERED_READ as i32))
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| sdk_error(&format!("Query {}", index.name), e))?;
            ids.extend(id_of(&item));
            if ids.len() > READ_BUDGET {
                return Ok(None);
            }
        }
        self.users_by_id(account, &ids).await.map(Some)
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

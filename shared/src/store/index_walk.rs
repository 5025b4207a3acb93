//! Reading an account's sort index as one ordered sequence, though it is
//! written in N shards (`keys::users_index_pk`): each shard is read in order
//! with `Query`, a page at a time, and the shards' entries are merged by sort
//! key, so a walk hands out exactly the order one unsharded index would.
//! An entry is handed out only when every shard that is not read to its end
//! has an entry buffered, so nothing a shard has not yet returned can sort
//! before it. Sort keys (`{millis}#{id}`) are unique per user, so positions
//! (`after`, cursors, export positions) are plain sort keys, exact across
//! shards.
//!
//! The user indexes carry keys and a few attributes, not profiles (see
//! [`keys::BY_CREATED`]): a walk decides on entries from the index alone
//! (the last-seen snapshot rule; on the created-at index, filters that
//! ignore activity, [`IndexEntry::may_match`]) and then fetches the profiles
//! of the ones it keeps with `BatchGetItem` ([`Store::users_of_entries`]);
//! filters are applied to those profiles by the reference evaluator.
//!
//! A walk keeps its own `ExclusiveStartKey` per shard rather than using the
//! SDK's paginator (which the store's other multi-page reads use): each
//! `Query` asks for as many entries as the page still needs, so its `Limit`
//! changes from one request to the next, and a walk ends mid-partition and
//! is resumed, a request later, from the position it handed out.

use std::collections::{BTreeMap, HashMap, VecDeque};

use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::try_join_all;
use serde::Deserialize;

use super::items::{Item, ProfileItem, attr, from_item, key, s};
use super::keys::{self, Index};
use super::{Store, sdk_error};
use crate::error::ApiError;
use crate::filter::FilterSet;
use crate::model::{AccountId, Attributes, ObjectId, Timestamp, User};

/// Sort keys from `from` to `to`, both included (prefixes of time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KeyRange {
    pub from: String,
    pub to: String,
}

/// The key condition of a `Query` of `index`'s partition `pk`: within
/// `range` when given, strictly after `after` in the walk's direction when
/// given (with a range, `after` replaces the range's near end, and the
/// caller skips the entry at `after` itself, since `BETWEEN` includes it).
pub(super) fn key_condition(
    index: Index,
    pk: String,
    range: Option<&KeyRange>,
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
    match (range, after) {
        (None, None) => return (condition, names, values),
        (None, Some(after)) => {
            condition.push_str(if ascending {
                " AND #isk > :after"
            } else {
                " AND #isk < :after"
            });
            values.insert(":after".to_owned(), s(after));
        }
        (Some(range), after) => {
            let (from, to) = match after {
                Some(after) if ascending => (after, range.to.as_str()),
                Some(after) => (range.from.as_str(), after),
                None => (range.from.as_str(), range.to.as_str()),
            };
            condition.push_str(" AND #isk BETWEEN :from AND :to");
            values.insert(":from".to_owned(), s(from));
            values.insert(":to".to_owned(), s(to));
        }
    }
    names.insert("#isk".to_owned(), index.sk.to_owned());
    (condition, names, values)
}

/// One entry of a user sort index: a profile's place, or a ghost's (a
/// user's former place in the last-seen index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IndexEntry {
    pub sort_key: String,
    /// The user the entry stands for.
    pub user: ObjectId,
    pub place: Place,
    /// What the created-at index copies of the profile (see
    /// [`keys::BY_CREATED`]), with no activity: `None` in other indexes.
    pub copy: Option<User>,
}

/// The part of a profile the created-at index carries.
#[derive(Deserialize)]
struct ProfileCopy {
    #[serde(rename = "userId")]
    user_id: String,
    banned: bool,
    attrs: BTreeMap<String, String>,
    #[serde(default, with = "serde_dynamo::string_set")]
    segs: Vec<String>,
    #[serde(rename = "createdAt")]
    created_at: i64,
}

impl ProfileCopy {
    fn into_user(self, id: ObjectId) -> User {
        let created_at = Timestamp::from_millis(self.created_at);
        User {
            id,
            user_id: self.user_id,
            banned: self.banned,
            attributes: Attributes(self.attrs),
            session_attributes: BTreeMap::new(),
            conversations: 0,
            segments: self.segs.iter().filter_map(|s| s.parse().ok()).collect(),
            created_at,
            last_seen: created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    /// The user's current place, taken at `since` (absent: at `created`).
    Profile {
        since: Option<i64>,
        created: Option<i64>,
    },
    /// The user's place from `from` until `until` (millis).
    Ghost { from: i64, until: i64 },
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

impl IndexEntry {
    /// The entry of an index item of `index`, with the profile's copy when
    /// `copies` (and the index holds one); `None` for an item that stands
    /// for no user.
    pub fn of_item(item: &Item, index: Index, copies: bool) -> Option<Self> {
        let sort_key = item.get(index.sk)?.as_s().ok()?.clone();
        let user = keys::user_id_of_pk(item.get(keys::PK)?.as_s().ok()?)?;
        let place = if item.contains_key(attr::GHOST_OF) {
            Place::Ghost {
                from: number(item, attr::VALID_FROM)?,
                until: number(item, attr::VALID_UNTIL)?,
            }
        } else {
            Place::Profile {
                since: number(item, attr::SEEN_SINCE),
                created: number(item, attr::CREATED_AT),
            }
        };
        let copy =
            if copies && item.contains_key(attr::ATTRS) && !item.contains_key(attr::LAST_SEEN) {
                from_item::<ProfileCopy>(item.clone())
                    .ok()
                    .map(|copy| copy.into_user(user))
            } else {
                None
            };
        Some(Self {
            sort_key,
            user,
            place,
            copy,
        })
    }

    /// Whether the user may pass `filters`: false only when the index's
    /// copy of the profile decides that it does not (the fetched profile
    /// is checked again, so a copy that lags behind costs a fetch, never a
    /// wrong answer about a match).
    pub fn may_match(&self, filters: &FilterSet) -> bool {
        match &self.copy {
            Some(copy) if filters.ignores_activity() => filters.matches(copy),
            _ => true,
        }
    }

    /// Whether this is the user's place in the listing: under a snapshot
    /// `as_of`, a profile that had its place by then or a ghost whose place
    /// was its user's then; without one, every profile and no ghost.
    pub fn counts(&self, as_of: Option<Timestamp>) -> bool {
        match (&self.place, as_of) {
            (Place::Profile { .. }, None) => true,
            (Place::Ghost { .. }, None) => false,
            (Place::Profile { since, created }, Some(as_of)) => {
                since.or(*created).is_some_and(|at| at <= as_of.millis())
            }
            (Place::Ghost { from, until }, Some(as_of)) => {
                *from <= as_of.millis() && as_of.millis() < *until
            }
        }
    }
}

/// One shard's part of a walk.
struct Shard {
    pk: String,
    /// Entries read and not handed out yet, in order.
    buffer: VecDeque<IndexEntry>,
    /// Where its next `Query` starts.
    start: Option<Item>,
    /// Read to its end.
    done: bool,
}

/// A walk of one sort index over all the shards of an account, merged.
pub(super) struct IndexWalk {
    store: Store,
    index: Index,
    ascending: bool,
    condition: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    /// The `after` key inside a range: read (`BETWEEN` includes it), not handed out.
    skip: Option<String>,
    page_items: i32,
    /// Whether entries carry the created-at index's copy of the profile.
    copies: bool,
    shards: Vec<Shard>,
    read: usize,
}

impl IndexWalk {
    /// A walk of `index` over the partitions `pks`, within `range` and
    /// strictly after `after` when given, reading up to `page_items` entries
    /// per shard and `Query` call. Nothing is read until [`Self::next`].
    pub fn new(
        store: &Store,
        index: Index,
        pks: Vec<String>,
        ascending: bool,
        range: Option<&KeyRange>,
        after: Option<&str>,
        page_items: usize,
    ) -> Self {
        let (condition, names, values) =
            key_condition(index, String::new(), range, after, ascending);
        Self {
            store: store.clone(),
            index,
            ascending,
            condition,
            names,
            values,
            skip: range.and(after).map(str::to_owned),
            page_items: page_items.clamp(1, 1_000) as i32,
            copies: false,
            shards: pks
                .into_iter()
                .map(|pk| Shard {
                    pk,
                    buffer: VecDeque::new(),
                    start: None,
                    done: false,
                })
                .collect(),
            read: 0,
        }
    }

    /// The same walk, reading the created-at index's copy of each profile
    /// when the index holds one and `filters` can be decided on it
    /// ([`IndexEntry::may_match`]); otherwise the copies are not parsed at all.
    pub fn deciding(mut self, filters: &FilterSet) -> Self {
        let holds_copies = self
            .index
            .projects
            .is_some_and(|projected| projected.contains(&attr::ATTRS));
        self.copies = holds_copies && !filters.is_empty() && filters.ignores_activity();
        self
    }

    /// Whether the walk's filters are decided on the index's copies, so
    /// that only matches are fetched.
    pub fn decides_on_copies(&self) -> bool {
        self.copies
    }

    /// Index entries read from DynamoDB so far (handed out or buffered).
    pub fn read(&self) -> usize {
        self.read
    }

    /// Whether every entry has been handed out.
    pub fn finished(&self) -> bool {
        self.shards
            .iter()
            .all(|shard| shard.done && shard.buffer.is_empty())
    }

    /// Up to `max` next entries in the index's order; fewer only at the end.
    pub async fn next(&mut self, max: usize) -> Result<Vec<IndexEntry>, ApiError> {
        let mut entries = Vec::with_capacity(max.min(1_000));
        while entries.len() < max {
            self.fill().await?;
            let heads = self
                .shards
                .iter()
                .enumerate()
                .filter_map(|(at, shard)| Some((at, &shard.buffer.front()?.sort_key)));
            let next = if self.ascending {
                heads.min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(&b.0)))
            } else {
                heads.max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            };
            let Some((at, _)) = next else {
                break;
            };
            entries.extend(self.shards[at].buffer.pop_front());
        }
        Ok(entries)
    }

    /// Reads a page of every shard whose buffer is empty and that is not
    /// read to its end, all at once, until each has an entry or is done.
    async fn fill(&mut self) -> Result<(), ApiError> {
        loop {
            let wanted: Vec<usize> = (0..self.shards.len())
                .filter(|&at| !self.shards[at].done && self.shards[at].buffer.is_empty())
                .collect();
            if wanted.is_empty() {
                return Ok(());
            }
            let pages = try_join_all(wanted.iter().map(|&at| {
                let shard = &self.shards[at];
                self.query(shard.pk.clone(), shard.start.clone())
            }))
            .await?;
            for (at, (items, start)) in wanted.into_iter().zip(pages) {
                self.read += items.len();
                let shard = &mut self.shards[at];
                shard.buffer.extend(
                    items
                        .iter()
                        .filter_map(|item| IndexEntry::of_item(item, self.index, self.copies))
                        .filter(|entry| self.skip.as_ref() != Some(&entry.sort_key)),
                );
                shard.done = start.is_none();
                shard.start = start;
            }
        }
    }

    async fn query(
        &self,
        pk: String,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), ApiError> {
        let mut values = self.values.clone();
        values.insert(":ipk".to_owned(), s(pk));
        let output = self
            .store
            .client
            .query()
            .table_name(self.store.table())
            .index_name(self.index.name)
            .key_condition_expression(&self.condition)
            .set_expression_attribute_names(Some(self.names.clone()))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(self.ascending)
            .limit(self.page_items)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| sdk_error("Query users", e))?;
        Ok((output.items.unwrap_or_default(), output.last_evaluated_key))
    }
}

impl Store {
    /// `entries`, in order, each with its user when the entry counts under
    /// the snapshot `as_of` and its current profile passes `filters`: the
    /// profiles of the entries that count and may match are fetched in one
    /// go ([`Self::users_of_entries`]).
    pub(super) async fn matching_users(
        &self,
        account: &AccountId,
        entries: Vec<IndexEntry>,
        as_of: Option<Timestamp>,
        filters: &FilterSet,
    ) -> Result<Vec<(IndexEntry, Option<User>)>, ApiError> {
        let kept: Vec<bool> = entries
            .iter()
            .map(|entry| entry.counts(as_of) && entry.may_match(filters))
            .collect();
        let mut found = self
            .users_of_entries(
                account,
                entries
                    .iter()
                    .zip(&kept)
                    .filter(|(_, kept)| **kept)
                    .map(|(entry, _)| entry),
            )
            .await?;
        Ok(entries
            .into_iter()
            .zip(kept)
            .map(|(entry, kept)| {
                // A user erased meanwhile is not shown.
                let user = kept
                    .then(|| found.remove(&entry.user))
                    .flatten()
                    .filter(|user| filters.matches(user));
                (entry, user)
            })
            .collect())
    }

    /// The current profiles of the users `entries` stand for (one
    /// `BatchGetItem` per 100), by id; users erased meanwhile are missing.
    pub(super) async fn users_of_entries<'a>(
        &self,
        account: &AccountId,
        entries: impl IntoIterator<Item = &'a IndexEntry>,
    ) -> Result<HashMap<ObjectId, User>, ApiError> {
        let mut ids: Vec<ObjectId> = entries.into_iter().map(|entry| entry.user).collect();
        ids.sort_unstable();
        ids.dedup();
        let wanted = ids
            .into_iter()
            .map(|id| key(keys::user_pk(account, id), keys::PROFILE_SK))
            .collect();
        let mut users = HashMap::new();
        for item in self.batch_get(wanted, false).await? {
            let user = from_item::<ProfileItem>(item)?.into_user();
            users.insert(user.id, user);
        }
        Ok(users)
    }

    /// The sort key at the far end of the account's `index` in a walk's
    /// direction (the last for an ascending walk, the first for a
    /// descending one), over all of `pks`.
    pub(super) async fn far_end(
        &self,
        index: Index,
        pks: &[String],
        ascending: bool,
    ) -> Result<Option<String>, ApiError> {
        let ends = try_join_all(pks.iter().map(|pk| async move {
            let output = self
                .client
                .query()
                .table_name(self.table())
                .index_name(index.name)
                .key_condition_expression("#ipk = :ipk")
                .expression_attribute_names("#ipk", index.pk)
                .expression_attribute_values(":ipk", s(pk))
                .scan_index_forward(!ascending)
                .limit(1)
                .send()
                .await
                .map_err(|e| sdk_error("Query index end", e))?;
            Ok::<_, ApiError>(
                output
                    .items
                    .unwrap_or_default()
                    .first()
                    .and_then(|item| item.get(index.sk))
                    .and_then(|value| value.as_s().ok())
                    .cloned(),
            )
        }))
        .await?;
        let ends = ends.into_iter().flatten();
        Ok(if ascending { ends.max() } else { ends.min() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(sort_key: &str, since: Option<i64>, created: i64) -> IndexEntry {
        IndexEntry {
            sort_key: sort_key.to_owned(),
            user: ObjectId::new(),
            place: Place::Profile {
                since,
                created: Some(created),
            },
            copy: None,
        }
    }

    #[test]
    fn the_snapshot_rule_places_each_user_once() {
        let as_of = Timestamp::from_millis(1_000);
        // A profile placed before the snapshot counts; one placed after does not.
        assert!(profile("k", None, 900).counts(Some(as_of)));
        assert!(profile("k", Some(1_000), 10).counts(Some(as_of)));
        assert!(!profile("k", Some(1_001), 10).counts(Some(as_of)));
        // A ghost counts while its place was the user's at the snapshot.
        let ghost = |from, until| IndexEntry {
            sort_key: "k".into(),
            user: ObjectId::new(),
            place: Place::Ghost { from, until },
            copy: None,
        };
        assert!(ghost(900, 1_001).counts(Some(as_of)));
        assert!(!ghost(900, 1_000).counts(Some(as_of)));
        assert!(!ghost(1_001, 2_000).counts(Some(as_of)));
        // Outside a snapshot only profiles count.
        assert!(profile("k", Some(5_000), 10).counts(None));
        assert!(!ghost(900, 1_001).counts(None));
    }

    #[test]
    fn entries_are_read_from_index_items() {
        let account = AccountId::parse("acme").unwrap();
        let id = ObjectId::new();
        let mut item: Item = key(keys::user_pk(&account, id), keys::PROFILE_SK);
        item.insert("gsi2sk".into(), s("0000000001000#x"));
        item.insert(attr::SEEN_SINCE.into(), AttributeValue::N("1000".into()));
        let entry = IndexEntry::of_item(&item, keys::BY_SEEN, true).unwrap();
        assert_eq!(entry.user, id);
        assert_eq!(
            entry.place,
            Place::Profile {
                since: Some(1_000),
                created: None
            }
        );
        item.insert(attr::GHOST_OF.into(), s(id.to_string()));
        item.insert(attr::VALID_FROM.into(), AttributeValue::N("5".into()));
        item.insert(attr::VALID_UNTIL.into(), AttributeValue::N("9".into()));
        let ghost = IndexEntry::of_item(&item, keys::BY_SEEN, true).unwrap();
        assert_eq!(ghost.place, Place::Ghost { from: 5, until: 9 });
        // No sort key of this index: not an entry of it.
        assert_eq!(IndexEntry::of_item(&item, keys::BY_CREATED, true), None);
    }

    #[test]
    fn the_created_at_index_copy_decides_filters_that_ignore_activity() {
        let account = AccountId::parse("acme").unwrap();
        let user = crate::model::sample_user();
        let profile = crate::store::items::ProfileItem::new(&account, &user, 1);
        // What the created-at index holds: keys and the projected attributes.
        let full = crate::store::items::to_item(&profile).unwrap();
        let mut item: Item = full
            .into_iter()
            .filter(|(name, _)| {
                [keys::PK, keys::SK, keys::BY_CREATED.pk, keys::BY_CREATED.sk]
                    .contains(&name.as_str())
                    || keys::BY_CREATED.projects.unwrap().contains(&name.as_str())
            })
            .collect();
        let entry = IndexEntry::of_item(&item, keys::BY_CREATED, true).unwrap();
        let copy = entry.copy.clone().expect("a copy");
        assert_eq!(copy.attributes, user.attributes);
        assert_eq!(copy.segments, user.segments);
        let query = |raw: &str| crate::filter::ListQuery::parse(Some(raw)).unwrap().filters;
        let key = user.attributes.0.keys().next().unwrap().clone();
        let value = user.attributes.0[&key].clone();
        assert!(entry.may_match(&query(&format!(
            "filters[0][field]={key}&filters[0][operator]=eq&filters[0][value]={value}"
        ))));
        assert!(!entry.may_match(&query(&format!(
            "filters[0][field]={key}&filters[0][operator]=eq&filters[0][value]={value}x"
        ))));
        // A filter on activity is left to the profile.
        assert!(entry.may_match(&query(
            "filters[0][field]=conversations&filters[0][operator]=gt&filters[0][value]=1000"
        )));
        // Without copies asked for, none is parsed.
        assert_eq!(
            IndexEntry::of_item(&item, keys::BY_CREATED, false)
                .unwrap()
                .copy,
            None
        );
        // A whole profile (another index's item) is not taken for a copy.
        item.insert(attr::LAST_SEEN.into(), AttributeValue::N("1".into()));
        assert_eq!(
            IndexEntry::of_item(&item, keys::BY_CREATED, true)
                .unwrap()
                .copy,
            None
        );
    }

    #[test]
    fn a_range_with_an_after_key_starts_at_that_key() {
        let range = KeyRange {
            from: "0000000001000".into(),
            to: "0000000001999~".into(),
        };
        let (condition, _, values) = key_condition(
            keys::BY_CREATED,
            "pk".into(),
            Some(&range),
            Some("0000000001500#x"),
            true,
        );
        assert_eq!(condition, "#ipk = :ipk AND #isk BETWEEN :from AND :to");
        assert_eq!(values[":from"], s("0000000001500#x"));
        assert_eq!(values[":to"], s("0000000001999~"));
        let (_, _, values) = key_condition(
            keys::BY_CREATED,
            "pk".into(),
            Some(&range),
            Some("0000000001500#x"),
            false,
        );
        assert_eq!(values[":from"], s("0000000001000"));
        assert_eq!(values[":to"], s("0000000001500#x"));
        let (condition, _, _) =
            key_condition(keys::BY_CREATED, "pk".into(), None, Some("k"), false);
        assert_eq!(condition, "#ipk = :ipk AND #isk < :after");
    }
}

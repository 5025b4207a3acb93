//! The stored shape of each item, written and read with `serde_dynamo`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::keys;
use crate::error::ApiError;
use crate::model::{
    AccountId, Attributes, Conversation, EMAIL_KEY, ObjectId, Segment, Timestamp, User,
};

pub type Item = HashMap<String, AttributeValue>;

/// Profile attribute names the store and the filter translation agree on.
pub mod attr {
    pub const ATTRS: &str = "attrs";
    pub const SESSION: &str = "sess";
    pub const USER_ID: &str = "userId";
    pub const BANNED: &str = "banned";
    pub const CONVERSATIONS: &str = "convs";
    /// How many of `convs` are keyed `P#…`; the rest
    /// are legacy (see `store::conversations`).
    pub const CURRENT_CONVERSATIONS: &str = "pconvs";
    pub const SEGMENTS: &str = "segs";
    pub const CREATED_AT: &str = "createdAt";
    pub const LAST_SEEN: &str = "lastSeen";
    /// Bumped by every attribute write: the optimistic-concurrency version.
    pub const VERSION: &str = "ver";
    pub const SEGMENTS_VERSION: &str = "segver";
    /// When the profile took its current place in the last-seen index.
    pub const SEEN_SINCE: &str = "seenSince";
    /// Marks a ghost: a user's former place in the last-seen index.
    pub const GHOST_OF: &str = "ghostOf";
    pub const VALID_FROM: &str = "validFrom";
    pub const VALID_UNTIL: &str = "validUntil";
    /// Epoch seconds after which DynamoDB's TTL may delete the item.
    pub const EXPIRES_AT: &str = "expiresAt";
    /// A segment's name ([`super::SegmentItem::name`]).
    pub const SEGMENT_NAME: &str = "name";
}

/// A user's profile item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProfileItem {
    pub pk: String,
    pub sk: String,
    pub id: ObjectId,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub banned: bool,
    pub attrs: BTreeMap<String, String>,
    #[serde(default)]
    pub sess: BTreeMap<String, String>,
    #[serde(default)]
    pub convs: u64,
    /// How many of `convs` are keyed the current way (absent: written before).
    #[serde(default)]
    pub pconvs: u64,
    #[serde(
        default,
        with = "serde_dynamo::string_set",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub segs: Vec<String>,
    #[serde(rename = "createdAt")]
    pub created_at: i64,
    #[serde(rename = "lastSeen")]
    pub last_seen: i64,
    #[serde(default)]
    pub ver: u64,
    /// Bumped by every membership change: their optimistic-concurrency version.
    #[serde(default)]
    pub segver: u64,
    /// When the user took its current place in the last-seen index (absent: at creation).
    #[serde(rename = "seenSince", default, skip_serializing_if = "Option::is_none")]
    pub seen_since: Option<i64>,
    pub gsi1pk: String,
    pub gsi1sk: String,
    pub gsi2pk: String,
    pub gsi2sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi3pk: Option<String>,
}

impl ProfileItem {
    /// Whether some of the user's conversations are keyed the legacy way
    /// (`C#…`): written before the current keys, or by a function of the
    /// version before during a deployment.
    pub fn has_legacy_conversations(&self) -> bool {
        self.convs > self.pconvs
    }

    /// The profile of `user`, placed in its shard of the account's sort
    /// indexes when they are written in `index_shards` shards.
    pub fn new(account: &AccountId, user: &User, index_shards: u16) -> Self {
        let users = keys::users_index_pk(account, keys::user_index_shard(user.id, index_shards));
        Self {
            pk: keys::user_pk(account, user.id),
            sk: keys::PROFILE_SK.to_owned(),
            id: user.id,
            user_id: user.user_id.clone(),
            banned: user.banned,
            attrs: user.attributes.0.clone(),
            sess: user.session_attributes.clone(),
            convs: user.conversations,
            pconvs: user.conversations,
            segs: user.segments.iter().map(ToString::to_string).collect(),
            created_at: user.created_at.millis(),
            last_seen: user.last_seen.millis(),
            ver: 0,
            segver: 0,
            seen_since: None,
            gsi1pk: users.clone(),
            gsi1sk: keys::time_sort_key(user.created_at, user.id),
            gsi2pk: users,
            gsi2sk: keys::time_sort_key(user.last_seen, user.id),
            gsi3pk: email_index_pk(account, &user.attributes.0),
        }
    }

    pub fn into_user(self) -> User {
        User {
            id: self.id,
            user_id: self.user_id,
            banned: self.banned,
            attributes: Attributes(self.attrs),
            session_attributes: self.sess,
            conversations: self.convs,
            segments: self
                .segs
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect::<BTreeSet<_>>(),
            created_at: Timestamp::from_millis(self.created_at),
            last_seen: Timestamp::from_millis(self.last_seen),
        }
    }
}

/// The e-mail index key of a user with these attributes, if it has an e-mail.
pub fn email_index_pk(
    account: &AccountId,
    attributes: &BTreeMap<String, String>,
) -> Option<String> {
    attributes
        .get(EMAIL_KEY)
        .map(|email| keys::email_pk(account, email))
}

/// A claim on a unique value (`userId`, segment name): names the owner's id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimItem {
    pub pk: String,
    pub sk: String,
    pub id: ObjectId,
}

/// A segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentItem {
    pub pk: String,
    pub sk: String,
    pub id: ObjectId,
    pub name: String,
    #[serde(default)]
    pub users: i64,
    #[serde(rename = "createdAt")]
    pub created_at: i64,
    pub gsi1pk: String,
    pub gsi1sk: String,
    /// Every membership of this segment has a [`MembershipItem`] sort key
    /// in creation order: true for segments created since memberships carry
    /// it; older segments are listed without walking the members index.
    #[serde(
        rename = "ordered",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub members_in_creation_order: bool,
}

impl SegmentItem {
    pub fn into_segment(self) -> Segment {
        Segment {
            id: self.id,
            name: self.name,
            users: self.users.max(0) as u64,
            created_at: Timestamp::from_millis(self.created_at),
        }
    }
}

/// A user's membership of a segment, in the user's item collection and in the
/// segment's members index. Its index sort key is the user's created-at sort
/// key, so the members index lists a segment in the order of the created-at
/// index and a filtered page walks the members only. (Memberships written
/// before this held the bare user id; readers accept both.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipItem {
    pub pk: String,
    pub sk: String,
    pub gsi4pk: String,
    pub gsi4sk: String,
}

impl MembershipItem {
    pub fn new(
        account: &AccountId,
        user: ObjectId,
        created_at: Timestamp,
        segment: ObjectId,
    ) -> Self {
        Self {
            pk: keys::user_pk(account, user),
            sk: keys::membership_sk(segment),
            gsi4pk: keys::segment_members_pk(account, segment),
            gsi4sk: keys::time_sort_key(created_at, user),
        }
    }
}

/// A conversation of a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationItem {
    pub pk: String,
    pub sk: String,
    pub id: ObjectId,
    pub date: i64,
    #[serde(
        rename = "firstMessage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub first_message: Option<String>,
}

impl ConversationItem {
    pub fn into_conversation(self) -> Conversation {
        Conversation {
            id: self.id,
            date: Timestamp::from_millis(self.date),
            first_message: self.first_message,
        }
    }
}

/// A user's former place in the last-seen index, kept for a while after
/// activity moved the user, so that a paging snapshot taken while the user was
/// there still finds it there (see `list`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GhostItem {
    pub pk: String,
    pub sk: String,
    #[serde(rename = "ghostOf")]
    pub ghost_of: ObjectId,
    /// The place was the user's from this instant (millis) ...
    #[serde(rename = "validFrom")]
    pub valid_from: i64,
    /// ... until this one.
    #[serde(rename = "validUntil")]
    pub valid_until: i64,
    pub gsi2pk: String,
    pub gsi2sk: String,
    #[serde(rename = "expiresAt")]
    pub expires_at: i64,
}

/// A paging cursor: where a page ended, and the snapshot instant the paging
/// started at. `next` names it when the sort is by `lastSeen`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CursorItem {
    pub pk: String,
    pub sk: String,
    /// The sort key to resume strictly after.
    pub position: String,
    #[serde(rename = "asOf")]
    pub as_of: i64,
    #[serde(rename = "expiresAt")]
    pub expires_at: i64,
    /// The cursors resting on the user at `position`, so that erasing the
    /// user removes them (`keys::cursors_of_user_pk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi4pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gsi4sk: Option<String>,
}

/// What a clean-up job cleans up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// An erased user's conversations, ghosts, memberships and cursors.
    User,
    /// A deleted segment's memberships.
    Segment,
}

/// A clean-up still to do (see `cleanup`): kept until nothing is left.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobItem {
    pub pk: String,
    /// The partition key of the object being cleaned up.
    pub sk: String,
    pub kind: JobKind,
    pub account: String,
    pub id: ObjectId,
    /// When the object was hidden (millis).
    #[serde(rename = "createdAt")]
    pub created_at: i64,
    /// How often a worker left it unfinished.
    #[serde(default)]
    pub passes: u64,
}

impl JobKind {
    /// What the job cleans up after, in words.
    pub fn object(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Segment => "segment",
        }
    }
}

impl JobItem {
    pub fn new(kind: JobKind, account: &AccountId, id: ObjectId, object_pk: String) -> Self {
        Self {
            pk: keys::job_pk(id),
            sk: object_pk,
            kind,
            account: account.to_string(),
            id,
            created_at: Timestamp::now().millis(),
            passes: 0,
        }
    }
}

/// A developer token, keyed by its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenItem {
    pub pk: String,
    pub sk: String,
    pub account: String,
    #[serde(rename = "createdAt")]
    pub created_at: i64,
}

pub fn to_item<T: Serialize>(value: &T) -> Result<Item, ApiError> {
    serde_dynamo::to_item(value).map_err(|e| ApiError::internal_from("serialize item", e))
}

pub fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, ApiError> {
    serde_dynamo::from_item(item).map_err(|e| ApiError::internal_from("deserialize item", e))
}

/// An item's sort key (empty when it has none).
pub fn sort_key(item: &Item) -> &str {
    item.get(keys::SK)
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The primary key of an item.
pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(keys::PK.to_owned(), s(pk)), (keys::SK.to_owned(), s(sk))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample_user;

    #[test]
    fn profile_round_trips_through_an_item() {
        let account = AccountId::parse("acme").unwrap();
        let mut user = sample_user();
        user.segments.insert(ObjectId::new());
        user.session_attributes
            .insert("group-selected".into(), "14".into());
        user.conversations = 3;
        let item = to_item(&ProfileItem::new(&account, &user, 1)).unwrap();
        assert!(matches!(item.get("segs"), Some(AttributeValue::Ss(_))));
        assert!(matches!(item.get("createdAt"), Some(AttributeValue::N(_))));
        assert!(matches!(
            item.get("banned"),
            Some(AttributeValue::Bool(false))
        ));
        assert_eq!(
            item.get("gsi3pk"),
            Some(&s(format!("A#acme#EMAIL#{}", keys::digest("joe@doe.com"))))
        );
        let back: ProfileItem = from_item(item).unwrap();
        assert_eq!(back.into_user(), user);
    }

    #[test]
    fn profile_without_segments_or_email_omits_those_attributes() {
        let account = AccountId::parse("acme").unwrap();
        let mut user = sample_user();
        user.attributes.0.remove("default_email");
        let item = to_item(&ProfileItem::new(&account, &user, 1)).unwrap();
        assert!(!item.contains_key("segs"));
        assert!(!item.contains_key("gsi3pk"));
        let back: ProfileItem = from_item(item).unwrap();
        assert_eq!(back.into_user(), user);
    }

    #[test]
    fn other_items_round_trip() {
        let account = AccountId::parse("acme").unwrap();
        let id = ObjectId::new();
        let segment = SegmentItem {
            pk: keys::segment_pk(&account, id),
            sk: keys::SEGMENT_SK.into(),
            id,
            name: "Leads".into(),
            users: 2,
            created_at: 5,
            gsi1pk: keys::segments_index_pk(&account),
            gsi1sk: keys::time_sort_key(Timestamp::from_millis(5), id),
            members_in_creation_order: true,
        };
        let back: SegmentItem = from_item(to_item(&segment).unwrap()).unwrap();
        assert!(back.members_in_creation_order);
        assert_eq!(back.into_segment().name, "Leads");
        let conversation = ConversationItem {
            pk: "p".into(),
            sk: "C#x".into(),
            id,
            date: 7,
            first_message: None,
        };
        let back: ConversationItem = from_item(to_item(&conversation).unwrap()).unwrap();
        assert_eq!(back.into_conversation().date.millis(), 7);
        let token = TokenItem {
            pk: "T#h".into(),
            sk: "T".into(),
            account: "acme".into(),
            created_at: 1,
        };
        let back: TokenItem = from_item(to_item(&token).unwrap()).unwrap();
        assert_eq!(back.account, "acme");
        let claim = ClaimItem {
            pk: "p".into(),
            sk: "K".into(),
            id,
        };
        assert_eq!(
            from_item::<ClaimItem>(to_item(&claim).unwrap()).unwrap().id,
            id
        );
    }
}

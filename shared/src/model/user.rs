//! The user as stored and as shown: the list form and the details form.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Attributes, ObjectId, Timestamp};

/// A user of one account, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: ObjectId,
    pub user_id: String,
    pub banned: bool,
    pub attributes: Attributes,
    pub session_attributes: BTreeMap<String, String>,
    /// How many conversations the user has had.
    pub conversations: u64,
    /// Ids of the segments the user belongs to.
    pub segments: BTreeSet<ObjectId>,
    pub created_at: Timestamp,
    pub last_seen: Timestamp,
}

/// The list form of a user (`GET /users`).
#[derive(Debug, Serialize)]
pub struct UserSummary<'a> {
    pub id: ObjectId,
    #[serde(rename = "userId")]
    pub user_id: &'a str,
    pub banned: bool,
    pub attributes: &'a Attributes,
    pub conversations: u64,
    #[serde(rename = "createdAt")]
    pub created_at: Timestamp,
    #[serde(rename = "lastSeen")]
    pub last_seen: Timestamp,
}

impl<'a> From<&'a User> for UserSummary<'a> {
    fn from(user: &'a User) -> Self {
        Self {
            id: user.id,
            user_id: &user.user_id,
            banned: user.banned,
            attributes: &user.attributes,
            conversations: user.conversations,
            created_at: user.created_at,
            last_seen: user.last_seen,
        }
    }
}

/// One conversation of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ObjectId,
    pub date: Timestamp,
    pub first_message: Option<String>,
}

/// A conversation as details show it: `date` and `createdAt` carry the same value.
impl Serialize for Conversation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Conversation", 4)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("date", &self.date)?;
        s.serialize_field("createdAt", &self.date)?;
        s.serialize_field("firstMessage", &self.first_message)?;
        s.end()
    }
}

/// A segment as a user's details name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentRef {
    pub id: ObjectId,
    pub name: String,
}

/// The details form of a user (`GET /users/{id}`). Its size is bounded
/// whatever the user's history: `conversations` holds the newest ones only
/// (the store says how many), `conversationsCount` tells how many there are
/// in all, and `conversationsNext` is the `after` of
/// `GET /users/{id}/conversations` for the older ones (`null` when there are
/// none).
#[derive(Debug, Serialize)]
pub struct UserDetails {
    pub id: ObjectId,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub banned: bool,
    pub attributes: Attributes,
    #[serde(rename = "sessionAttributes")]
    pub session_attributes: BTreeMap<String, String>,
    /// The newest conversations, newest first.
    pub conversations: Vec<Conversation>,
    #[serde(rename = "conversationsCount")]
    pub conversations_count: u64,
    #[serde(rename = "conversationsNext")]
    pub conversations_next: Option<ObjectId>,
    pub segments: Vec<SegmentRef>,
    #[serde(rename = "createdAt")]
    pub created_at: Timestamp,
    #[serde(rename = "lastSeen")]
    pub last_seen: Timestamp,
}

impl UserDetails {
    /// `conversations` are the newest (in any order: they are shown newest
    /// first, by id, which is time-ordered), `older` the `after` for the
    /// rest.
    pub fn new(
        user: User,
        mut conversations: Vec<Conversation>,
        older: Option<ObjectId>,
        segments: Vec<SegmentRef>,
    ) -> Self {
        conversations.sort_by_key(|c| std::cmp::Reverse(c.id));
        Self {
            id: user.id,
            user_id: user.user_id,
            banned: user.banned,
            attributes: user.attributes,
            session_attributes: user.session_attributes,
            conversations,
            conversations_count: user.conversations,
            conversations_next: older,
            segments,
            created_at: user.created_at,
            last_seen: user.last_seen,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_user() -> User {
        User {
            id: "5b7ff84cc7ca3fb33c9249a8".parse().unwrap(),
            user_id: "0735887f-6aaa-47cc-908e-6c84d093f317".into(),
            banned: false,
            attributes: Attributes(BTreeMap::from([
                ("default_email".to_owned(), "joe@doe.com".to_owned()),
                ("default_name".to_owned(), "Joe".to_owned()),
            ])),
            session_attributes: BTreeMap::new(),
            conversations: 0,
            segments: BTreeSet::new(),
            created_at: Timestamp::from_millis(1_548_250_350_163),
            last_seen: Timestamp::from_millis(1_548_250_350_163),
        }
    }

    #[test]
    fn list_form_matches_the_reference_example() {
        let user = sample_user();
        let json = serde_json::to_value(UserSummary::from(&user)).unwrap();
        let expected = serde_json::json!({
            "id": "5b7ff84cc7ca3fb33c9249a8",
            "userId": "0735887f-6aaa-47cc-908e-6c84d093f317",
            "banned": false,
            "attributes": {
                "default_email": "joe@doe.com", "default_name": "Joe", "default_url": null,
                "default_avatar": null, "default_language": null, "default_timezone": null,
                "default_gender": null, "default_ip": null, "default_city": null,
                "default_region": null, "default_country": null, "default_referrer": null,
                "default_username": null
            },
            "conversations": 0,
            "createdAt": "2019-01-23 13:32:30.163Z",
            "lastSeen": "2019-01-23 13:32:30.163Z"
        });
        assert_eq!(json, expected);
    }

    #[test]
    fn details_show_conversations_newest_first_with_date_and_created_at() {
        let older = Conversation {
            id: ObjectId::at_seconds(10),
            date: Timestamp::from_millis(10_000),
            first_message: Some("hello".into()),
        };
        let newer = Conversation {
            id: ObjectId::at_seconds(20),
            date: Timestamp::from_millis(20_000),
            first_message: None,
        };
        let details = UserDetails::new(sample_user(), vec![older, newer], None, vec![]);
        let json = serde_json::to_value(&details).unwrap();
        assert_eq!(json["conversations"][0]["date"], "1970-01-01 00:00:20.000Z");
        assert_eq!(
            json["conversations"][0]["createdAt"],
            "1970-01-01 00:00:20.000Z"
        );
        assert_eq!(
            json["conversations"][0]["firstMessage"],
            serde_json::Value::Null
        );
        assert_eq!(json["conversations"][1]["firstMessage"], "hello");
        assert_eq!(json["segments"], serde_json::json!([]));
        assert_eq!(json["conversationsCount"], 0);
        assert_eq!(json["conversationsNext"], serde_json::Value::Null);
        assert_eq!(json["sessionAttributes"], serde_json::json!({}));
    }
}

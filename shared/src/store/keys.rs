//! The single-table layout: how each kind of item is keyed. Every key of an
//! account's object starts with `A#{account}#`, so no query can reach across
//! accounts; tokens are keyed by the SHA-256 of the token, never the token.
//!
//! | item              | pk                          | sk          | index keys |
//! |-------------------|-----------------------------|-------------|------------|
//! | user profile      | `A#{acct}#U#{id}`           | `P`         | `gsi1` created, `gsi2` last seen, `gsi3` e-mail |
//! | conversation      | `A#{acct}#U#{id}`           | `C#{convId}`| — |
//! | membership        | `A#{acct}#U#{id}`           | `M#{segId}` | `gsi4` = segment members |
//! | `userId` claim    | `A#{acct}#UID#{userId}`     | `K`         | — |
//! | segment           | `A#{acct}#S#{segId}`        | `S`         | `gsi1` segments by creation |
//! | segment-name claim| `A#{acct}#SN#{name}`        | `K`         | — |
//! | last-seen ghost   | `A#{acct}#U#{id}`           | `G#{oldKey}`| `gsi2` the user's former place |
//! | paging cursor     | `A#{acct}#CUR#{cursorId}`   | `R`         | — |
//! | token             | `T#{sha256(token)}`         | `T`         | — |
//! | account           | `ACCOUNT#{acct}`            | `A`         | — |

use crate::model::{AccountId, ObjectId, Timestamp};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const PROFILE_SK: &str = "P";
pub const CLAIM_SK: &str = "K";
pub const SEGMENT_SK: &str = "S";
pub const TOKEN_SK: &str = "T";
pub const ACCOUNT_SK: &str = "A";
pub const CONVERSATION_PREFIX: &str = "C#";
pub const MEMBERSHIP_PREFIX: &str = "M#";
pub const GHOST_PREFIX: &str = "G#";
pub const CURSOR_SK: &str = "R";

/// A global secondary index: its name and key attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub pk: &'static str,
    pub sk: &'static str,
}

/// Users (and segments) of an account by creation time.
pub const BY_CREATED: Index = Index {
    name: "by_created",
    pk: "gsi1pk",
    sk: "gsi1sk",
};
/// Users of an account by last activity.
pub const BY_SEEN: Index = Index {
    name: "by_seen",
    pk: "gsi2pk",
    sk: "gsi2sk",
};
/// Users of an account with one e-mail address, by creation time.
pub const BY_EMAIL: Index = Index {
    name: "by_email",
    pk: "gsi3pk",
    sk: "gsi1sk",
};
/// Members of a segment (membership items), by user id.
pub const BY_SEGMENT: Index = Index {
    name: "by_segment",
    pk: "gsi4pk",
    sk: "gsi4sk",
};

pub const INDEXES: [Index; 4] = [BY_CREATED, BY_SEEN, BY_EMAIL, BY_SEGMENT];

pub fn user_pk(account: &AccountId, id: ObjectId) -> String {
    format!("A#{account}#U#{id}")
}

/// The user id inside a key made by [`user_pk`].
pub fn user_id_of_pk(pk: &str) -> Option<ObjectId> {
    pk.rsplit_once("#U#")?.1.parse().ok()
}

pub fn users_index_pk(account: &AccountId) -> String {
    format!("A#{account}#USERS")
}

pub fn segments_index_pk(account: &AccountId) -> String {
    format!("A#{account}#SEGMENTS")
}

/// An index sort key: 13-digit millis then the id, so string order is time
/// order with ties broken by id.
pub fn time_sort_key(at: Timestamp, id: ObjectId) -> String {
    format!("{:013}#{id}", at.millis())
}

pub fn email_pk(account: &AccountId, email: &str) -> String {
    format!("A#{account}#EMAIL#{email}")
}

pub fn user_id_claim_pk(account: &AccountId, user_id: &str) -> String {
    format!("A#{account}#UID#{user_id}")
}

pub fn segment_pk(account: &AccountId, id: ObjectId) -> String {
    format!("A#{account}#S#{id}")
}

pub fn segment_name_claim_pk(account: &AccountId, name: &str) -> String {
    format!("A#{account}#SN#{name}")
}

pub fn segment_members_pk(account: &AccountId, segment: ObjectId) -> String {
    format!("A#{account}#S#{segment}#M")
}

pub fn membership_sk(segment: ObjectId) -> String {
    format!("{MEMBERSHIP_PREFIX}{segment}")
}

pub fn conversation_sk(id: ObjectId) -> String {
    format!("{CONVERSATION_PREFIX}{id}")
}

pub fn ghost_sk(old_sort_key: &str) -> String {
    format!("{GHOST_PREFIX}{old_sort_key}")
}

pub fn cursor_pk(account: &AccountId, cursor: ObjectId) -> String {
    format!("A#{account}#CUR#{cursor}")
}

/// The id at the end of a sort key made by [`time_sort_key`].
pub fn id_of_sort_key(sort_key: &str) -> Option<ObjectId> {
    sort_key.rsplit_once('#')?.1.parse().ok()
}

pub fn token_pk(token_hash: &str) -> String {
    format!("T#{token_hash}")
}

pub fn account_pk(account: &AccountId) -> String {
    format!("ACCOUNT#{account}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys_order_by_time_then_id() {
        let a = ObjectId::at_seconds(5);
        let b = ObjectId::at_seconds(6);
        let early = time_sort_key(Timestamp::from_millis(999), b);
        let late = time_sort_key(Timestamp::from_millis(1_000), a);
        assert!(early < late);
        assert!(
            time_sort_key(Timestamp::from_millis(1_000), a)
                < time_sort_key(Timestamp::from_millis(1_000), b)
        );
        assert_eq!(early.len(), 13 + 1 + 24);
    }

    #[test]
    fn user_keys_round_trip() {
        let account = AccountId::parse("acme").unwrap();
        let id = ObjectId::new();
        assert_eq!(user_id_of_pk(&user_pk(&account, id)), Some(id));
        assert_eq!(user_id_of_pk("A#acme#S#x"), None);
    }
}

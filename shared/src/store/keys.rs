//! The single-table layout: how each kind of item is keyed. Every key of an
//! account's object starts with `A#{account}#`, so no query can reach across
//! accounts (and IAM's `dynamodb:LeadingKeys` can hold the API functions to
//! `A#*`); tokens are keyed by the SHA-256 of the token, never the token.
//!
//! Keys never carry client text as it came: a value from a request (a
//! `userId`, an e-mail address, a segment name) appears in a key only as its
//! SHA-256 in hex ([`digest`]), so every key has a fixed, small size whatever
//! the script of the input (DynamoDB allows 2,048 bytes of partition key and
//! 1,024 of sort key), and a lookup hashes the value the same way.
//!
//! | item              | pk                          | sk          | index keys |
//! |-------------------|-----------------------------|-------------|------------|
//! | user profile      | `A#{acct}#U#{id}`           | `P`         | `gsi1` created, `gsi2` last seen (both sharded), `gsi3` e-mail (hashed) |
//! | conversation      | `A#{acct}#U#{id}`           | `P#{convId inverted}` (before: `C#{convId}`) | — |
//! | membership        | `A#{acct}#U#{id}`           | `M#{segId}` | `gsi4` = segment members |
//! | `userId` claim    | `A#{acct}#UID#{sha256(userId)}` | `K`     | — |
//! | segment           | `A#{acct}#S#{segId}`        | `S`         | `gsi1` segments by creation |
//! | segment-name claim| `A#{acct}#SN#{sha256(name)}`| `K`         | — |
//! | last-seen ghost   | `A#{acct}#U#{id}`           | `G#{oldKey}`| `gsi2` the user's former place |
//! | idempotency key   | `A#{acct}#IK#{sha256(key)}` | `K`         | — |
//! | paging cursor     | `A#{acct}#CUR#{cursorId}`   | `R`         | `gsi4` = the cursors resting on a user |
//! | clean-up job      | `JOB#{shard}`               | the object's pk | — |
//! | export job        | `A#{acct}#EXP#{jobId}`      | `EXPORT`    | — |
//! | export job pointer| `XJOB#{shard}`              | the job's pk | — |
//! | token             | `T#{sha256(token)}`         | `T`         | — |
//! | account           | `ACCOUNT#{acct}`            | `A`         | — |
//!
//! The users of an account are written to its sort indexes in
//! [`user_index_shard`]`(id, N)` shards (`A#{acct}#USERS`, then
//! `A#{acct}#USERS#1` … `#N-1`), so that a busy account's index writes are
//! spread over N partitions; a walk reads all N and merges them
//! (`index_walk`). Shard 0 is the unsharded key, so data written with a
//! smaller N is found by a walk with a larger one: N may grow, never shrink.

use sha2::{Digest, Sha256};

use crate::model::{AccountId, ObjectId, Timestamp};

/// The SHA-256 of a client-supplied value, in hex: how such a value enters a key.
pub fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const PROFILE_SK: &str = "P";
pub const CLAIM_SK: &str = "K";
pub const SEGMENT_SK: &str = "S";
pub const TOKEN_SK: &str = "T";
pub const ACCOUNT_SK: &str = "A";
/// Conversations sort right after the profile, newest first: one `Query`
/// from [`PROFILE_SK`] yields the profile and the newest conversations.
pub const CONVERSATION_PREFIX: &str = "P#";
/// Conversations written before [`CONVERSATION_PREFIX`] (oldest first).
pub const LEGACY_CONVERSATION_PREFIX: &str = "C#";
/// Sorts after every key of the form `{prefix}{hex digits}`.
pub const PAST_HEX: &str = "g";
pub const MEMBERSHIP_PREFIX: &str = "M#";
pub const GHOST_PREFIX: &str = "G#";
pub const CURSOR_SK: &str = "R";

/// A global secondary index: its name, key attributes and what it projects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub pk: &'static str,
    pub sk: &'static str,
    /// The non-key attributes the index carries; `None` for all of them.
    pub projects: Option<&'static [&'static str]>,
}

/// Users (and segments) of an account by creation time, with a copy of
/// what activity never changes (attributes, `userId`, `banned`, segments,
/// creation time): filters on those are decided on the index before any
/// profile is fetched, and a conversation, which changes none of them,
/// writes nothing here.
pub const BY_CREATED: Index = Index {
    name: "by_created_slim",
    pk: "gsi1pk",
    sk: "gsi1sk",
    projects: Some(&["userId", "banned", "attrs", "segs", "createdAt"]),
};
/// Users of an account by last activity, with what a paging snapshot
/// decides on (when a profile took its place; a ghost's validity), so the
/// snapshot rule needs no profile. Every conversation moves the user here;
/// the entry it moves is these few bytes, not the profile.
pub const BY_SEEN: Index = Index {
    name: "by_seen_slim",
    pk: "gsi2pk",
    sk: "gsi2sk",
    projects: Some(&[
        "seenSince",
        "createdAt",
        "ghostOf",
        "validFrom",
        "validUntil",
    ]),
};
/// Users of an account with one e-mail address, by creation time (keys only).
pub const BY_EMAIL: Index = Index {
    name: "by_email_keys",
    pk: "gsi3pk",
    sk: "gsi1sk",
    projects: Some(&[]),
};
/// Members of a segment (membership items, a few bytes each, written only
/// when memberships change), by user id.
pub const BY_SEGMENT: Index = Index {
    name: "by_segment",
    pk: "gsi4pk",
    sk: "gsi4sk",
    projects: None,
};

pub const INDEXES: [Index; 4] = [BY_CREATED, BY_SEEN, BY_EMAIL, BY_SEGMENT];

pub fn user_pk(account: &AccountId, id: ObjectId) -> String {
    format!("A#{account}#U#{id}")
}

/// The user id inside a key made by [`user_pk`].
pub fn user_id_of_pk(pk: &str) -> Option<ObjectId> {
    pk.rsplit_once("#U#")?.1.parse().ok()
}

/// Most shards an account's sort indexes may be written in.
pub const MAX_USER_INDEX_SHARDS: u16 = 64;

/// The partition of shard `shard` of the account's sort indexes; shard 0 is
/// the unsharded key.
pub fn users_index_pk(account: &AccountId, shard: u16) -> String {
    match shard {
        0 => format!("A#{account}#USERS"),
        shard => format!("A#{account}#USERS#{shard}"),
    }
}

/// Every partition a walk of the account's sort indexes reads.
pub fn users_index_pks(account: &AccountId, shards: u16) -> Vec<String> {
    (0..shards.max(1))
        .map(|shard| users_index_pk(account, shard))
        .collect()
}

/// The shard of the user `id` among `shards`: FNV-1a of the id, so users
/// spread evenly whatever their ids' time and counter parts.
pub fn user_index_shard(id: ObjectId, shards: u16) -> u16 {
    let hash = id
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % u64::from(shards.max(1))) as u16
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
    format!("A#{account}#EMAIL#{}", digest(email))
}

pub fn user_id_claim_pk(account: &AccountId, user_id: &str) -> String {
    format!("A#{account}#UID#{}", digest(user_id))
}

/// The record of an `Idempotency-Key` of `account` (see `idempotency`).
pub fn idempotency_key_pk(account: &AccountId, key: &str) -> String {
    format!("A#{account}#IK#{}", digest(key))
}

pub fn segment_pk(account: &AccountId, id: ObjectId) -> String {
    format!("A#{account}#S#{id}")
}

pub fn segment_name_claim_pk(account: &AccountId, name: &str) -> String {
    format!("A#{account}#SN#{}", digest(name))
}

pub fn segment_members_pk(account: &AccountId, segment: ObjectId) -> String {
    format!("A#{account}#S#{segment}#M")
}

pub fn membership_sk(segment: ObjectId) -> String {
    format!("{MEMBERSHIP_PREFIX}{segment}")
}

/// A conversation's key: its id with every hex digit inverted, so that
/// newer conversations sort first.
pub fn conversation_sk(id: ObjectId) -> String {
    let inverted: String = id
        .to_string()
        .chars()
        .map(|digit| {
            let value = digit.to_digit(16).expect("an id is hex");
            char::from_digit(15 - value, 16).expect("a hex digit")
        })
        .collect();
    format!("{CONVERSATION_PREFIX}{inverted}")
}

/// The key a conversation had before [`conversation_sk`] (see
/// `store::conversations`).
pub fn legacy_conversation_sk(id: ObjectId) -> String {
    format!("{LEGACY_CONVERSATION_PREFIX}{id}")
}

pub fn ghost_sk(old_sort_key: &str) -> String {
    format!("{GHOST_PREFIX}{old_sort_key}")
}

pub fn cursor_pk(account: &AccountId, cursor: ObjectId) -> String {
    format!("A#{account}#CUR#{cursor}")
}

/// The members-index partition of the paging cursors that rest on a user's
/// place, so that erasing the user finds them.
pub fn cursors_of_user_pk(account: &AccountId, user: ObjectId) -> String {
    format!("A#{account}#U#{user}#CUR")
}

/// The partitions of the pointers to unfinished export jobs (`XJOB#{shard}`).
pub const EXPORT_POINTER_PREFIX: &str = "XJOB#";

/// How many partitions clean-up jobs are spread over.
pub const JOB_SHARDS: u8 = 4;

/// The partition of the clean-up job of the object `id`: spread by the id,
/// so that each job has one known place.
pub fn job_pk(id: ObjectId) -> String {
    format!("JOB#{}", shard_of(id, JOB_SHARDS))
}

/// The shard of the object `id` among `shards`: by the id's last character,
/// so that each object has one known place.
pub fn shard_of(id: ObjectId, shards: u8) -> u8 {
    id.to_string().bytes().last().unwrap_or(0) % shards
}

/// Every job partition, for the sweep.
pub fn job_pks() -> impl Iterator<Item = String> {
    (0..JOB_SHARDS).map(|shard| format!("JOB#{shard}"))
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

/// What an item's keys say it is, for a walk over the whole table (`stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind<'a> {
    Account(&'a str),
    /// A token (its account is an attribute, not part of the key).
    Token,
    User(&'a str),
    Segment(&'a str),
    Other,
}

/// The kind of the item keyed `pk`/`sk`, with its account where the key has it.
pub fn kind_of<'a>(pk: &'a str, sk: &str) -> KeyKind<'a> {
    if let Some(account) = pk.strip_prefix("ACCOUNT#") {
        return if sk == ACCOUNT_SK {
            KeyKind::Account(account)
        } else {
            KeyKind::Other
        };
    }
    if pk.starts_with("T#") && sk == TOKEN_SK {
        return KeyKind::Token;
    }
    let Some((account, rest)) = pk.strip_prefix("A#").and_then(|rest| rest.split_once('#')) else {
        return KeyKind::Other;
    };
    match (rest.split_once('#'), sk) {
        (Some(("U", _)), PROFILE_SK) => KeyKind::User(account),
        (Some(("S", _)), SEGMENT_SK) => KeyKind::Segment(account),
        _ => KeyKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_their_kind_and_account() {
        let acme = AccountId::parse("acme").unwrap();
        let id = ObjectId::new();
        assert_eq!(
            kind_of(&account_pk(&acme), ACCOUNT_SK),
            KeyKind::Account("acme")
        );
        assert_eq!(kind_of(&token_pk("ab12"), TOKEN_SK), KeyKind::Token);
        assert_eq!(
            kind_of(&user_pk(&acme, id), PROFILE_SK),
            KeyKind::User("acme")
        );
        assert_eq!(
            kind_of(&user_pk(&acme, id), &conversation_sk(id)),
            KeyKind::Other
        );
        assert_eq!(
            kind_of(&segment_pk(&acme, id), SEGMENT_SK),
            KeyKind::Segment("acme")
        );
        assert_eq!(
            kind_of(&user_id_claim_pk(&acme, "u"), CLAIM_SK),
            KeyKind::Other
        );
    }

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
    fn conversations_sort_after_the_profile_newest_first() {
        let older = ObjectId::at_seconds(5);
        let newer = ObjectId::new();
        let mut keys = [
            MEMBERSHIP_PREFIX.to_owned(),
            legacy_conversation_sk(newer),
            conversation_sk(older),
            GHOST_PREFIX.to_owned(),
            conversation_sk(newer),
            PROFILE_SK.to_owned(),
        ];
        keys.sort();
        assert_eq!(keys[3], PROFILE_SK);
        assert_eq!(keys[4], conversation_sk(newer));
        assert_eq!(keys[5], conversation_sk(older));
        assert!(conversation_sk(newer).starts_with(PROFILE_SK));
        assert!(
            conversation_sk(ObjectId::at_seconds(0)) < format!("{CONVERSATION_PREFIX}{PAST_HEX}")
        );
        assert!(
            legacy_conversation_sk(ObjectId::at_seconds(u32::MAX as i64))
                < format!("{LEGACY_CONVERSATION_PREFIX}{PAST_HEX}")
        );
        assert_eq!(conversation_sk(older).len(), 2 + 24);
    }

    #[test]
    fn client_text_enters_keys_only_as_a_fixed_size_digest() {
        let account = AccountId::parse(&"a".repeat(64)).unwrap();
        let long = "\u{1F600}".repeat(1024);
        for key in [
            email_pk(&account, &long),
            user_id_claim_pk(&account, &long),
            segment_name_claim_pk(&account, &long),
        ] {
            assert!(key.len() < 200, "{} bytes", key.len());
            assert!(!key.contains('\u{1F600}'));
        }
        assert_eq!(email_pk(&account, "a@b.c"), email_pk(&account, "a@b.c"));
        assert_ne!(email_pk(&account, "a@b.c"), email_pk(&account, "A@b.c"));
    }

    #[test]
    fn users_spread_evenly_over_the_index_shards() {
        let account = AccountId::parse("acme").unwrap();
        assert_eq!(users_index_pk(&account, 0), "A#acme#USERS");
        assert_eq!(users_index_pk(&account, 3), "A#acme#USERS#3");
        assert_eq!(users_index_pks(&account, 1), ["A#acme#USERS"]);
        assert_eq!(users_index_pks(&account, 4).len(), 4);
        for shards in [1_u16, 4, 16] {
            let mut counts = vec![0_u32; usize::from(shards)];
            for _ in 0..16_000 {
                let shard = user_index_shard(ObjectId::new(), shards);
                counts[usize::from(shard)] += 1;
            }
            let expected = 16_000 / u32::from(shards);
            for count in counts {
                assert!(
                    count.abs_diff(expected) < expected / 5 + 20,
                    "{shards}: {count}"
                );
            }
        }
        // One user always lands in the same shard.
        let id = ObjectId::new();
        assert_eq!(user_index_shard(id, 16), user_index_shard(id, 16));
    }

    #[test]
    fn user_keys_round_trip() {
        let account = AccountId::parse("acme").unwrap();
        let id = ObjectId::new();
        assert_eq!(user_id_of_pk(&user_pk(&account, id)), Some(id));
        assert_eq!(user_id_of_pk("A#acme#S#x"), None);
    }
}

//! Object ids: 24 lowercase hex characters, time-ordered like MongoDB ObjectIds
//! (4 bytes of Unix seconds, 5 random bytes fixed per process, a 3-byte counter),
//! so ids sort by creation time and never collide between concurrent writers.
//!
//! A request that carries an `Idempotency-Key` draws its new ids from an
//! [`IdSeed`] instead: the same key gives the same ids, in the same order, to
//! every attempt of the request, so an attempt that repeats one a crash cut
//! short finds the objects the first one wrote under the ids it would write
//! (see `http::idempotency`).

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A 12-byte object id, shown as 24 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId([u8; 12]);

/// How an id is spelled, as messages say it.
pub const ID_SHAPE: &str = "24 hexadecimal characters";

/// The text was not 24 hexadecimal characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be {ID_SHAPE}")]
pub struct MalformedId;

fn process_random() -> &'static [u8; 5] {
    static RANDOM: OnceLock<[u8; 5]> = OnceLock::new();
    RANDOM.get_or_init(|| {
        let mut bytes = [0u8; 5];
        bytes.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..5]);
        bytes
    })
}

fn next_counter() -> u32 {
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    COUNTER
        .get_or_init(|| {
            let seed = uuid::Uuid::new_v4();
            let b = seed.as_bytes();
            AtomicU32::new(u32::from_be_bytes([0, b[0], b[1], b[2]]))
        })
        .fetch_add(1, Ordering::Relaxed)
}

/// The source of the new ids (and generated `userId`s) of one request that
/// carries an idempotency key: the n-th draw of a seed is a function of the
/// seed alone. Object ids keep their time part: the seconds at which the key
/// was first claimed.
#[derive(Debug)]
pub struct IdSeed {
    seconds: u32,
    secret: [u8; 32],
    drawn: AtomicU32,
}

tokio::task_local! {
    static SEED: IdSeed;
}

impl IdSeed {
    /// The seed of a key first claimed at `seconds`; `secret` names the key
    /// (and its account) and is never shown.
    pub fn new(seconds: i64, secret: [u8; 32]) -> Self {
        Self {
            seconds: seconds.clamp(0, u32::MAX as i64) as u32,
            secret,
            drawn: AtomicU32::new(0),
        }
    }

    /// Runs `work` with its new ids drawn from this seed.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        SEED.scope(self, work).await
    }

    fn draw(&self) -> [u8; 32] {
        let n = self.drawn.fetch_add(1, Ordering::Relaxed);
        Sha256::new()
            .chain_update(self.secret)
            .chain_update(n.to_be_bytes())
            .finalize()
            .into()
    }

    /// The next draw of the current task's seed, if it has one.
    fn next() -> Option<(u32, [u8; 32])> {
        SEED.try_with(|seed| (seed.seconds, seed.draw())).ok()
    }
}

/// A new random (version 4) UUID, drawn from the request's [`IdSeed`] when
/// it has one: what a user created without a `userId` is given.
pub fn new_uuid() -> uuid::Uuid {
    match IdSeed::next() {
        Some((_, drawn)) => {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&drawn[..16]);
            uuid::Builder::from_random_bytes(bytes).into_uuid()
        }
        None => uuid::Uuid::new_v4(),
    }
}

impl ObjectId {
    /// A new id for an object created now (or drawn from the request's
    /// [`IdSeed`]).
    pub fn new() -> Self {
        if let Some((seconds, drawn)) = IdSeed::next() {
            let mut bytes = [0u8; 12];
            bytes[..4].copy_from_slice(&seconds.to_be_bytes());
            bytes[4..].copy_from_slice(&drawn[..8]);
            return Self(bytes);
        }
        Self::at_seconds(crate::model::Timestamp::now().unix_seconds())
    }

    /// A new id whose time part is `seconds` since the Unix epoch.
    pub fn at_seconds(seconds: i64) -> Self {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&(seconds.clamp(0, u32::MAX as i64) as u32).to_be_bytes());
        bytes[4..9].copy_from_slice(process_random());
        bytes[9..].copy_from_slice(&next_counter().to_be_bytes()[1..]);
        Self(bytes)
    }

    /// Seconds since the Unix epoch at which the id was made.
    pub fn seconds(&self) -> u32 {
        u32::from_be_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
}

impl Default for ObjectId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for ObjectId {
    type Err = MalformedId;

    /// Accepts exactly 24 hex characters; upper-case letters are refused so
    /// that one object has exactly one spelling.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let raw = text.as_bytes();
        if raw.len() != 24
            || !raw
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            return Err(MalformedId);
        }
        let mut bytes = [0u8; 12];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| MalformedId)?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

impl Serialize for ObjectId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_24_lowercase_hex_and_parses_back() {
        let id = ObjectId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 24);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(text.parse::<ObjectId>(), Ok(id));
    }

    #[test]
    fn ids_made_later_sort_after_and_never_repeat() {
        let ids: Vec<ObjectId> = (0..1000).map(|_| ObjectId::new()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        assert!(ObjectId::at_seconds(1_000) < ObjectId::at_seconds(2_000));
    }

    #[tokio::test]
    async fn a_seed_gives_the_same_ids_in_the_same_order_to_every_attempt() {
        let attempt = |secret: [u8; 32]| {
            IdSeed::new(1_548_250_350, secret)
                .scope(async { (ObjectId::new(), new_uuid(), ObjectId::new()) })
        };
        let first = attempt([7; 32]).await;
        assert_eq!(attempt([7; 32]).await, first);
        assert_ne!(attempt([8; 32]).await, first);
        assert_ne!(first.0, first.2);
        assert_eq!(first.0.seconds(), 1_548_250_350);
        assert_eq!(first.1.get_version_num(), 4);
        assert_ne!(ObjectId::new(), first.0, "no seed outside the scope");
    }

    #[test]
    fn time_part_is_the_creation_second() {
        let id = ObjectId::at_seconds(1_548_250_350);
        assert_eq!(id.seconds(), 1_548_250_350);
        assert!(id.to_string().starts_with("5c486cee"));
    }

    #[test]
    fn refuses_anything_but_24_lowercase_hex() {
        for bad in [
            "",
            "5c486eeebda7873576a379e",
            "5c486eeebda7873576a379e44",
            "5C486EEEBDA7873576A379E4",
            "5c46d514bda7873www6a30c48",
            "zc486eeebda7873576a379e4",
            "5c486eeebda7873576a379é",
        ] {
            assert_eq!(bad.parse::<ObjectId>(), Err(MalformedId), "{bad:?}");
        }
    }
}

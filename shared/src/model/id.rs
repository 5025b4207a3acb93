//! Object ids: 24 lowercase hex characters, time-ordered like MongoDB ObjectIds
//! (4 bytes of Unix seconds, 5 random bytes fixed per process, a 3-byte counter),
//! so ids sort by creation time and never collide between concurrent writers.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 12-byte object id, shown as 24 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId([u8; 12]);

/// The text was not 24 hexadecimal characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 24 hexadecimal characters")]
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

impl ObjectId {
    /// A new id for an object created now.
    pub fn new() -> Self {
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

//! The records behind `Idempotency-Key`: one item per key and account, kept
//! for a day (DynamoDB's TTL deletes it later; until then a record past its
//! day counts as absent).
//!
//! A request with a key first *claims* it: a conditional put of a record
//! with the request's fingerprint and a lease. The attempt that wins does
//! the work and then stores its answer on the record, if it still holds the
//! lease. Any other attempt reads the record: another request under the
//! same key is refused (`422`); a stored answer is answered again; a lease
//! that is still running means the first attempt is at work (the caller
//! waits, then answers `409`); a lease that ran out means that attempt
//! stopped (a crash, a timeout, a `5xx`), and this one takes it over.
//!
//! Work that a stopped attempt did is not done twice: every attempt under
//! one key draws the same new ids ([`IdSeed`]), so the repeat finds the
//! objects already written under its own ids and answers as if it had
//! written them (see `create_user`, `record_conversation`, `create_segment`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::items::{attr, from_item, n, s, to_item};
use super::tx::{Expr, Outcome, absent};
use super::{Store, keys};
use crate::error::ApiError;
use crate::model::{AccountId, IdSeed, Timestamp};

/// How long a key's answer is kept: a day.
pub const IDEMPOTENCY_KEY_LIFETIME_SECONDS: i64 = 24 * 60 * 60;

/// How long an attempt holds a key before another may take it over: longer
/// than any function's timeout for a write (10 s) with room to spare.
const LEASE_MILLIS: i64 = 30_000;

/// The largest answer kept (an item holds 400 KB with its names); a larger
/// one is not kept, and a repeat does the work again under the same ids.
pub const MAX_STORED_ANSWER_BYTES: usize = 300 * 1024;

/// An answer as it is kept and replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub status: u16,
    #[serde(rename = "contentType", skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The `Location` of a `202` (an export job).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    pub body: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyRecord {
    pk: String,
    sk: String,
    /// The SHA-256 of the request the key was first used with.
    request: String,
    /// When the key was first claimed (Unix seconds): the time part of the
    /// ids its attempts draw.
    claimed: i64,
    /// The token of the attempt that holds the key ...
    lease: String,
    /// ... until this instant (Unix milliseconds).
    #[serde(rename = "leaseUntil")]
    lease_until: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    answer: Option<StoredAnswer>,
    #[serde(rename = "expiresAt")]
    expires_at: i64,
}

/// What a claim of a key found.
#[derive(Debug)]
pub enum KeyClaim {
    /// This attempt holds the key: do the work with the grant's ids.
    Granted(KeyGrant),
    /// The answer of an earlier attempt of the same request.
    Answered(StoredAnswer),
    /// The key was first used with another request.
    OtherRequest,
    /// Another attempt is at work on it.
    InProgress,
}

/// The hold of one attempt on a key.
#[derive(Debug)]
pub struct KeyGrant {
    record: KeyRecord,
}

impl KeyGrant {
    /// The ids this attempt draws: the same for every attempt under the key.
    pub fn seed(&self) -> IdSeed {
        let secret: [u8; 32] = Sha256::new()
            .chain_update(b"idempotency ids\n")
            .chain_update(self.record.pk.as_bytes())
            .finalize()
            .into();
        IdSeed::new(self.record.claimed, secret)
    }
}

fn new_lease() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Store {
    /// Claims `key` of `account` for the request whose fingerprint is
    /// `request` (see [`KeyClaim`]).
    pub async fn claim_idempotency_key(
        &self,
        account: &AccountId,
        key: &str,
        request: &str,
    ) -> Result<KeyClaim, ApiError> {
        let pk = keys::idempotency_key_pk(account, key);
        for _ in 0..3 {
            let now = Timestamp::now();
            let fresh = KeyRecord {
                pk: pk.clone(),
                sk: keys::CLAIM_SK.to_owned(),
                request: request.to_owned(),
                claimed: now.unix_seconds(),
                lease: new_lease(),
                lease_until: now.millis() + LEASE_MILLIS,
                answer: None,
                expires_at: now.unix_seconds() + IDEMPOTENCY_KEY_LIFETIME_SECONDS,
            };
            let free = absent()
                .or(Expr::new("#expires < :now").name("#expires", attr::EXPIRES_AT))
                .value(":now", n(now.unix_seconds()));
            if self.put_key_record(&fresh, free).await? {
                return Ok(KeyClaim::Granted(KeyGrant { record: fresh }));
            }
            let Some(found) = self
                .get_consistent("GetItem idempotency key", &pk, keys::CLAIM_SK)
                .await?
                .map(from_item::<KeyRecord>)
                .transpose()?
            else {
                continue;
            };
            if found.expires_at < now.unix_seconds() {
                continue;
            }
            if found.request != request {
                return Ok(KeyClaim::OtherRequest);
            }
            if let Some(answer) = found.answer {
                return Ok(KeyClaim::Answered(answer));
            }
            if found.lease_until > now.millis() {
                return Ok(KeyClaim::InProgress);
            }
            let held_by = Expr::new("lease = :lease").value(":lease", s(&found.lease));
            let taken = KeyRecord {
                lease: new_lease(),
                lease_until: now.millis() + LEASE_MILLIS,
                ..found
            };
            if self.put_key_record(&taken, held_by).await? {
                return Ok(KeyClaim::Granted(KeyGrant { record: taken }));
            }
        }
        Err(ApiError::Unavailable {
            detail: "claim idempotency key: contended".into(),
        })
    }

    /// Keeps `answer` as the key's answer, if `grant` still holds the key
    /// (an attempt that lost it answers its own client all the same).
    pub async fn answer_idempotency_key(
        &self,
        grant: KeyGrant,
        answer: StoredAnswer,
    ) -> Result<(), ApiError> {
        let held_by = Expr::new("lease = :lease").value(":lease", s(&grant.record.lease));
        let answered = KeyRecord {
            answer: Some(answer),
            ..grant.record
        };
        self.put_key_record(&answered, held_by).await.map(|_| ())
    }

    /// Gives the key up without an answer (the attempt failed in a way a
    /// retry may mend): the next attempt takes it over at once, with the same
    /// ids.
    pub async fn release_idempotency_key(&self, grant: KeyGrant) -> Result<(), ApiError> {
        let held_by = Expr::new("lease = :lease").value(":lease", s(&grant.record.lease));
        let released = KeyRecord {
            lease_until: 0,
            ..grant.record
        };
        self.put_key_record(&released, held_by).await.map(|_| ())
    }

    /// Writes `record` if `condition` holds; `false` when it does not.
    async fn put_key_record(&self, record: &KeyRecord, condition: Expr) -> Result<bool, ApiError> {
        match self
            .put_if("PutItem idempotency key", to_item(record)?, condition)
            .await?
        {
            Outcome::Committed => Ok(true),
            Outcome::ConditionFailed(_) => Ok(false),
            Outcome::Busy => Err(ApiError::Unavailable {
                detail: "PutItem idempotency key: busy".into(),
            }),
        }
    }
}

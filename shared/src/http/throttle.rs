//! Per-account request limits. In AWS they are API Gateway's usage plan:
//! the authorizer names the account's usage-plan key
//! ([`usage_identifier_key`]) and API Gateway throttles each key to the plan's
//! rate and burst, answering `429` with `Retry-After` itself (the `THROTTLED`
//! gateway response). The local server applies the same limits to the same
//! accounts with [`AccountThrottle`], a token bucket per account, so one
//! noisy tenant cannot take the service from the others there either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::Account;
use crate::error::ApiError;
use crate::model::AccountId;

/// The value of `account`'s API key in the usage plan: what the authorizer
/// answers as `usageIdentifierKey`, and what `scripts/provision_account.sh`
/// creates (`users-api account usage-key` prints it). Derived, so nothing
/// has to be stored; not a secret (API Gateway never takes it from a client,
/// the API's key source is the authorizer).
pub fn usage_identifier_key(account: &AccountId) -> String {
    let digest = Sha256::new()
        .chain_update(b"users-api usage plan key\n")
        .chain_update(account.as_str().as_bytes())
        .finalize();
    format!("uak_{}", hex::encode(digest))
}

/// The steady rate (requests per second) and the burst one account may send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountLimits {
    pub rate_per_second: f64,
    pub burst: u32,
}

impl AccountLimits {
    /// The template's defaults (`AccountRateLimit`, `AccountBurstLimit`).
    pub const DEFAULT: Self = Self {
        rate_per_second: 50.0,
        burst: 100,
    };

    /// `USERS_API_ACCOUNT_RATE_LIMIT` and `USERS_API_ACCOUNT_BURST_LIMIT`,
    /// else the defaults; a rate of `0` turns the limit off (`None`).
    pub fn from_env() -> Option<Self> {
        let number = |name: &str| std::env::var(name).ok()?.trim().parse::<f64>().ok();
        let rate = number("USERS_API_ACCOUNT_RATE_LIMIT").unwrap_or(Self::DEFAULT.rate_per_second);
        let burst =
            number("USERS_API_ACCOUNT_BURST_LIMIT").map_or(Self::DEFAULT.burst, |b| b as u32);
        (rate > 0.0).then_some(Self {
            rate_per_second: rate,
            burst: burst.max(1),
        })
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before the full (idle) ones are dropped.
const BUCKETS_KEPT: usize = 10_000;

/// A token bucket per account.
#[derive(Debug, Clone)]
pub struct AccountThrottle {
    limits: AccountLimits,
    buckets: Arc<Mutex<HashMap<AccountId, Bucket>>>,
}

impl AccountThrottle {
    pub fn new(limits: AccountLimits) -> Self {
        Self {
            limits,
            buckets: Arc::default(),
        }
    }

    /// Takes one request from `account`'s bucket; `Err` with the time until
    /// the next one is allowed when it is empty.
    pub fn admit(&self, account: &AccountId, now: Instant) -> Result<(), Duration> {
        let AccountLimits {
            rate_per_second,
            burst,
        } = self.limits;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= BUCKETS_KEPT && !buckets.contains_key(account) {
            buckets.retain(|_, bucket| {
                let refilled =
                    bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate_per_second;
                refilled < f64::from(burst)
            });
        }
        let bucket = buckets.entry(account.clone()).or_insert(Bucket {
            tokens: f64::from(burst),
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate_per_second).min(f64::from(burst));
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            (1.0 - bucket.tokens) / rate_per_second,
        ))
    }
}

/// The middleware (after the auth layer): `429` with `Retry-After` when the
/// account's bucket is empty.
pub async fn throttle_accounts(
    State(throttle): State<AccountThrottle>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if let Ok(Account(account)) = Account::from_request_parts(&mut parts, &()).await
        && let Err(wait) = throttle.admit(&account, Instant::now())
    {
        return ApiError::Throttled {
            retry_after_seconds: wait.as_secs_f64().ceil().max(1.0) as u32,
        }
        .into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> AccountId {
        AccountId::parse(name).unwrap()
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_accounts_are_apart() {
        let throttle = AccountThrottle::new(AccountLimits {
            rate_per_second: 10.0,
            burst: 3,
        });
        let start = Instant::now();
        let acme = account("acme");
        for _ in 0..3 {
            assert_eq!(throttle.admit(&acme, start), Ok(()));
        }
        let wait = throttle.admit(&acme, start).unwrap_err();
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        assert_eq!(
            throttle.admit(&account("globex"), start),
            Ok(()),
            "another account is not held back"
        );
        let later = start + Duration::from_millis(100);
        assert_eq!(
            throttle.admit(&acme, later),
            Ok(()),
            "one more after 1/rate"
        );
        assert!(throttle.admit(&acme, later).is_err());
        let much_later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(throttle.admit(&acme, much_later), Ok(()));
        }
        assert!(
            throttle.admit(&acme, much_later).is_err(),
            "never more than the burst"
        );
    }

    #[test]
    fn usage_keys_are_per_account_and_fit_api_gateway() {
        let acme = usage_identifier_key(&account("acme"));
        assert_eq!(acme, usage_identifier_key(&account("acme")));
        assert_ne!(acme, usage_identifier_key(&account("globex")));
        // API Gateway takes API key values of 20 to 128 characters.
        assert!((20..=128).contains(&acme.len()), "{acme}");
        assert!(acme.starts_with("uak_"));
    }
}

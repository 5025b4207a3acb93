//! Developer tokens and accounts. A token is shown once, when it is made; the
//! table holds only its SHA-256, so a leaked table leaks no credentials.

use aws_sdk_dynamodb::types::ReturnValue;
use sha2::{Digest, Sha256};

use super::items::{TokenItem, from_item, key, to_item};
use super::tx::{Outcome, absent};
use super::{Store, keys, sdk_error};
use crate::error::ApiError;
use crate::model::{AccountId, Timestamp};

/// The prefix that makes our tokens recognisable (e.g. to secret scanners).
pub const TOKEN_PREFIX: &str = "uat_";

/// A new random token: the prefix and 64 hex characters (244 random bits).
pub fn new_token() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("{TOKEN_PREFIX}{}{}", a.simple(), b.simple())
}

/// The SHA-256 of a token, as lowercase hex: what the table stores.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Records the account; `true` when it did not exist before.
    pub async fn ensure_account(&self, account: &AccountId) -> Result<bool, ApiError> {
        let mut item = key(keys::account_pk(account), keys::ACCOUNT_SK);
        item.insert(
            "createdAt".into(),
            super::items::n(Timestamp::now().millis()),
        );
        match self.put_if("PutItem account", item, absent()).await? {
            Outcome::Committed => Ok(true),
            Outcome::ConditionFailed(_) => Ok(false),
            Outcome::Busy => Err(ApiError::Unavailable {
                detail: "PutItem account: throttled".into(),
            }),
        }
    }

    /// Makes a token for the account (creating the account if needed) and
    /// returns it: the only time the plain token exists.
    pub async fn create_token(&self, account: &AccountId) -> Result<String, ApiError> {
        self.ensure_account(account).await?;
        let token = new_token();
        let item = TokenItem {
            pk: keys::token_pk(&hash_token(&token)),
            sk: keys::TOKEN_SK.to_owned(),
            account: account.to_string(),
            created_at: Timestamp::now().millis(),
        };
        match self
            .put_if("PutItem token", to_item(&item)?, absent())
            .await?
        {
            Outcome::Committed => Ok(token),
            Outcome::ConditionFailed(_) => {
                Err(ApiError::internal("a new token's hash was already taken"))
            }
            Outcome::Busy => Err(ApiError::Unavailable {
                detail: "PutItem token: throttled".into(),
            }),
        }
    }

    /// The account a token belongs to, or `None` for an unknown token.
    pub async fn resolve_token(&self, token: &str) -> Result<Option<AccountId>, ApiError> {
        let found = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(
                keys::token_pk(&hash_token(token)),
                keys::TOKEN_SK,
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem token", e))?;
        let Some(item) = found.item else {
            return Ok(None);
        };
        let item: TokenItem = from_item(item)?;
        AccountId::parse(&item.account)
            .map(Some)
            .map_err(|_| ApiError::internal("stored token names a malformed account"))
    }

    /// Revokes a token; `true` when it existed.
    pub async fn revoke_token(&self, token: &str) -> Result<bool, ApiError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(key(
                keys::token_pk(&hash_token(token)),
                keys::TOKEN_SK,
            )))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem token", e))?;
        Ok(deleted.attributes.is_some_and(|a| !a.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_are_sha256_hex() {
        let a = new_token();
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_ne!(a, new_token());
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

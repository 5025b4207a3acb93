//! Accounts: the tenant every object belongs to. A developer token resolves
//! to exactly one account, and every store operation is scoped by it.

use std::fmt;

/// An account name: 1..64 of `A-Za-z0-9_-` (it appears inside DynamoDB keys,
/// so `#` and other separators are excluded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("account names are 1 to 64 characters of A-Z, a-z, 0-9, _ and -")]
pub struct MalformedAccount;

impl AccountId {
    pub fn parse(name: &str) -> Result<Self, MalformedAccount> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(MalformedAccount)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_fit_in_keys() {
        assert!(AccountId::parse("dev").is_ok());
        assert!(AccountId::parse("acme_co-2").is_ok());
        assert!(AccountId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "a#b", "a b", "ä", &"a".repeat(65)] {
            assert_eq!(AccountId::parse(bad), Err(MalformedAccount), "{bad:?}");
        }
    }
}

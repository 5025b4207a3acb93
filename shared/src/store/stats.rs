//! What the table holds per account, for the operator (`users-api stats`):
//! one `Scan` of the keys (and a token's account), counted in memory. It
//! reads the whole table once, so it is an operator's tool, not an API route.

use std::collections::BTreeMap;

use super::items::Item;
use super::keys::{self, KeyKind};
use super::{Store, sdk_error};
use crate::error::ApiError;

/// The counts of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountStats {
    pub users: u64,
    pub segments: u64,
    pub tokens: u64,
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

impl Store {
    /// Every account (with a token, an account item, a user or a segment)
    /// and its counts, by account name.
    pub async fn account_stats(&self) -> Result<BTreeMap<String, AccountStats>, ApiError> {
        let mut stats: BTreeMap<String, AccountStats> = BTreeMap::new();
        let mut items = self
            .client
            .scan()
            .table_name(self.table())
            .projection_expression("#pk, #sk, #account")
            .expression_attribute_names("#pk", keys::PK)
            .expression_attribute_names("#sk", keys::SK)
            .expression_attribute_names("#account", "account")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| sdk_error("Scan stats", e))?;
            let (Some(pk), Some(sk)) = (text(&item, keys::PK), text(&item, keys::SK)) else {
                continue;
            };
            match keys::kind_of(pk, sk) {
                KeyKind::Account(account) => {
                    stats.entry(account.to_owned()).or_default();
                }
                KeyKind::Token => {
                    if let Some(account) = text(&item, "account") {
                        stats.entry(account.to_owned()).or_default().tokens += 1;
                    }
                }
                KeyKind::User(account) => stats.entry(account.to_owned()).or_default().users += 1,
                KeyKind::Segment(account) => {
                    stats.entry(account.to_owned()).or_default().segments += 1
                }
                KeyKind::Other => {}
            }
        }
        Ok(stats)
    }
}

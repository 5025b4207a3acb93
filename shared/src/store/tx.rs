//! Building blocks for `TransactWriteItems`: every multi-item change (a user
//! and its `userId` claim, a membership and its segment's counter) is written
//! in one transaction, so it happens whole or not at all.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::items::Item;
use super::{Store, is_transaction_cancelled, sdk_error};
use crate::error::ApiError;

/// Most actions DynamoDB accepts in one transaction.
pub const MAX_TRANSACTION_ITEMS: usize = 100;

/// An expression with its placeholders.
#[derive(Debug, Default, Clone)]
pub struct Expr {
    pub text: String,
    pub names: HashMap<String, String>,
    pub values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            ..Self::default()
        }
    }

    pub fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.names.insert(placeholder.to_owned(), name.to_owned());
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }
}

fn non_empty<K, V>(map: HashMap<K, V>) -> Option<HashMap<K, V>> {
    (!map.is_empty()).then_some(map)
}

/// The actions of one transaction.
#[derive(Debug, Default)]
pub struct Transaction {
    items: Vec<TransactWriteItem>,
}

impl Transaction {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Puts `item` if `condition` holds (e.g. `attribute_not_exists(pk)`).
    pub fn put(&mut self, table: &str, item: Item, condition: Option<Expr>) -> &mut Self {
        let condition = condition.unwrap_or_default();
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .set_condition_expression((!condition.text.is_empty()).then_some(condition.text))
            .set_expression_attribute_names(non_empty(condition.names))
            .set_expression_attribute_values(non_empty(condition.values))
            .build()
            .expect("put has table and item");
        self.items
            .push(TransactWriteItem::builder().put(put).build());
        self
    }

    /// Applies `update` (whose text may name placeholders of `condition`) if `condition` holds.
    pub fn update(
        &mut self,
        table: &str,
        key: Item,
        update: Expr,
        condition: Option<Expr>,
    ) -> &mut Self {
        let mut names = update.names;
        let mut values = update.values;
        let condition_text = condition.map(|c| {
            names.extend(c.names);
            values.extend(c.values);
            c.text
        });
        let action = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(update.text)
            .set_condition_expression(condition_text)
            .set_expression_attribute_names(non_empty(names))
            .set_expression_attribute_values(non_empty(values))
            .build()
            .expect("update has table, key and expression");
        self.items
            .push(TransactWriteItem::builder().update(action).build());
        self
    }

    pub fn delete(&mut self, table: &str, key: Item, condition: Option<Expr>) -> &mut Self {
        let condition = condition.unwrap_or_default();
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(key))
            .set_condition_expression((!condition.text.is_empty()).then_some(condition.text))
            .set_expression_attribute_names(non_empty(condition.names))
            .set_expression_attribute_values(non_empty(condition.values))
            .build()
            .expect("delete has table and key");
        self.items
            .push(TransactWriteItem::builder().delete(delete).build());
        self
    }
}

/// How a transaction ended.
pub enum Outcome {
    Committed,
    /// A condition failed or another transaction collided: re-read and decide.
    Cancelled,
}

impl Store {
    pub(crate) async fn commit(&self, transaction: Transaction) -> Result<Outcome, ApiError> {
        if transaction.is_empty() {
            return Ok(Outcome::Committed);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(transaction.items))
            .send()
            .await
        {
            Ok(_) => Ok(Outcome::Committed),
            Err(e) if is_transaction_cancelled(&e) => Ok(Outcome::Cancelled),
            Err(e) => Err(sdk_error("TransactWriteItems", e)),
        }
    }
}

/// A pause before retrying a cancelled transaction: grows with the attempt,
/// jittered so that racing writers spread out.
pub async fn backoff(attempt: u32) {
    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 10;
    let millis = (5u64 << attempt.min(6)) + jitter;
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}

//! The store's generic reads, written once: a partition (of the table or an
//! index) page by page through the SDK's paginator, one item read
//! consistently, whether one exists, and many by key (`BatchGetItem`, 100
//! keys a call, what DynamoDB leaves unprocessed asked again).

use std::ops::ControlFlow;
use std::sync::Mutex;

use aws_sdk_dynamodb::operation::query::paginator::QueryPaginatorItems;
use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::items::{ClaimItem, Item, from_item, key, s};
use super::keys::{self, Index};
use super::tx::{lock, take};
use super::{Store, sdk_error};
use crate::error::ApiError;
use crate::model::ObjectId;

impl Store {
    /// Every item of the partition `pk` of the table (read consistently) or
    /// of `index`, `page` items a request (DynamoDB's 1 MB when `None`): the
    /// SDK's paginator, whose pages are read as the items are taken.
    pub(crate) fn partition_items(
        &self,
        index: Option<Index>,
        pk: &str,
        page: Option<i32>,
    ) -> QueryPaginatorItems {
        self.client
            .query()
            .table_name(self.table())
            .set_index_name(index.map(|index| index.name.to_owned()))
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", index.map_or(keys::PK, |index| index.pk))
            .expression_attribute_values(":pk", s(pk))
            .consistent_read(index.is_none())
            .set_limit(page)
            .into_paginator()
            .items()
    }

    /// The id of the object holding a claim, read consistently.
    pub(crate) async fn claim_owner(&self, claim_pk: &str) -> Result<Option<ObjectId>, ApiError> {
        self.get_consistent("GetItem claim", claim_pk, keys::CLAIM_SK)
            .await?
            .map(|item| from_item::<ClaimItem>(item).map(|c| c.id))
            .transpose()
    }

    /// The item at a key, read consistently.
    pub(crate) async fn get_consistent(
        &self,
        operation: &str,
        pk: &str,
        sk: &str,
    ) -> Result<Option<Item>, ApiError> {
        let found = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(operation, e))?;
        Ok(found.item)
    }

    /// The items at `keys` that exist (BatchGetItem, 100 keys a call, trying
    /// again what DynamoDB leaves unprocessed); `consistent` for strong reads.
    pub(crate) async fn batch_get(
        &self,
        keys: Vec<Item>,
        consistent: bool,
    ) -> Result<Vec<Item>, ApiError> {
        let found = Mutex::new(Vec::with_capacity(keys.len()));
        for chunk in keys.chunks(100) {
            let pending = Mutex::new(chunk.to_vec());
            self.until_decided("BatchGetItem", || {
                let (pending, found) = (&pending, &found);
                async move {
                    let request = KeysAndAttributes::builder()
                        .set_keys(Some(take(pending)))
                        .consistent_read(consistent)
                        .build()
                        .map_err(|e| ApiError::internal_from("build BatchGetItem", e))?;
                    let output = self
                        .client
                        .batch_get_item()
                        .request_items(self.table(), request)
                        .send()
                        .await
                        .map_err(|e| sdk_error("BatchGetItem", e))?;
                    let items = output
                        .responses
                        .and_then(|mut r| r.remove(self.table()))
                        .unwrap_or_default();
                    lock(found).extend(items);
                    let rest = output
                        .unprocessed_keys
                        .and_then(|mut u| u.remove(self.table()))
                        .map(|rest| rest.keys)
                        .unwrap_or_default();
                    if rest.is_empty() {
                        return Ok(ControlFlow::Break(()));
                    }
                    *lock(pending) = rest;
                    Ok(ControlFlow::Continue(()))
                }
            })
            .await?;
        }
        Ok(take(&found))
    }

    /// Whether an item exists, read consistently.
    pub(crate) async fn item_exists(&self, pk: &str, sk: &str) -> Result<bool, ApiError> {
        Ok(self.get_consistent("GetItem", pk, sk).await?.is_some())
    }
}

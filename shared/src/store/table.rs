//! The table's one definition in code: the local server and the tests create
//! it on their engines from here; `template.yaml` mirrors it for AWS (a test
//! in `tests/tests/table.rs` checks the two agree).

use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, IndexStatus, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TableDescription, TableStatus,
};

use super::keys::{self, INDEXES, Index};
use super::{Store, sdk_error};
use crate::error::ApiError;

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("key schema has its required fields")
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("attribute definition has its required fields")
}

/// What `index` projects, as DynamoDB takes it.
fn projection(index: Index) -> Projection {
    match index.projects {
        None => Projection::builder().projection_type(ProjectionType::All),
        Some([]) => Projection::builder().projection_type(ProjectionType::KeysOnly),
        Some(names) => Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(names.iter().map(|&name| name.to_owned()).collect())),
    }
    .build()
}

/// Every attribute some key of the table or an index is made of.
fn key_attributes() -> Vec<&'static str> {
    let mut names: Vec<&str> = vec![keys::PK, keys::SK];
    for index in INDEXES {
        for name in [index.pk, index.sk] {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

impl Store {
    /// Creates the table with its indexes unless it exists (then adds the
    /// indexes it lacks, as a table from an older version does), and waits
    /// until it and its indexes are active.
    pub async fn ensure_table(&self) -> Result<(), ApiError> {
        match self
            .client
            .describe_table()
            .table_name(self.table())
            .send()
            .await
        {
            Ok(described) => {
                let present: Vec<String> = described
                    .table()
                    .map(|table| table.global_secondary_indexes())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|index| index.index_name().map(str::to_owned))
                    .collect();
                self.wait_active().await?;
                for index in INDEXES {
                    if !present.iter().any(|name| name == index.name) {
                        self.add_index(index).await?;
                    }
                }
                return Ok(());
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(sdk_error("DescribeTable", e)),
        }
        let indexes = INDEXES.iter().map(|&index| {
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.pk, KeyType::Hash))
                .key_schema(key(index.sk, KeyType::Range))
                .projection(projection(index))
                .build()
                .expect("index has its required fields")
        });
        let created = self
            .client
            .create_table()
            .table_name(self.table())
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key(keys::PK, KeyType::Hash))
            .key_schema(key(keys::SK, KeyType::Range))
            .set_attribute_definitions(Some(
                key_attributes().into_iter().map(string_attribute).collect(),
            ))
            .set_global_secondary_indexes(Some(indexes.collect()))
            .send()
            .await;
        match created {
            Ok(_) => self.enable_expiry().await,
            // Another process created it first.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => return Err(sdk_error("CreateTable", e)),
        }
        self.wait_active().await
    }

    /// Lets DynamoDB delete expired cursors and ghosts (`expiresAt`). Best
    /// effort: the code checks expiry itself, so an engine without TTL only
    /// keeps dead items longer.
    async fn enable_expiry(&self) {
        self.wait_active().await.ok();
        let specification = aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
            .attribute_name(super::items::attr::EXPIRES_AT)
            .enabled(true)
            .build();
        let result = match specification {
            Ok(specification) => self
                .client
                .update_time_to_live()
                .table_name(self.table())
                .time_to_live_specification(specification)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error("UpdateTimeToLive", e).to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = result {
            tracing::warn!(error = %error, "could not enable TTL on the table");
        }
    }

    /// Adds `index` to the existing table (DynamoDB fills it from the items
    /// already there) and waits until it is active.
    async fn add_index(&self, index: Index) -> Result<(), ApiError> {
        tracing::info!(index = index.name, "adding a missing index to the table");
        let create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(index.name)
            .key_schema(key(index.pk, KeyType::Hash))
            .key_schema(key(index.sk, KeyType::Range))
            .projection(projection(index))
            .build()
            .map_err(|e| ApiError::internal(format!("build index {}: {e}", index.name)))?;
        self.client
            .update_table()
            .table_name(self.table())
            .set_attribute_definitions(Some(
                key_attributes().into_iter().map(string_attribute).collect(),
            ))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("UpdateTable", e))?;
        // Filling an index from a large table takes a while: up to 5 minutes.
        self.wait_until(&format!("index {}", index.name), 3_000, |table| {
            table
                .global_secondary_indexes()
                .iter()
                .find(|found| found.index_name() == Some(index.name))
                // An engine that reports no status has built the index at once.
                .is_some_and(|found| {
                    matches!(found.index_status(), None | Some(IndexStatus::Active))
                })
        })
        .await
    }

    async fn wait_active(&self) -> Result<(), ApiError> {
        self.wait_until(&format!("table {}", self.table()), 600, |table| {
            table.table_status() == Some(&TableStatus::Active)
        })
        .await
    }

    /// Reads the table's description every 100 ms, at most `tries` times,
    /// until `ready` holds; `what` names what became active.
    async fn wait_until(
        &self,
        what: &str,
        tries: usize,
        ready: impl Fn(&TableDescription) -> bool,
    ) -> Result<(), ApiError> {
        for _ in 0..tries {
            let described = self
                .client
                .describe_table()
                .table_name(self.table())
                .send()
                .await
                .map_err(|e| sdk_error("DescribeTable", e))?;
            if described.table().is_some_and(&ready) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ApiError::Unavailable {
            detail: format!("{what} did not become active"),
        })
    }

    /// Deletes the table (tests clean up their own tables on shared engines).
    pub async fn delete_table(&self) -> Result<(), ApiError> {
        self.client
            .delete_table()
            .table_name(self.table())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("DeleteTable", e))
    }

    /// Whether the database answers and the table exists (`GET /health`).
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.client
            .describe_table()
            .table_name(self.table())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_error("DescribeTable", e))
    }
}

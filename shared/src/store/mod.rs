//! The store: the domain's persistence operations in domain terms, implemented
//! once, on DynamoDB. What differs between AWS, moto, LocalStack and the
//! embedded engine is only the endpoint the client is built with.
//!
//! There is deliberately no store trait with a second, in-memory
//! implementation: every test runs against a real DynamoDB API (the embedded
//! engine or moto), so there is nothing a mock would be for.

mod activity;
mod cleanup;
mod conversations;
mod export;
mod export_jobs;
mod idempotency;
mod index_walk;
pub mod items;
pub mod keys;
mod list;
mod meter;
mod read_ahead;
mod reads;
mod segments;
pub mod size;
mod stats;
mod table;
mod tokens;
mod tx;
mod users;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::ApiError;

pub use activity::GHOST_LIFETIME_SECONDS;
pub use cleanup::{CleanupConfig, Sweep};
pub use conversations::{ConversationPage, DETAILS_CONVERSATIONS, MAX_CONVERSATIONS_PAGE};
pub use export::{EXPORT_PAGE, ExportPosition, ExportReader};
pub use export_jobs::{EXPORT_JOB_LIFETIME_SECONDS, ExportJob, ExportJobState, Lease};
pub use idempotency::{
    IDEMPOTENCY_KEY_LIFETIME_SECONDS, KeyClaim, KeyGrant, MAX_STORED_ANSWER_BYTES, StoredAnswer,
};
pub use list::{Page, READ_BUDGET};
pub use meter::{Meter, MeterReading};
pub use read_ahead::{PAGES_AHEAD, READ_AHEAD_SLICES};
pub use segments::SegmentChange;
pub use stats::AccountStats;
pub use tokens::{hash_token, new_token};

/// The environment variable naming the table.
pub const TABLE_ENV: &str = "TABLE_NAME";
/// The table name when none is configured.
pub const DEFAULT_TABLE: &str = "users-api";
/// The environment variable with the number of shards of each account's
/// sort indexes (see [`keys::users_index_pk`]); 1 when unset.
pub const INDEX_SHARDS_ENV: &str = "USERS_INDEX_SHARDS";

/// The DynamoDB-backed store. Cheap to clone: clones share one client.
#[derive(Clone)]
pub struct Store {
    client: Client,
    table: Arc<str>,
    /// What the store's calls have cost since it was made.
    meter: Meter,
    cleanup: CleanupConfig,
    /// Shards of each account's sort indexes: where new entries go, and how
    /// many partitions a walk merges.
    index_shards: u16,
}

/// How long one attempt of a DynamoDB call may take before the SDK gives it
/// up (and retries it, within [`OPERATION_TIMEOUT`]).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one DynamoDB call may take with the SDK's retries: under the
/// API functions' 10 s timeout, so a stuck call is answered `503` by us, not
/// cut off by Lambda.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(7);

impl Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store on `client`'s configuration, with a [`Meter`] on its calls.
    pub fn new(client: Client, table: impl Into<Arc<str>>) -> Self {
        Self::from_config(client.config().to_builder(), table)
    }

    /// A store on a client made from `config`, with a [`Meter`] on its calls.
    pub fn from_config(
        config: aws_sdk_dynamodb::config::Builder,
        table: impl Into<Arc<str>>,
    ) -> Self {
        let meter = Meter::default();
        let metered = config.interceptor(meter.interceptor()).build();
        Self {
            client: Client::from_conf(metered),
            table: table.into(),
            meter,
            cleanup: CleanupConfig::default(),
            index_shards: 1,
        }
    }

    /// The same store writing and reading each account's sort indexes in
    /// `shards` shards (1 to [`keys::MAX_USER_INDEX_SHARDS`]).
    pub fn with_index_shards(mut self, shards: u16) -> Self {
        self.index_shards = shards.clamp(1, keys::MAX_USER_INDEX_SHARDS);
        self
    }

    pub fn index_shards(&self) -> u16 {
        self.index_shards
    }

    /// The same store with another clean-up configuration.
    pub fn with_cleanup(mut self, cleanup: CleanupConfig) -> Self {
        self.cleanup = cleanup;
        self
    }

    /// A store on the standard AWS configuration (region, credentials,
    /// `AWS_ENDPOINT_URL`), with `endpoint` overriding the endpoint when given.
    pub async fn from_env(endpoint: Option<&str>, table: impl Into<Arc<str>>) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let config = crate::aws::sdk_config(endpoint, Some(timeouts)).await;
        Self::from_config(aws_sdk_dynamodb::config::Builder::from(&config), table)
            .with_cleanup(CleanupConfig::from_env())
            .with_index_shards(index_shards_from_env())
    }

    /// The store a Lambda function works on: the table `TABLE_ENV` names
    /// (`DEFAULT_TABLE` without it), on the standard AWS configuration.
    pub async fn for_lambda() -> Self {
        let table = std::env::var(TABLE_ENV).unwrap_or_else(|_| DEFAULT_TABLE.to_owned());
        Self::from_env(None, table).await
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What the store's DynamoDB calls have cost so far.
    pub fn meter(&self) -> MeterReading {
        self.meter.reading()
    }

    /// Items DynamoDB has read for this store so far (what a filtered walk
    /// cost).
    pub fn items_read(&self) -> u64 {
        self.meter.reading().items_read
    }
}

/// The shard count [`INDEX_SHARDS_ENV`] names. A value that is not a number
/// from 1 to [`keys::MAX_USER_INDEX_SHARDS`] stops the process: guessing
/// could read fewer shards than the data is written in.
fn index_shards_from_env() -> u16 {
    match std::env::var(INDEX_SHARDS_ENV) {
        Err(_) => 1,
        Ok(text) => match text.trim().parse::<u16>() {
            Ok(shards) if (1..=keys::MAX_USER_INDEX_SHARDS).contains(&shards) => shards,
            _ => panic!(
                "{INDEX_SHARDS_ENV} must be a number from 1 to {}, not {text:?}",
                keys::MAX_USER_INDEX_SHARDS
            ),
        },
    }
}

/// DynamoDB error codes that mean "slow down / try again", answered as 503.
const RETRYABLE_CODES: [&str; 6] = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalServerError",
    "LimitExceededException",
];

/// Maps an SDK failure to the API: unreachable or throttled is 503, anything
/// else is a bug (500). The SDK's text goes to the log, never to the client.
pub(crate) fn sdk_error<E, R>(operation: &str, error: SdkError<E, R>) -> ApiError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let detail = format!("{operation}: {}", DisplayErrorContext(&error));
    match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            ApiError::Unavailable { detail }
        }
        SdkError::ServiceError(service)
            if service
                .err()
                .code()
                .is_some_and(|c| RETRYABLE_CODES.contains(&c)) =>
        {
            ApiError::Unavailable { detail }
        }
        _ => ApiError::Internal {
            detail,
            source: Some(Box::new(error)),
        },
    }
}

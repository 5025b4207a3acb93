//! The clean-up Lambda: builds the store once, then answers every event with
//! [`cleanup_function::handle`].

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::http::init_logging;
use shared::store::{DEFAULT_TABLE, Store, TABLE_ENV};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let table = std::env::var(TABLE_ENV).unwrap_or_else(|_| DEFAULT_TABLE.to_owned());
    let store = Store::from_env(None, table).await;
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        cleanup_function::handle(store, event)
    }))
    .await
}

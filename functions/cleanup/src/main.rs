//! The clean-up Lambda: builds the store once, then answers every event with
//! [`cleanup_function::handle`].

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::http::init_logging;
use shared::store::Store;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let store = Store::for_lambda().await;
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        cleanup_function::handle(store, event)
    }))
    .await
}

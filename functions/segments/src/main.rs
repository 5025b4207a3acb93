//! The segments Lambda: builds the store once, then serves the router.

use shared::http::{AppState, init_logging};
use shared::store::Store;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let store = Store::for_lambda().await;
    lambda_http::run(segments_function::router(AppState::new(store))).await
}

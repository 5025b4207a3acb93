//! The export Lambda: builds its state once, then serves the router with
//! response streaming, so rows leave while the export is still reading.

use export_function::ExportState;
use shared::http::{AppState, init_logging};
use shared::store::{DEFAULT_TABLE, Store, TABLE_ENV};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let table = std::env::var(TABLE_ENV).unwrap_or_else(|_| DEFAULT_TABLE.to_owned());
    let store = Store::from_env(None, table).await;
    let state = ExportState::lambda(AppState::new(store)).await;
    lambda_http::run_with_streaming_response(export_function::router(state)).await
}

//! The export Lambda: builds its state once, then serves the router with
//! response streaming, so rows leave while the export is still reading.

use export_function::ExportState;
use shared::http::{AppState, init_logging};
use shared::store::Store;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    init_logging();
    let store = Store::for_lambda().await;
    let state = ExportState::lambda(AppState::new(store)).await;
    lambda_http::run_with_streaming_response(export_function::router(state)).await
}

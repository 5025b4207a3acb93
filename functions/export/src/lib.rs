//! The export function: `POST /users/export`, streamed as CSV.

use axum::Router;
use shared::http::{AppState, finish};

/// The routes of this function, without the shared fallbacks and layers.
pub fn routes(state: AppState) -> Router {
    Router::new().with_state(state)
}

/// The function's complete router.
pub fn router(state: AppState) -> Router {
    finish(routes(state))
}

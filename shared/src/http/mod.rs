//! What every function's router shares: the state, the JSON body extractor
//! with the API's error rules, the account taken from the authorizer context,
//! path ids, request ids with JSON access logs, and the 404/405 fallbacks.

mod account;
mod auth;
mod body;
mod idempotency;
mod observe;
mod throttle;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::extract::Path;
use axum::http::request::Parts;

pub use account::{ACCOUNT_CONTEXT_KEY, Account, with_account};
pub use auth::{PUBLIC_PATHS, authorize, bearer_token};
pub use body::{JsonBody, MAX_BODY_BYTES, OptionalJsonBody, Valid};
pub use idempotency::{
    IDEMPOTENCY_KEY_HEADER, MAX_IDEMPOTENCY_KEY_CHARS, REPLAYED_HEADER, idempotent, keyed,
};
pub use observe::{REQUEST_ID_HEADER, init_logging, log_filter, observe};
pub use throttle::{AccountLimits, AccountThrottle, throttle_accounts, usage_identifier_key};

use crate::error::ApiError;
use crate::model::{MalformedId, ObjectId};
use crate::store::Store;

/// What handlers share: built once per process.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// The `{id}` of a path: `400` unless it is 24 hex characters.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub ObjectId);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::field("id", MalformedId.to_string()))?;
        raw.parse()
            .map(PathId)
            .map_err(|e: MalformedId| ApiError::field("id", e.to_string()))
    }
}

async fn no_such_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn wrong_method() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Gives a function's routes the API's behaviour for unknown routes (404),
/// wrong methods (405), request ids and access logs, and each request its
/// deadline (`crate::deadline`).
pub fn finish(router: Router) -> Router {
    router
        .fallback(no_such_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::from_fn(crate::deadline::middleware))
        .layer(axum::middleware::from_fn(observe))
}

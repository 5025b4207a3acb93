//! The segments function: `POST|PUT|DELETE /users/{id}/segments` and the
//! `/segments` resource.
//!
//! [`routes`] are the bare routes (the local server merges them with the other
//! functions'); [`router`] is what the Lambda binary runs.

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use shared::http::{Account, AppState, JsonBody, PathId, finish, idempotent};
use shared::model::Segment;
use shared::store::SegmentChange;
use shared::validate;
use shared::{ApiError, ApiResult, Envelope};

/// The routes of this function, without the shared fallbacks and layers.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route(
            "/users/{id}/segments",
            post(add_user_segments)
                .put(replace_user_segments)
                .delete(remove_user_segments),
        )
        .route("/segments", post(create_segment).get(list_segments))
        .route("/segments/{id}", put(rename_segment).delete(delete_segment))
        .route_layer(axum::middleware::from_fn_with_state(
            state.store.clone(),
            idempotent,
        ))
        .with_state(state)
}

/// The function's complete router.
pub fn router(state: AppState) -> Router {
    finish(routes(state))
}

async fn change_user_segments(
    state: AppState,
    account: shared::model::AccountId,
    user: shared::model::ObjectId,
    change: SegmentChange,
    body: serde_json::Value,
) -> ApiResult<Json<Envelope>> {
    let ids = validate::parse_segment_ids(&body, change == SegmentChange::Replace)
        .map_err(ApiError::validation)?;
    if change == SegmentChange::Remove {
        state.store.require_segments(&account, &ids).await?;
    }
    state
        .store
        .change_segments(&account, user, change, &ids)
        .await?;
    Ok(Json(Envelope::success(Some(user.to_string()))))
}

async fn add_user_segments(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(user): PathId,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Envelope>> {
    change_user_segments(state, account, user, SegmentChange::Add, body).await
}

async fn replace_user_segments(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(user): PathId,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Envelope>> {
    change_user_segments(state, account, user, SegmentChange::Replace, body).await
}

async fn remove_user_segments(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(user): PathId,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Envelope>> {
    change_user_segments(state, account, user, SegmentChange::Remove, body).await
}

async fn create_segment(
    State(state): State<AppState>,
    Account(account): Account,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Envelope>> {
    let name = validate::parse_segment_body(&body).map_err(ApiError::validation)?;
    let id = state.store.create_segment(&account, &name).await?;
    Ok(Json(Envelope::success(Some(id.to_string()))))
}

async fn list_segments(
    State(state): State<AppState>,
    Account(account): Account,
) -> ApiResult<Json<Vec<Segment>>> {
    Ok(Json(state.store.list_segments(&account).await?))
}

async fn rename_segment(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Envelope>> {
    let name = validate::parse_segment_body(&body).map_err(ApiError::validation)?;
    state.store.rename_segment(&account, id, &name).await?;
    Ok(Json(Envelope::success(Some(id.to_string()))))
}

async fn delete_segment(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(id): PathId,
) -> ApiResult<Json<Envelope>> {
    state.store.delete_segment(&account, id).await?;
    Ok(Json(Envelope::success(Some(id.to_string()))))
}

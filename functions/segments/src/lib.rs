//! The segments function: `POST|PUT|DELETE /users/{id}/segments` and the
//! `/segments` resource.
//!
//! [`routes`] are the bare routes (the local server merges them with the other
//! functions'); [`router`] is what the Lambda binary runs.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::routing::{post, put};
use axum::{Json, Router};
use shared::http::{Account, AppState, PathId, Valid, finish, keyed};
use shared::model::Segment;
use shared::store::SegmentChange;
use shared::validate::{SegmentIds, SegmentName, SegmentSet};
use shared::{ApiResult, Envelope};

/// The routes of this function, without the shared fallbacks and layers.
pub fn routes(state: AppState) -> Router {
    let routes = Router::new()
        .route(
            "/users/{id}/segments",
            post(add_user_segments)
                .put(replace_user_segments)
                .delete(remove_user_segments),
        )
        .route("/segments", post(create_segment).get(list_segments))
        .route("/segments/{id}", put(rename_segment).delete(delete_segment));
    keyed(routes, &state.store).with_state(state)
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
    ids: BTreeSet<shared::model::ObjectId>,
) -> ApiResult<Json<Envelope>> {
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
    Valid(SegmentIds(ids)): Valid<SegmentIds>,
) -> ApiResult<Json<Envelope>> {
    change_user_segments(state, account, user, SegmentChange::Add, ids).await
}

async fn replace_user_segments(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(user): PathId,
    Valid(SegmentSet(ids)): Valid<SegmentSet>,
) -> ApiResult<Json<Envelope>> {
    change_user_segments(state, account, user, SegmentChange::Replace, ids).await
}

async fn remove_user_segments(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(user): PathId,
    Valid(SegmentIds(ids)): Valid<SegmentIds>,
) -> ApiResult<Json<Envelope>> {
    change_user_segments(state, account, user, SegmentChange::Remove, ids).await
}

async fn create_segment(
    State(state): State<AppState>,
    Account(account): Account,
    Valid(SegmentName(name)): Valid<SegmentName>,
) -> ApiResult<Json<Envelope>> {
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
    Valid(SegmentName(name)): Valid<SegmentName>,
) -> ApiResult<Json<Envelope>> {
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

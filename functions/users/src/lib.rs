//! The users function: `POST /users`, `GET /users`, `GET|PUT|DELETE /users/{id}`,
//! `PUT /users/{id}/ban`, `POST|GET /users/{id}/conversations`, and `GET /health`.
//!
//! [`routes`] are the bare routes (the local server merges them with the other
//! functions'); [`router`] is what the Lambda binary runs.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use shared::error::Failures;
use shared::http::{Account, AppState, JsonBody, PathId, Valid, finish, keyed};
use shared::model::UserSummary;
use shared::validate::{self, AttributeUpdate, Ban, NewConversation, NewUser};
use shared::{ApiError, ApiResult, Envelope};

/// The routes of this function, without the shared fallbacks and layers.
pub fn routes(state: AppState) -> Router {
    let routes = Router::new()
        .route("/health", get(health))
        .route("/users", post(create_users).get(list_users))
        .route(
            "/users/{id}",
            get(user_details).put(update_user).delete(delete_user),
        )
        .route("/users/{id}/ban", put(ban_user))
        .route(
            "/users/{id}/conversations",
            post(record_conversation).get(list_conversations),
        );
    keyed(routes, &state.store).with_state(state)
}

/// The function's complete router.
pub fn router(state: AppState) -> Router {
    finish(routes(state))
}

/// `200` when the table answers, `503` otherwise; needs no token.
async fn health(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(json!({"status": "ok", "database": "ok"})).into_response(),
        Err(error) => {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": "unreachable"})),
            )
                .into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(shared::error::RETRY_AFTER_SECONDS),
            );
            let detail = error.detail().unwrap_or("the database does not answer");
            response
                .extensions_mut()
                .insert(Failures(vec![detail.to_owned()]));
            response
        }
    }
}

/// One user or up to 100. A single user answers `[envelope]` or its error;
/// a bulk answers `200` when all were created, `207` otherwise.
async fn create_users(
    State(state): State<AppState>,
    Account(account): Account,
    JsonBody(body): JsonBody,
) -> Response {
    let (elements, bulk) = match validate::split_create_body(body) {
        Ok(split) => split,
        Err(errors) => return ApiError::validation(errors).into_response(),
    };
    if !bulk {
        let outcome = match validate::parse_new_user(&elements[0]) {
            Ok(new) => state.store.create_user(&account, new).await,
            Err(errors) => Err(ApiError::validation(errors)),
        };
        return match outcome {
            Ok(id) => Json(vec![Envelope::success(Some(id.to_string()))]).into_response(),
            Err(error) => error.into_response(),
        };
    }
    let parsed: Vec<Result<NewUser, ApiError>> = elements
        .iter()
        .map(|element| validate::parse_new_user(element).map_err(ApiError::validation))
        .collect();
    let mut envelopes = Vec::with_capacity(parsed.len());
    let mut failures = Failures::default();
    let mut all_created = true;
    for outcome in parsed {
        let outcome = match outcome {
            Ok(new) => state.store.create_user(&account, new).await,
            Err(error) => Err(error),
        };
        match outcome {
            Ok(id) => envelopes.push(Envelope::success(Some(id.to_string()))),
            Err(error @ ApiError::Unavailable { .. }) if envelopes.is_empty() => {
                return error.into_response();
            }
            Err(error) => {
                all_created = false;
                failures.0.extend(error.detail().map(str::to_owned));
                envelopes.push(error.envelope());
            }
        }
    }
    let status = if all_created {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut response = (status, Json(envelopes)).into_response();
    if !failures.0.is_empty() {
        response.extensions_mut().insert(failures);
    }
    response
}

async fn list_users(
    State(state): State<AppState>,
    Account(account): Account,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query = shared::filter::ListQuery::parse(query.as_deref())?;
    let page = state.store.list_users(&account, &query).await?;
    let data: Vec<UserSummary> = page.users.iter().map(UserSummary::from).collect();
    Ok(Json(Listing {
        count: data.len(),
        data,
        next: page.next,
    })
    .into_response())
}

/// A page of a list (`GET /users`, `GET /users/{id}/conversations`); a
/// struct, so fields keep the reference's order.
#[derive(serde::Serialize)]
struct Listing<Data> {
    data: Data,
    count: usize,
    next: Option<shared::model::ObjectId>,
}

async fn user_details(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(id): PathId,
) -> ApiResult<Json<shared::model::UserDetails>> {
    state
        .store
        .user_details(&account, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("user"))
}

async fn update_user(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(id): PathId,
    Valid(AttributeUpdate(patch)): Valid<AttributeUpdate>,
) -> ApiResult<Json<Envelope>> {
    state.store.update_attributes(&account, id, &patch).await?;
    Ok(Json(Envelope::success(None)))
}

async fn delete_user(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(id): PathId,
) -> ApiResult<Json<Envelope>> {
    state.store.delete_user(&account, id).await?;
    Ok(Json(Envelope::success(Some(id.to_string()))))
}

async fn ban_user(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(id): PathId,
    Valid(Ban(banned)): Valid<Ban>,
) -> ApiResult<Json<Envelope>> {
    state.store.set_banned(&account, id, banned).await?;
    Ok(Json(Envelope::success(None)))
}

/// A user's conversations, newest first, a page at a time (beyond the
/// reference: the details show only the newest).
async fn list_conversations(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(id): PathId,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let (after, limit) =
        validate::parse_conversations_query(query.as_deref()).map_err(ApiError::validation)?;
    let page = state
        .store
        .conversations(&account, id, after, limit)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(Json(Listing {
        count: page.conversations.len(),
        data: &page.conversations,
        next: page.next,
    })
    .into_response())
}

async fn record_conversation(
    State(state): State<AppState>,
    Account(account): Account,
    PathId(id): PathId,
    Valid(conversation): Valid<NewConversation>,
) -> ApiResult<Json<Envelope>> {
    let conversation_id = state
        .store
        .record_conversation(&account, id, &conversation)
        .await?;
    Ok(Json(Envelope::success(Some(conversation_id.to_string()))))
}

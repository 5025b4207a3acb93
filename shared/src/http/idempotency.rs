//! `Idempotency-Key`: a `POST`, `PUT` or `DELETE` sent again with the key it
//! carried the first time gets the first answer, and the work is not done
//! again, also when the two arrive at the same time. The same key with
//! another request (method, path, query or body bytes) is `422`. Keys are per
//! account and kept for a day. A request without the header works as ever.
//!
//! The middleware claims the key before the handler runs and keeps the
//! handler's answer on it afterwards (`store::idempotency`); the handler's
//! new ids come from the key's [`IdSeed`](crate::model::IdSeed), so even an
//! attempt that repeats one a crash cut short writes nothing twice. Answers
//! that a retry may change (`5xx`, `429`) are not kept.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{Account, MAX_BODY_BYTES};
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::model::AccountId;
use crate::store::{KeyClaim, KeyGrant, MAX_STORED_ANSWER_BYTES, Store, StoredAnswer};

/// The request header.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Set on an answer that was kept from an earlier attempt.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// The longest key accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// How long a repeat waits for the attempt at work before it answers `409`.
const WAIT_FOR_FIRST: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(50);

/// The key of a request that carries one: 1..255 visible ASCII characters.
fn idempotency_key(request: &Request) -> Option<Result<String, ApiError>> {
    let value = request.headers().get(IDEMPOTENCY_KEY_HEADER)?;
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&key.len())
                && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::field(
                "Idempotency-Key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"),
            )
        });
    Some(key)
}

/// The SHA-256 of what makes two requests the same one.
fn fingerprint(method: &Method, uri: &axum::http::Uri, body: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(method.as_str())
        .chain_update(b"\n")
        .chain_update(uri.path())
        .chain_update(b"?")
        .chain_update(uri.query().unwrap_or(""))
        .chain_update(b"\n")
        .chain_update(body)
        .finalize();
    hex::encode(digest)
}

/// `routes` with the middleware ([`idempotent`]) as their route layer, its
/// records kept in `store`: how every function's write routes get it.
pub fn keyed<S: Clone + Send + Sync + 'static>(routes: Router<S>, store: &Store) -> Router<S> {
    routes.route_layer(axum::middleware::from_fn_with_state(
        store.clone(),
        idempotent,
    ))
}

/// The middleware; a route layer of every function's write routes.
pub async fn idempotent(State(store): State<Store>, request: Request, next: Next) -> Response {
    if !matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::DELETE
    ) {
        return next.run(request).await;
    }
    let key = match idempotency_key(&request) {
        None => return next.run(request).await,
        Some(Err(error)) => return error.into_response(),
        Some(Ok(key)) => key,
    };
    match claimed_run(&store, key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn claimed_run(
    store: &Store,
    key: String,
    request: Request,
    next: Next,
) -> Result<Response, Response> {
    let (mut parts, body) = request.into_parts();
    let Account(account) = Account::from_request_parts(&mut parts, &())
        .await
        .map_err(IntoResponse::into_response)?;
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge.into_response())?;
    let request_print = fingerprint(&parts.method, &parts.uri, &body);
    let grant = match claim(store, &account, &key, &request_print).await? {
        Claimed::Grant(grant) => grant,
        Claimed::Answer(answer) => return Ok(replay(answer)),
    };
    let request = Request::from_parts(parts, Body::from(body));
    let response = grant.seed().scope(next.run(request)).await;
    Ok(keep(store, grant, response).await)
}

/// What a claim came to: this attempt does the work, or the answer of the
/// first attempt is there.
enum Claimed {
    Grant(KeyGrant),
    Answer(StoredAnswer),
}

/// Claims the key; waits (polling) for an attempt at work on it to answer,
/// as long as a retry may wait. The refusals are the answers.
async fn claim(
    store: &Store,
    account: &AccountId,
    key: &str,
    request_print: &str,
) -> Result<Claimed, Response> {
    let waiting_until = Deadline::current()
        .unwrap_or_else(|| Deadline::after(WAIT_FOR_FIRST))
        .or_sooner(WAIT_FOR_FIRST);
    loop {
        let claim = store
            .claim_idempotency_key(account, key, request_print)
            .await
            .map_err(IntoResponse::into_response)?;
        match claim {
            KeyClaim::Granted(grant) => return Ok(Claimed::Grant(grant)),
            KeyClaim::Answered(answer) => return Ok(Claimed::Answer(answer)),
            KeyClaim::OtherRequest => return Err(ApiError::KeyReused.into_response()),
            KeyClaim::InProgress if waiting_until.is_within(POLL_EVERY) => {
                return Err(ApiError::KeyInProgress.into_response());
            }
            KeyClaim::InProgress => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

/// Keeps the handler's answer on the key (or releases the key when a retry
/// may change it) and gives the answer back to send.
async fn keep(store: &Store, grant: KeyGrant, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_STORED_ANSWER_BYTES).await else {
        // Only a handler's failure makes an answer this large: let a retry
        // do the work again, under the same ids.
        tracing::warn!("answer too large to keep for its Idempotency-Key");
        if let Err(error) = store.release_idempotency_key(grant).await {
            tracing::warn!(error = ?error, "release idempotency key");
        }
        return ApiError::internal("answer too large to keep").into_response();
    };
    let status = parts.status;
    let header_text = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let kept = match std::str::from_utf8(&body) {
        Ok(text) if !status.is_server_error() && status.as_u16() != 429 => Some(StoredAnswer {
            status: status.as_u16(),
            content_type: header_text(header::CONTENT_TYPE),
            location: header_text(header::LOCATION),
            body: text.to_owned(),
        }),
        _ => None,
    };
    let stored = match kept {
        Some(answer) => store.answer_idempotency_key(grant, answer).await,
        None => store.release_idempotency_key(grant).await,
    };
    if let Err(error) = stored {
        // The work is done and its answer is true; a retry finds the work
        // under its ids.
        tracing::warn!(error = ?error, "keep the answer of an Idempotency-Key");
    }
    Response::from_parts(parts, Body::from(body))
}

/// A kept answer, as it was first given.
fn replay(answer: StoredAnswer) -> Response {
    let status =
        axum::http::StatusCode::from_u16(answer.status).unwrap_or(axum::http::StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    let headers = response.headers_mut();
    if let Some(location) = answer
        .location
        .and_then(|value| HeaderValue::from_str(&value).ok())
    {
        headers.insert(header::LOCATION, location);
    }
    match answer
        .content_type
        .and_then(|value| HeaderValue::from_str(&value).ok())
    {
        Some(value) => headers.insert(header::CONTENT_TYPE, value),
        None => headers.remove(header::CONTENT_TYPE),
    };
    headers.insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with_key(key: &str) -> Request {
        Request::builder()
            .header(IDEMPOTENCY_KEY_HEADER, key)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters() {
        assert_eq!(
            idempotency_key(&request_with_key("order-42:retry")).map(Result::ok),
            Some(Some("order-42:retry".to_owned()))
        );
        let longest = "k".repeat(MAX_IDEMPOTENCY_KEY_CHARS);
        assert!(matches!(
            idempotency_key(&request_with_key(&longest)),
            Some(Ok(_))
        ));
        for bad in ["", "two words", &"k".repeat(MAX_IDEMPOTENCY_KEY_CHARS + 1)] {
            assert!(
                matches!(idempotency_key(&request_with_key(bad)), Some(Err(_))),
                "{bad:?}"
            );
        }
        let none = Request::builder().body(Body::empty()).unwrap();
        assert!(idempotency_key(&none).is_none());
    }

    #[test]
    fn the_fingerprint_tells_method_path_query_and_body_apart() {
        let uri = |text: &str| text.parse::<axum::http::Uri>().unwrap();
        let base = fingerprint(&Method::POST, &uri("/users"), b"{}");
        assert_eq!(base, fingerprint(&Method::POST, &uri("/users"), b"{}"));
        for other in [
            fingerprint(&Method::PUT, &uri("/users"), b"{}"),
            fingerprint(&Method::POST, &uri("/segments"), b"{}"),
            fingerprint(&Method::POST, &uri("/users?x=1"), b"{}"),
            fingerprint(&Method::POST, &uri("/users"), b"{ }"),
        ] {
            assert_ne!(other, base);
        }
    }
}

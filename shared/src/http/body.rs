//! The JSON body extractors: the API's rules for bodies in one place.
//! Not JSON (by `Content-Type`) is `415`, over 1 MiB is `413`, malformed JSON
//! is `400`; an empty body is `400`, or `{}` where the body is optional
//! ([`OptionalJsonBody`]); what the body means is checked by `validate`
//! ([`Valid`]).

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde_json::Value;

use crate::error::ApiError;
use crate::validate::FromJson;

/// Largest body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request body parsed as JSON.
#[derive(Debug)]
pub struct JsonBody(pub Value);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A request body parsed as JSON that may be left out: an empty body is
/// `{}` (for a request whose every field is optional, as an export's).
#[derive(Debug)]
pub struct OptionalJsonBody(pub Value);

/// What an empty body is to an extractor.
enum WhenEmpty {
    Refused,
    EmptyObject,
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        json_of(request, WhenEmpty::Refused).await.map(JsonBody)
    }
}

impl<S: Send + Sync> FromRequest<S> for OptionalJsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        json_of(request, WhenEmpty::EmptyObject)
            .await
            .map(OptionalJsonBody)
    }
}

/// The body as JSON by the API's rules: `413` over 1 MiB, then an empty body
/// as `when_empty` says, then `415` when not declared JSON and `400` when
/// malformed.
async fn json_of(request: Request, when_empty: WhenEmpty) -> Result<Value, ApiError> {
    let headers = request.headers();
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_length.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Body = request.into_body();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return match when_empty {
            WhenEmpty::Refused => Err(ApiError::BadRequest(
                "a JSON request body is required".into(),
            )),
            WhenEmpty::EmptyObject => Ok(Value::Object(serde_json::Map::new())),
        };
    }
    match content_type {
        Some(content_type) if is_json(&content_type) => {}
        _ => return Err(ApiError::UnsupportedMediaType),
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))
}

/// A JSON body valid by `T`'s rules ([`FromJson`]): its rejection is the
/// body's `415`/`413`/`400` ([`JsonBody`]) or the validation error naming
/// every offending field, so a handler only ever sees a parsed, valid value.
#[derive(Debug)]
pub struct Valid<T>(pub T);

impl<S: Send + Sync, T: FromJson> FromRequest<S> for Valid<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let JsonBody(value) = JsonBody::from_request(request, state).await?;
        T::from_json(&value)
            .map(Valid)
            .map_err(ApiError::validation)
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/vnd.api+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}

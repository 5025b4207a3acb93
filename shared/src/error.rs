//! The one error type of the API. Every failure a handler can meet becomes an
//! [`ApiError`], and every `ApiError` becomes the error envelope with its
//! status code. Internal details are logged here and never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::envelope::Envelope;

/// One offending field of a request, named by its dotted path
/// (`attributes.default_name`, `filters.0.operator`, `0.userId`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Joins a parent path and a child name into a dotted path.
pub fn join_path(parent: &str, child: impl std::fmt::Display) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 with every offending field.
    #[error("{message}")]
    Validation {
        message: String,
        errors: Vec<FieldError>,
    },
    /// 400 without field detail (malformed JSON, malformed path id).
    #[error("{0}")]
    BadRequest(String),
    #[error("missing, malformed or unknown access token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409; `id` names the existing object the request collided with.
    #[error("{message}")]
    Conflict { message: String, id: Option<String> },
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
    /// 413: an export larger than a streamed answer may carry.
    #[error(
        "the export is larger than a streamed answer may be; export it with POST /users/exports"
    )]
    TooLargeToStream,
    #[error("request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// 409: an earlier request with the same `Idempotency-Key` is still
    /// being worked on (and kept on for longer than a retry waits).
    #[error("a request with this Idempotency-Key is still in progress; retry later")]
    KeyInProgress,
    /// 422: the `Idempotency-Key` was first used with another request.
    #[error("this Idempotency-Key was used with another request (method, path or body)")]
    KeyReused,
    /// 429: the account sent more than its limits allow.
    #[error("too many requests, retry later")]
    Throttled { retry_after_seconds: u32 },
    /// 503: the database is unreachable or throttling us.
    #[error("the database is unavailable; retry later")]
    Unavailable { detail: String },
    /// 500: a bug. The detail is logged, the client sees a generic message;
    /// the error it comes from, when there is one, is kept as its source.
    #[error("internal error")]
    Internal {
        detail: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl ApiError {
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [only] => format!("invalid request: {}: {}", only.field, only.message),
            _ => format!("invalid request: {} invalid fields", errors.len()),
        };
        Self::Validation { message, errors }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// A `500` (a bug) with what the operator should read.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal {
            detail: detail.into(),
            source: None,
        }
    }

    /// A `500` caused by `source`, which is kept.
    pub fn internal_from(
        context: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Internal {
            detail: format!("{context}: {source}"),
            source: Some(Box::new(source)),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::NotFound(format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation { .. } | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } | Self::KeyInProgress => StatusCode::CONFLICT,
            Self::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge | Self::TooLargeToStream => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the operator should read of this error (never the client): the
    /// detail of a `500` or a `503`.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Unavailable { detail } | Self::Internal { detail, .. } => Some(detail),
            _ => None,
        }
    }

    /// The error envelope for this error, as it appears alone or inside a
    /// bulk answer. Its detail is not in it; the answer carries it to the
    /// access log ([`Failures`]).
    pub fn envelope(&self) -> Envelope {
        let (id, errors) = match self {
            Self::Conflict { id, .. } => (id.clone(), None),
            Self::Validation { errors, .. } => (None, Some(errors.clone())),
            _ => (None, None),
        };
        Envelope::error(self.status().as_u16(), self.to_string(), id, errors)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = (status, axum::Json(self.envelope())).into_response();
        if let Some(detail) = self.detail() {
            response
                .extensions_mut()
                .insert(Failures(vec![detail.to_owned()]));
        }
        let retry_after = match self {
            Self::Unavailable { .. } | Self::KeyInProgress => Some(RETRY_AFTER_SECONDS),
            Self::Throttled {
                retry_after_seconds,
            } => Some(retry_after_seconds),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The details of the failures behind an answer (a `500`, a `503`, or the
/// failed elements of a bulk answer), carried to the access log, which
/// writes them on the request's own line (`http::observe`): each failure is
/// logged once, with its request, and never sent.
#[derive(Debug, Clone, Default)]
pub struct Failures(pub Vec<String>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_details_never_reach_the_envelope() {
        let envelope = ApiError::internal("dispatch failure: connection refused").envelope();
        let json = serde_json::to_string(&envelope).unwrap();
        assert!(!json.contains("dispatch"), "{json}");
        assert!(json.contains(r#""code":500"#));
        let envelope = ApiError::Unavailable {
            detail: "ThrottlingException".into(),
        }
        .envelope();
        assert!(
            !serde_json::to_string(&envelope)
                .unwrap()
                .contains("Throttling")
        );
    }

    #[test]
    fn an_internal_error_keeps_its_source() {
        let io = std::io::Error::other("disk on fire");
        let error = ApiError::internal_from("write export file", io);
        let source = std::error::Error::source(&error).expect("the source is kept");
        assert_eq!(source.to_string(), "disk on fire");
        assert_eq!(error.detail(), Some("write export file: disk on fire"));
        assert_eq!(error.to_string(), "internal error");
    }

    #[test]
    fn validation_names_every_field() {
        let error = ApiError::validation(vec![
            FieldError::new("attributes.default_name", "too long"),
            FieldError::new("userId", "required"),
        ]);
        let json = serde_json::to_value(error.envelope()).unwrap();
        assert_eq!(json["status"]["code"], 400);
        assert_eq!(json["status"]["type"], "error");
        assert_eq!(
            json["status"]["errors"][0]["field"],
            "attributes.default_name"
        );
        assert_eq!(json["status"]["errors"][1]["field"], "userId");
    }

    #[test]
    fn conflict_carries_the_existing_id() {
        let json = serde_json::to_value(
            ApiError::Conflict {
                message: "taken".into(),
                id: Some("5c486eeebda7873576a379e4".into()),
            }
            .envelope(),
        )
        .unwrap();
        assert_eq!(json["id"], "5c486eeebda7873576a379e4");
        assert_eq!(json["status"]["code"], 409);
    }

    #[test]
    fn paths_join_with_dots() {
        assert_eq!(join_path("", "userId"), "userId");
        assert_eq!(join_path("0", "attributes"), "0.attributes");
        assert_eq!(join_path("filters", 2), "filters.2");
    }
}

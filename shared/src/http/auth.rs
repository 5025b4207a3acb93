//! The local stand-in for API Gateway's Lambda authorizer: resolves the bearer
//! token with the same store call the authorizer function makes and writes
//! the same authorizer context into the request, so the routers behind it
//! run exactly as they do in Lambda.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::account::with_account;
use crate::error::ApiError;
use crate::store::Store;

/// Routes that answer without a token.
pub const PUBLIC_PATHS: [&str; 2] = ["/health", "/openapi.json"];

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && token.len() <= 512
        && !token.contains(' '))
    .then_some(token)
}

/// The middleware: `401` for a missing, malformed or unknown token.
pub async fn authorize(State(store): State<Store>, mut request: Request, next: Next) -> Response {
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let token = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    let Some(token) = token else {
        return ApiError::Unauthorized.into_response();
    };
    match store.resolve_token(&token).await {
        Ok(Some(account)) => {
            request.extensions_mut().insert(with_account(&account));
            next.run(request).await
        }
        Ok(None) => ApiError::Unauthorized.into_response(),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
    }
}

//! The caller's account, read from where API Gateway's Lambda authorizer puts
//! it: the request context's authorizer fields (`accountId`). The local
//! server's auth layer writes the same context, so handlers cannot tell
//! whether they run in Lambda or locally.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::aws_lambda_events::apigw::ApiGatewayProxyRequestContext;
use lambda_http::request::RequestContext;

use crate::error::ApiError;
use crate::model::AccountId;

/// The authorizer context key holding the account id.
pub const ACCOUNT_CONTEXT_KEY: &str = "accountId";

/// The account the request acts for. Missing context is `401`.
#[derive(Debug, Clone)]
pub struct Account(pub AccountId);

fn account_in(context: &RequestContext) -> Option<AccountId> {
    let value = match context {
        RequestContext::ApiGatewayV1(ctx) => ctx.authorizer.fields.get(ACCOUNT_CONTEXT_KEY),
        RequestContext::ApiGatewayV2(ctx) => {
            ctx.authorizer.as_ref()?.fields.get(ACCOUNT_CONTEXT_KEY)
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }?;
    AccountId::parse(value.as_str()?).ok()
}

impl<S: Send + Sync> FromRequestParts<S> for Account {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .and_then(account_in)
            .map(Account)
            .ok_or(ApiError::Unauthorized)
    }
}

/// The request context a REST API authorizer would give a request of `account`.
pub fn with_account(account: &AccountId) -> RequestContext {
    let mut context = ApiGatewayProxyRequestContext::default();
    context.authorizer.fields.insert(
        ACCOUNT_CONTEXT_KEY.to_owned(),
        serde_json::Value::String(account.to_string()),
    );
    RequestContext::ApiGatewayV1(context)
}

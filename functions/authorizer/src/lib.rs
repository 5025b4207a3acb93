//! The API Gateway Lambda authorizer: `Authorization: Bearer <token>` →
//! SHA-256 → the token item → the account id, handed to the functions in the
//! authorizer context under [`ACCOUNT_CONTEXT_KEY`], which is exactly where
//! [`shared::http::Account`] reads it (`requestContext.authorizer.accountId`
//! in REST events, `requestContext.authorizer.lambda.accountId` in HTTP API
//! events). The local server's auth layer makes the same store call
//! ([`Store::resolve_token`]), so both paths accept the same tokens.
//!
//! # The protocol with API Gateway
//!
//! - **Input.** Either the `TOKEN` shape (`authorizationToken` is the
//!   `Authorization` header's value, plus `methodArn`) or the `REQUEST` shape
//!   (every header in `headers`, plus `methodArn`; HTTP APIs with payload
//!   format 2.0 call it `routeArn`). [`AuthorizerEvent`] reads both, so the
//!   authorizer type in `template.yaml` can change without touching this code.
//! - **Allow.** A known token answers an IAM policy that allows
//!   `execute-api:Invoke` on the whole stage (`…:<api-id>/<stage>/*`), not
//!   only on `methodArn`: API Gateway caches the decision per token (300 s in
//!   the template) and reuses it for *every* route, so a policy naming only
//!   the first route would deny the next one from the cache. `principalId`
//!   is the account id, `context` carries `accountId`, and
//!   `usageIdentifierKey` names the account's API key in the usage plan
//!   (per-account throttling; see `shared::http::usage_identifier_key`).
//! - **401.** A missing, malformed or unknown token makes the function fail
//!   with the error message `Unauthorized`, exactly: that is API Gateway's
//!   documented signal for a 401 (a `Deny` policy would be a 403, which the
//!   contract does not have). This is the one place in the project where a
//!   handler deliberately returns `Err` to the Lambda runtime.
//! - **Store failure.** When the token cannot be looked up (DynamoDB
//!   unreachable, throttled, misconfigured) the function fails with a
//!   *different* message ([`AuthorizerError::Store`]). API Gateway answers
//!   that with its `AUTHORIZER_CONFIGURATION_ERROR` gateway response (500 by
//!   default), which a client treats as retryable. A bad token must never be
//!   confused with an outage: answering 401 on a database error would tell
//!   every client that its token is dead.
//!
//! The token itself is never logged, nor put into an error message.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};
use shared::http::{ACCOUNT_CONTEXT_KEY, bearer_token, usage_identifier_key};
use shared::model::AccountId;
use shared::store::Store;

/// The error message that makes API Gateway answer 401.
pub const UNAUTHORIZED: &str = "Unauthorized";

/// The IAM policy language version of every policy we answer.
const POLICY_VERSION: &str = "2012-10-17";

/// What API Gateway sends a Lambda authorizer, `TOKEN` or `REQUEST` shape.
/// Only what the decision needs is read; everything else is ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerEvent {
    /// `TOKEN` or `REQUEST`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// `TOKEN`: the value of the identity source header (`Bearer <token>`).
    #[serde(default)]
    pub authorization_token: Option<String>,
    /// `REQUEST`: the request's headers, names as the client sent them.
    #[serde(default)]
    pub headers: Option<HashMap<String, String>>,
    /// The ARN of the method being called:
    /// `arn:<partition>:execute-api:<region>:<account>:<api-id>/<stage>/<METHOD>/<path>`.
    #[serde(default, alias = "routeArn")]
    pub method_arn: Option<String>,
}

impl AuthorizerEvent {
    /// The `Authorization` header's value: `authorizationToken` in the
    /// `TOKEN` shape, the header (any letter case) in the `REQUEST` shape.
    pub fn authorization(&self) -> Option<&str> {
        if let Some(value) = &self.authorization_token {
            return Some(value);
        }
        self.headers
            .as_ref()?
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.as_str())
    }

    /// The bearer token, or `None` when the header is missing or malformed.
    pub fn token(&self) -> Option<&str> {
        self.authorization().and_then(bearer_token)
    }
}

/// The ARN that covers every method and path of the API stage `method_arn`
/// belongs to, or `None` when `method_arn` is not an `execute-api` ARN.
pub fn stage_wildcard(method_arn: &str) -> Option<String> {
    let parts: Vec<&str> = method_arn.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return None;
    };
    if *arn != "arn"
        || *service != "execute-api"
        || partition.is_empty()
        || region.is_empty()
        || account.is_empty()
    {
        return None;
    }
    let mut path = resource.splitn(3, '/');
    let (Some(api_id), Some(stage)) = (path.next(), path.next()) else {
        return None;
    };
    if api_id.is_empty() || stage.is_empty() || api_id.contains('*') || stage.contains('*') {
        return None;
    }
    Some(format!(
        "arn:{partition}:execute-api:{region}:{account}:{api_id}/{stage}/*"
    ))
}

/// The authorizer's answer for an allowed token, in the shape API Gateway
/// expects (`principalId`, `policyDocument`, `context`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerResponse {
    pub principal_id: String,
    pub policy_document: PolicyDocument,
    /// String values only: API Gateway passes strings, numbers and booleans
    /// through, and the functions read `accountId` as a string.
    pub context: BTreeMap<String, String>,
    /// The account's API key in the usage plan (the API's key source is the
    /// authorizer), so API Gateway throttles each account on its own.
    pub usage_identifier_key: String,
}

impl AuthorizerResponse {
    /// Allows `account` to invoke every route of the stage `resource` names.
    pub fn allow(account: &AccountId, resource: String) -> Self {
        Self {
            principal_id: account.to_string(),
            policy_document: PolicyDocument {
                version: POLICY_VERSION.to_owned(),
                statement: vec![Statement {
                    action: "execute-api:Invoke".to_owned(),
                    effect: "Allow".to_owned(),
                    resource,
                }],
            },
            context: BTreeMap::from([(ACCOUNT_CONTEXT_KEY.to_owned(), account.to_string())]),
            usage_identifier_key: usage_identifier_key(account),
        }
    }

    /// The account id the functions will read from the context.
    pub fn account_id(&self) -> Option<&str> {
        self.context.get(ACCOUNT_CONTEXT_KEY).map(String::as_str)
    }
}

/// An IAM policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyDocument {
    pub version: String,
    pub statement: Vec<Statement>,
}

/// One statement of an IAM policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub action: String,
    pub effect: String,
    pub resource: String,
}

/// Why a request is not let through. The variants' messages are what API
/// Gateway sees; see the crate docs for what it makes of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizerError {
    /// Missing, malformed or unknown token: the message is [`UNAUTHORIZED`],
    /// so API Gateway answers 401.
    Unauthorized,
    /// The token could not be looked up; API Gateway answers 500 (or what the
    /// template maps `AUTHORIZER_CONFIGURATION_ERROR` to). The store's detail
    /// is logged, not carried here.
    Store,
    /// The event has no usable `methodArn`: API Gateway always sends one, so
    /// this is a wiring mistake, not a client's fault.
    MalformedEvent,
}

impl fmt::Display for AuthorizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unauthorized => UNAUTHORIZED,
            Self::Store => "the token store could not be reached",
            Self::MalformedEvent => "the authorizer event has no execute-api methodArn",
        })
    }
}

impl std::error::Error for AuthorizerError {}

/// What the Lambda runtime reports: `errorMessage` is the [`fmt::Display`]
/// text (API Gateway matches `Unauthorized` on it), `errorType` names the case.
impl From<AuthorizerError> for Diagnostic {
    fn from(error: AuthorizerError) -> Self {
        let error_type = match error {
            AuthorizerError::Unauthorized => "Unauthorized",
            AuthorizerError::Store => "TokenStoreUnavailable",
            AuthorizerError::MalformedEvent => "MalformedAuthorizerEvent",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// The decision for one event: the policy for a known token, `Unauthorized`
/// for anything else, a distinct error when the store fails.
pub async fn handle(
    store: &Store,
    event: AuthorizerEvent,
) -> Result<AuthorizerResponse, AuthorizerError> {
    let Some(token) = event.token() else {
        tracing::info!(
            shape = event.kind.as_deref().unwrap_or("unknown"),
            "refused: missing or malformed bearer token"
        );
        return Err(AuthorizerError::Unauthorized);
    };
    let Some(resource) = event.method_arn.as_deref().and_then(stage_wildcard) else {
        tracing::error!(method_arn = ?event.method_arn, "authorizer event without a usable methodArn");
        return Err(AuthorizerError::MalformedEvent);
    };
    match store.resolve_token(token).await {
        Ok(Some(account)) => {
            tracing::info!(account = %account, resource = %resource, "allowed");
            Ok(AuthorizerResponse::allow(&account, resource))
        }
        Ok(None) => {
            tracing::info!("refused: unknown token");
            Err(AuthorizerError::Unauthorized)
        }
        Err(error) => {
            // The store's errors name the operation and the SDK's failure,
            // never the token (only its hash is ever sent to DynamoDB).
            tracing::error!(error = ?error, "token look-up failed");
            Err(AuthorizerError::Store)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: serde_json::Value) -> AuthorizerEvent {
        serde_json::from_value(value).expect("an authorizer event")
    }

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/v1/GET/users/65f1a2b3c4d5e6f708192a3b";

    #[test]
    fn token_shape() {
        let e = event(
            json!({"type": "TOKEN", "authorizationToken": "Bearer uat_abc", "methodArn": ARN}),
        );
        assert_eq!(e.token(), Some("uat_abc"));
        assert_eq!(e.method_arn.as_deref(), Some(ARN));
    }

    #[test]
    fn request_shape_reads_the_header_in_any_case() {
        for name in ["Authorization", "authorization", "AUTHORIZATION"] {
            let e = event(
                json!({"type": "REQUEST", "methodArn": ARN, "headers": {"Host": "x", name: "bearer uat_abc"}}),
            );
            assert_eq!(e.token(), Some("uat_abc"), "{name}");
        }
        let e = event(
            json!({"type": "REQUEST", "routeArn": ARN, "headers": {"authorization": "Bearer t"}}),
        );
        assert_eq!(e.method_arn.as_deref(), Some(ARN));
    }

    #[test]
    fn missing_or_malformed_tokens_are_none() {
        for value in [
            json!({"type": "TOKEN", "methodArn": ARN}),
            json!({"type": "TOKEN", "authorizationToken": "", "methodArn": ARN}),
            json!({"type": "TOKEN", "authorizationToken": "uat_abc", "methodArn": ARN}),
            json!({"type": "TOKEN", "authorizationToken": "Basic dXNlcjpwYXNz", "methodArn": ARN}),
            json!({"type": "TOKEN", "authorizationToken": "Bearer ", "methodArn": ARN}),
            json!({"type": "TOKEN", "authorizationToken": "Bearer a b", "methodArn": ARN}),
            json!({"type": "REQUEST", "methodArn": ARN, "headers": null}),
            json!({"type": "REQUEST", "methodArn": ARN, "headers": {"x-api-key": "k"}}),
            json!({}),
        ] {
            assert_eq!(event(value.clone()).token(), None, "{value}");
        }
    }

    #[test]
    fn the_policy_covers_the_whole_stage() {
        assert_eq!(
            stage_wildcard(ARN).as_deref(),
            Some("arn:aws:execute-api:us-east-1:123456789012:abcdef1234/v1/*")
        );
        assert_eq!(
            stage_wildcard("arn:aws-cn:execute-api:cn-north-1:123456789012:api/prod/POST/")
                .as_deref(),
            Some("arn:aws-cn:execute-api:cn-north-1:123456789012:api/prod/*")
        );
        assert_eq!(
            stage_wildcard("arn:aws:execute-api:eu-west-1:123456789012:api/$default/GET/users")
                .as_deref(),
            Some("arn:aws:execute-api:eu-west-1:123456789012:api/$default/*")
        );
        for bad in [
            "",
            "arn:aws:lambda:us-east-1:123456789012:function/x",
            "arn:aws:execute-api:us-east-1:123456789012:api",
            "arn:aws:execute-api:us-east-1:123456789012:api/",
            "arn:aws:execute-api:us-east-1:123456789012:*/v1/GET/users",
            "arn:aws:execute-api::123456789012:api/v1/GET/users",
        ] {
            assert_eq!(stage_wildcard(bad), None, "{bad}");
        }
    }

    #[test]
    fn allow_answers_the_documented_shape() {
        let account = AccountId::parse("acme").unwrap();
        let answer = AuthorizerResponse::allow(&account, stage_wildcard(ARN).unwrap());
        assert_eq!(answer.account_id(), Some("acme"));
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            json!({
                "principalId": "acme",
                "policyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Action": "execute-api:Invoke",
                        "Effect": "Allow",
                        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/v1/*"
                    }]
                },
                "context": {"accountId": "acme"},
                "usageIdentifierKey": shared::http::usage_identifier_key(&account)
            })
        );
    }

    #[test]
    fn only_a_refused_token_says_unauthorized() {
        let refused = Diagnostic::from(AuthorizerError::Unauthorized);
        assert_eq!(refused.error_message, "Unauthorized");
        for other in [AuthorizerError::Store, AuthorizerError::MalformedEvent] {
            let diagnostic = Diagnostic::from(other);
            assert_ne!(diagnostic.error_message, "Unauthorized");
            assert!(
                !diagnostic
                    .error_message
                    .to_ascii_lowercase()
                    .contains("unauthorized")
            );
        }
    }
}

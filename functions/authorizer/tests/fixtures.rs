//! The authorizer on a real DynamoDB API (the embedded engine, or the
//! endpoint in `USERS_API_TEST_ENDPOINT`), fed the authorizer fixtures of
//! `tests/events/authorizer/` exactly as API Gateway sends them.
//!
//! The fixtures carry the placeholder `__TOKEN__` where a real token goes
//! (as written, they stand for an unknown token); the tests, like
//! `scripts/lambda_smoke.sh`, put a freshly created token in.

use std::path::PathBuf;

use authorizer_function::{AuthorizerError, AuthorizerEvent, AuthorizerResponse, handle};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequest, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse,
};
use lambda_runtime::Diagnostic;
use serde_json::{Value, json};
use shared::engine::local_client;
use shared::http::usage_identifier_key;
use shared::model::AccountId;
use shared::store::Store;
use users_api_tests::{LogCapture, TestStore};

/// Where the fixtures put the token.
const PLACEHOLDER: &str = "__TOKEN__";
/// The stage ARN the fixtures' `methodArn`s belong to.
const STAGE_ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/v1/*";

/// An authorizer fixture's text, with `token` in place of the placeholder.
fn fixture_text(name: &str, token: Option<&str>) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../tests/events/authorizer/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match token {
        Some(token) => text.replace(PLACEHOLDER, token),
        None => text,
    }
}

/// The event as the Lambda runtime deserializes it for the handler.
fn fixture(name: &str, token: Option<&str>) -> AuthorizerEvent {
    serde_json::from_str(&fixture_text(name, token)).expect("an authorizer event")
}

/// What the runtime sends back to Lambda for an answer.
fn wire(answer: &Result<AuthorizerResponse, AuthorizerError>) -> Value {
    match answer {
        Ok(response) => serde_json::to_value(response).unwrap(),
        Err(error) => serde_json::to_value(Diagnostic::from(error.clone())).unwrap(),
    }
}

fn assert_unauthorized(answer: &Result<AuthorizerResponse, AuthorizerError>, what: &str) {
    assert_eq!(answer, &Err(AuthorizerError::Unauthorized), "{what}");
    assert_eq!(wire(answer)["errorMessage"], "Unauthorized", "{what}");
}

#[test]
fn the_fixtures_have_api_gateways_shapes() {
    for name in ["token", "token-unknown", "token-malformed"] {
        let event: ApiGatewayCustomAuthorizerRequest =
            serde_json::from_str(&fixture_text(name, None)).unwrap();
        assert_eq!(event.type_.as_deref(), Some("TOKEN"), "{name}");
        assert!(event.method_arn.is_some(), "{name}");
    }
    for name in ["request", "request-lowercase", "request-missing"] {
        let event: ApiGatewayCustomAuthorizerRequestTypeRequest =
            serde_json::from_str(&fixture_text(name, None)).unwrap();
        assert_eq!(event.type_.as_deref(), Some("REQUEST"), "{name}");
        assert!(event.method_arn.is_some(), "{name}");
        assert!(event.request_context.apiid.is_some(), "{name}");
    }
}

#[tokio::test]
async fn a_known_token_is_allowed_on_the_whole_stage_with_the_account_in_the_context() {
    let test = TestStore::new().await;
    let token = test.token("fixtures").await;
    for name in ["token", "request", "request-lowercase"] {
        let answer = handle(&test.store, fixture(name, Some(&token))).await;
        let wire = wire(&answer);
        assert_eq!(
            wire,
            json!({
                "principalId": "fixtures",
                "policyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": STAGE_ARN}]
                },
                "context": {"accountId": "fixtures"},
                "usageIdentifierKey": usage_identifier_key(&AccountId::parse("fixtures").unwrap())
            }),
            "{name}"
        );
        // The AWS events crate reads it as an authorizer response too.
        let parsed: ApiGatewayCustomAuthorizerResponse = serde_json::from_value(wire).unwrap();
        assert_eq!(parsed.principal_id.as_deref(), Some("fixtures"));
        assert_eq!(parsed.context["accountId"], "fixtures");
        assert!(
            parsed
                .usage_identifier_key
                .is_some_and(|key| key.starts_with("uak_"))
        );
        assert_eq!(parsed.policy_document.statement[0].resource, [STAGE_ARN]);
    }
}

#[tokio::test]
async fn tokens_resolve_to_their_own_account() {
    let test = TestStore::new().await;
    let acme = test.token("acme").await;
    let globex = test.token("globex").await;
    let answer = handle(&test.store, fixture("token", Some(&acme)))
        .await
        .unwrap();
    assert_eq!(answer.account_id(), Some("acme"));
    let answer = handle(&test.store, fixture("request", Some(&globex)))
        .await
        .unwrap();
    assert_eq!(answer.account_id(), Some("globex"));
    assert_eq!(answer.principal_id, "globex");
}

#[tokio::test]
async fn unknown_missing_and_malformed_tokens_are_unauthorized() {
    let test = TestStore::new().await;
    let token = test.token("fixtures").await;
    for name in [
        "token",
        "token-unknown",
        "token-malformed",
        "request",
        "request-missing",
    ] {
        // As written, `token` and `request` carry the placeholder: unknown.
        assert_unauthorized(&handle(&test.store, fixture(name, None)).await, name);
    }
    // Another table's token, a token with one character changed, a bare token.
    let mut altered = token.clone();
    altered.replace_range(
        token.len() - 1..,
        if token.ends_with('0') { "1" } else { "0" },
    );
    assert_unauthorized(
        &handle(&test.store, fixture("token", Some(&altered))).await,
        "altered",
    );
    let bare = fixture_text("token", Some(&token)).replace("Bearer ", "");
    let bare: AuthorizerEvent = serde_json::from_str(&bare).unwrap();
    assert_unauthorized(&handle(&test.store, bare).await, "bare");
}

#[tokio::test]
async fn a_revoked_token_is_unauthorized() {
    let test = TestStore::new().await;
    let token = test.token("fixtures").await;
    assert!(
        handle(&test.store, fixture("token", Some(&token)))
            .await
            .is_ok()
    );
    assert!(test.store.revoke_token(&token).await.unwrap());
    assert_unauthorized(
        &handle(&test.store, fixture("token", Some(&token))).await,
        "revoked",
    );
}

#[tokio::test]
async fn a_store_failure_is_an_error_but_not_unauthorized() {
    let test = TestStore::new().await;
    let token = test.token("fixtures").await;
    // The table is gone.
    test.store.delete_table().await.unwrap();
    let answer = handle(&test.store, fixture("token", Some(&token))).await;
    assert_eq!(answer, Err(AuthorizerError::Store));
    assert_ne!(wire(&answer)["errorMessage"], "Unauthorized");

    // Nothing listens.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let store = Store::new(
        local_client(&format!("http://127.0.0.1:{port}")),
        "users-api",
    );
    let answer = handle(&store, fixture("request", Some(&token))).await;
    assert_eq!(answer, Err(AuthorizerError::Store));
    assert_eq!(wire(&answer)["errorType"], "TokenStoreUnavailable");
}

#[tokio::test]
async fn an_event_without_method_arn_is_not_taken_for_a_bad_token() {
    let test = TestStore::new().await;
    let token = test.token("fixtures").await;
    let event: AuthorizerEvent = serde_json::from_value(
        json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}")}),
    )
    .unwrap();
    assert_eq!(
        handle(&test.store, event).await,
        Err(AuthorizerError::MalformedEvent)
    );
}

#[tokio::test]
async fn the_token_is_never_logged() {
    let test = TestStore::new().await;
    let token = test.token("fixtures").await;
    let logs = LogCapture::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    // The test runs on one thread (current-thread runtime): the default
    // subscriber sees everything the handler logs.
    let _guard = tracing::subscriber::set_default(subscriber);
    let unknown = format!("{token}x");
    handle(&test.store, fixture("token", Some(&token)))
        .await
        .unwrap();
    handle(&test.store, fixture("request", Some(&unknown)))
        .await
        .unwrap_err();
    let malformed = fixture_text("token", Some(&token)).replace("Bearer ", "Token ");
    handle(&test.store, serde_json::from_str(&malformed).unwrap())
        .await
        .unwrap_err();
    test.store.delete_table().await.unwrap();
    handle(&test.store, fixture("token", Some(&token)))
        .await
        .unwrap_err();

    let text = logs.text();
    assert!(
        text.contains("allowed") && text.contains("refused"),
        "the handler logs its decisions: {text}"
    );
    let secret = token.trim_start_matches("uat_");
    assert!(!text.contains(secret), "a token was logged: {text}");
}

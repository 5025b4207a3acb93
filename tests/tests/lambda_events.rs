//! The Lambda event fixtures of `tests/events/rest` (REST API, payload v1)
//! and `tests/events/http` (HTTP API, payload v2), parsed the way the Lambda
//! runtime parses them (`lambda_http::request::from_str`) and sent through
//! the router of the function that serves the route, on a fresh table.
//!
//! The fixtures are what API Gateway sends after the authorizer let the
//! request through: REST events carry `requestContext.authorizer.accountId`,
//! HTTP events `requestContext.authorizer.lambda.accountId`, so these tests
//! also pin where the handlers read the account.
//!
//! REST events name the stage (`v1`) and `lambda_http` puts it in front of
//! the path unless `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` is set, as
//! `template.yaml` does in its Globals. This test binary sets it too, once,
//! before anything else runs (see [`ignore_stage_in_path`]); it is its own
//! binary so no other test sees the variable.
//!
//! Fixtures that name a user or segment carry placeholder ids
//! ([`FIXTURE_USER`], [`FIXTURE_SEGMENT`]); the tests create the objects with
//! the create fixtures and put the real ids in, and also check that the
//! events as written answer the 404 envelope.

use std::path::PathBuf;
use std::sync::Once;

use axum::Router;
use axum::body::Body;
use http::StatusCode;
use lambda_http::request::RequestContext;
use serde_json::{Value, json};
use shared::http::AppState;
use shared::store::Store;
use tower::ServiceExt;
use users_api_tests::{Answer, TestStore, assert_error, error_fields};

/// The user id the fixtures' paths name.
const FIXTURE_USER: &str = "65f1a2b3c4d5e6f708192a3b";
/// The segment id the fixtures' bodies and paths name.
const FIXTURE_SEGMENT: &str = "65f1a2b3c4d5e6f708192a3c";
/// The account the fixtures' authorizer context names.
const FIXTURE_ACCOUNT: &str = "fixtures";

/// Sets `AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH` the first time it is called.
/// Every test of this binary calls it as its first statement, so the one
/// thread that sets the variable does so while every other test thread waits
/// on the `Once`: nothing reads the environment concurrently.
fn ignore_stage_in_path() {
    static ONCE: Once = Once::new();
    // SAFETY: see above; no other thread of this process touches the
    // environment while the `Once` runs.
    ONCE.call_once(|| unsafe { std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true") });
}

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events")
}

/// A fixture as JSON: `rest/users-create`, `http/user-get`, ...
fn fixture(name: &str) -> Value {
    let path = events_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fixture with the placeholder ids replaced by real ones.
fn fixture_for(name: &str, user: &str, segment: &str) -> Value {
    let text = fixture(name)
        .to_string()
        .replace(FIXTURE_USER, user)
        .replace(FIXTURE_SEGMENT, segment);
    serde_json::from_str(&text).expect("still JSON")
}

/// The event as the Lambda runtime hands it to the router.
fn request(event: &Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string())
        .expect("an API Gateway event lambda_http accepts")
}

/// The function that serves an event's route, as its Lambda `main` builds it.
#[derive(Clone, Copy, Debug)]
enum Function {
    Users,
    Segments,
    Export,
}

fn router(function: Function, store: &Store) -> Router {
    let state = AppState::new(store.clone());
    match function {
        Function::Users => users_function::router(state),
        Function::Segments => segments_function::router(state),
        Function::Export => export_function::router(export_function::ExportState {
            stream: export_function::StreamLimits::LAMBDA,
            ..export_function::ExportState::local(
                state,
                export_function::files::Files::Folder(export_function::files::FolderFiles::new(
                    std::env::temp_dir().join("lambda-events"),
                )),
            )
        }),
    }
}

/// Sends the event through the function's router.
async fn invoke(function: Function, store: &Store, event: &Value) -> Answer {
    let response = router(function, store)
        .oneshot(request(event).map(Body::new))
        .await
        .expect("the router answers");
    Answer::from_response(response).await
}

fn assert_ok(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    if answer.body.get("status").is_some() {
        assert_eq!(
            answer.body["status"],
            json!({"code": 200, "type": "success"}),
            "{}",
            answer.text
        );
    }
}

/// The fixtures of one API kind, by name.
fn fixture_names(kind: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(events_dir().join(kind))
        .expect("the fixtures directory")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| format!("{kind}/{}", path.file_stem().unwrap().to_string_lossy()))
        .collect();
    names.sort();
    names
}

/// Creates the fixture user (`rest/users-create`, Ada, country PL) and
/// segment (`rest/segments-create`, "VIP"); returns their ids.
async fn seed(store: &Store) -> (String, String) {
    let created = invoke(Function::Users, store, &fixture("rest/users-create")).await;
    assert_ok(&created);
    let user = created.body[0]["id"]
        .as_str()
        .expect("a user id")
        .to_owned();
    let created = invoke(Function::Segments, store, &fixture("rest/segments-create")).await;
    assert_ok(&created);
    let segment = created.body["id"]
        .as_str()
        .expect("a segment id")
        .to_owned();
    (user, segment)
}

#[tokio::test]
async fn every_fixture_is_an_event_of_its_api_with_the_account_in_the_authorizer_context() {
    ignore_stage_in_path();
    let rest = fixture_names("rest");
    let http = fixture_names("http");
    assert!(rest.len() >= 17 && http.len() >= 4, "{rest:?} {http:?}");
    for name in rest.iter().chain(&http) {
        let event = fixture(name);
        let public = name.ends_with("/health");
        let parsed = request(&event);
        let context = parsed
            .extensions()
            .get::<RequestContext>()
            .expect("a request context");
        let (account, path) = match context {
            RequestContext::ApiGatewayV1(ctx) => {
                assert!(
                    name.starts_with("rest/"),
                    "{name} parsed as a REST (v1) event"
                );
                assert_eq!(ctx.stage.as_deref(), Some("v1"), "{name}");
                assert_eq!(
                    ctx.path.as_deref(),
                    Some(format!("/v1{}", event["path"].as_str().unwrap()).as_str())
                );
                (
                    ctx.authorizer.fields.get("accountId").cloned(),
                    event["path"].as_str().unwrap().to_owned(),
                )
            }
            RequestContext::ApiGatewayV2(ctx) => {
                assert!(
                    name.starts_with("http/"),
                    "{name} parsed as an HTTP API (v2) event"
                );
                assert_eq!(ctx.stage.as_deref(), Some("$default"), "{name}");
                let account = ctx
                    .authorizer
                    .as_ref()
                    .and_then(|a| a.fields.get("accountId").cloned());
                (account, event["rawPath"].as_str().unwrap().to_owned())
            }
            _ => panic!("{name}: not an API Gateway event"),
        };
        // The stage is not part of the path the routers see.
        assert_eq!(parsed.uri().path(), path, "{name}");
        if public {
            assert_eq!(account, None, "{name}: /health has no authorizer");
        } else {
            assert_eq!(account, Some(json!(FIXTURE_ACCOUNT)), "{name}");
        }
    }
}

#[tokio::test]
async fn rest_health() {
    ignore_stage_in_path();
    let store = TestStore::new().await;
    let answer = invoke(Function::Users, &store.store, &fixture("rest/health")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["database"], "ok");
}

#[tokio::test]
async fn rest_user_lifecycle() {
    ignore_stage_in_path();
    let test_store = TestStore::new().await;
    let store = &test_store.store;
    let (user, segment) = seed(store).await;
    let event = |name: &str| fixture_for(name, &user, &segment);

    // The request id is API Gateway's, from the request context.
    let created = invoke(Function::Users, store, &fixture("rest/users-create-bulk")).await;
    assert_eq!(created.status, StatusCode::MULTI_STATUS, "{}", created.text);
    let request_id = fixture("rest/users-create-bulk")["requestContext"]["requestId"].clone();
    assert_eq!(
        created.headers["x-request-id"].to_str().unwrap(),
        request_id.as_str().unwrap()
    );
    assert_eq!(created.body[0]["status"]["code"], 200, "{}", created.text);
    assert_eq!(created.body[1]["status"]["code"], 400, "{}", created.text);
    assert_eq!(
        created.body[1]["status"]["errors"][0]["field"], "attributes.default_email",
        "{}",
        created.text
    );

    let details = invoke(Function::Users, store, &event("rest/user-get")).await;
    assert_ok(&details);
    // A request id sent by the client wins over API Gateway's.
    assert_eq!(details.headers["x-request-id"], "fixture-user-get");
    assert_eq!(details.body["id"], user.as_str());
    assert_eq!(details.body["userId"], "fixture-ada");
    assert_eq!(details.body["attributes"]["default_name"], "Ada Lovelace");
    assert_eq!(details.body["attributes"]["plan"], "pro");
    assert_eq!(details.body["banned"], false);

    let updated = invoke(Function::Users, store, &event("rest/user-update")).await;
    assert_ok(&updated);
    assert!(updated.body.get("id").is_none(), "{}", updated.text);
    let banned = invoke(Function::Users, store, &event("rest/user-ban")).await;
    assert_ok(&banned);
    let conversation = invoke(
        Function::Users,
        store,
        &event("rest/user-conversations-create"),
    )
    .await;
    assert_ok(&conversation);
    let conversation_id = conversation.body["id"]
        .as_str()
        .expect("a conversation id")
        .to_owned();
    assert_ne!(conversation_id, user);
    // The fixture carries an Idempotency-Key: sent again, it is answered
    // with the first answer and recorded once (the details below show one).
    let repeated = invoke(
        Function::Users,
        store,
        &event("rest/user-conversations-create"),
    )
    .await;
    assert_eq!(repeated.text, conversation.text);
    assert_eq!(repeated.headers["idempotent-replayed"], "true");

    let details = invoke(Function::Users, store, &event("rest/user-get")).await;
    assert_ok(&details);
    assert_eq!(
        details.body["attributes"]["default_city"], "Kraków",
        "{}",
        details.text
    );
    assert!(
        details.body["attributes"].get("plan").is_none(),
        "{}",
        details.text
    );
    assert_eq!(details.body["banned"], true);
    assert_eq!(details.body["sessionAttributes"], json!({"channel": "web"}));
    let conversations = details.body["conversations"]
        .as_array()
        .expect("conversations");
    assert_eq!(conversations.len(), 1);
    assert_eq!(conversations[0]["id"], conversation_id.as_str());
    assert_eq!(conversations[0]["firstMessage"], "Hello! Is anyone there?");
    assert_eq!(details.body["conversationsCount"], 1);
    let listed = invoke(
        Function::Users,
        store,
        &event("rest/user-conversations-list"),
    )
    .await;
    assert_ok(&listed);
    assert_eq!(listed.body["count"], 1, "{}", listed.text);
    assert_eq!(listed.body["data"][0]["id"], conversation_id.as_str());
    assert_eq!(listed.body["next"], Value::Null);

    // The list fixture filters on default_country = PL (a URL-encoded JSON
    // array in the query string): Ada, not Grace.
    let list = invoke(Function::Users, store, &fixture("rest/users-list")).await;
    assert_ok(&list);
    assert_eq!(list.body["count"], 1, "{}", list.text);
    assert_eq!(list.body["data"][0]["id"], user.as_str());
    assert_eq!(list.body["data"][0]["conversations"], 1);

    let deleted = invoke(Function::Users, store, &event("rest/user-delete")).await;
    assert_ok(&deleted);
    assert_eq!(deleted.body["id"], user.as_str());
    assert_error(
        &invoke(Function::Users, store, &event("rest/user-get")).await,
        404,
    );
}

#[tokio::test]
async fn rest_segments_and_memberships() {
    ignore_stage_in_path();
    let test_store = TestStore::new().await;
    let store = &test_store.store;
    let (user, segment) = seed(store).await;
    let event = |name: &str| fixture_for(name, &user, &segment);
    let members = || async {
        let details = invoke(Function::Users, store, &event("rest/user-get")).await;
        assert_ok(&details);
        details.body["segments"].clone()
    };

    for name in ["rest/user-segments-add", "rest/user-segments-replace"] {
        let answer = invoke(Function::Segments, store, &event(name)).await;
        assert_ok(&answer);
        assert_eq!(answer.body["id"], user.as_str(), "{name}");
        assert_eq!(
            members().await,
            json!([{"id": segment, "name": "VIP"}]),
            "{name}"
        );
    }
    let list = invoke(Function::Segments, store, &fixture("rest/segments-list")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.body.as_array().map(Vec::len), Some(1), "{}", list.text);
    assert_eq!(list.body[0]["id"], segment.as_str());
    assert_eq!(list.body[0]["users"], 1);

    let renamed = invoke(Function::Segments, store, &event("rest/segment-rename")).await;
    assert_ok(&renamed);
    assert_eq!(
        members().await,
        json!([{"id": segment, "name": "VIP customers"}])
    );

    let removed = invoke(
        Function::Segments,
        store,
        &event("rest/user-segments-remove"),
    )
    .await;
    assert_ok(&removed);
    assert_eq!(members().await, json!([]));

    let deleted = invoke(Function::Segments, store, &event("rest/segment-delete")).await;
    assert_ok(&deleted);
    let list = invoke(Function::Segments, store, &fixture("rest/segments-list")).await;
    assert_eq!(list.body, json!([]), "{}", list.text);
    // The segment's id names nothing now.
    assert_error(
        &invoke(Function::Segments, store, &event("rest/segment-rename")).await,
        404,
    );
}

#[tokio::test]
async fn rest_export_streams_csv() {
    ignore_stage_in_path();
    let test_store = TestStore::new().await;
    let store = &test_store.store;
    seed(store).await;
    assert_eq!(
        invoke(Function::Users, store, &fixture("rest/users-create-bulk"))
            .await
            .status,
        StatusCode::MULTI_STATUS
    );

    let answer = invoke(Function::Export, store, &fixture("rest/users-export")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        answer.headers["content-disposition"],
        "attachment; filename=\"users.csv\""
    );
    let lines: Vec<&str> = answer.text.lines().collect();
    assert_eq!(
        lines,
        [
            "User ID,Name,Email,Country",
            "fixture-ada,Ada Lovelace,ada@example.com,PL",
            "fixture-grace,Grace Hopper,,US",
        ],
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn rest_fixtures_as_written_name_objects_that_do_not_exist() {
    ignore_stage_in_path();
    let test_store = TestStore::new().await;
    let store = &test_store.store;
    for (function, name) in [
        (Function::Users, "rest/user-get"),
        (Function::Users, "rest/user-update"),
        (Function::Users, "rest/user-ban"),
        (Function::Users, "rest/user-conversations-create"),
        (Function::Users, "rest/user-conversations-list"),
        (Function::Users, "rest/user-delete"),
        (Function::Segments, "rest/segment-rename"),
        (Function::Segments, "rest/segment-delete"),
    ] {
        let answer = invoke(function, store, &fixture(name)).await;
        assert_error(&answer, 404);
    }
    // Membership changes name a segment that does not exist either: a 400
    // naming the segments; with a real segment, the unknown user is a 404.
    let created = invoke(Function::Segments, store, &fixture("rest/segments-create")).await;
    let segment = created.body["id"]
        .as_str()
        .expect("a segment id")
        .to_owned();
    for name in [
        "rest/user-segments-add",
        "rest/user-segments-replace",
        "rest/user-segments-remove",
    ] {
        let answer = invoke(Function::Segments, store, &fixture(name)).await;
        assert_error(&answer, 400);
        assert_eq!(error_fields(&answer), ["segments"], "{name}");
        let answer = invoke(
            Function::Segments,
            store,
            &fixture_for(name, FIXTURE_USER, &segment),
        )
        .await;
        assert_error(&answer, 404);
    }
}

#[tokio::test]
async fn rest_wrong_method_is_405() {
    ignore_stage_in_path();
    let store = TestStore::new().await;
    assert_error(
        &invoke(
            Function::Users,
            &store.store,
            &fixture("rest/users-method-not-allowed"),
        )
        .await,
        405,
    );
}

#[tokio::test]
async fn the_account_is_the_authorizer_contexts_and_nothing_else() {
    ignore_stage_in_path();
    let test_store = TestStore::new().await;
    let store = &test_store.store;
    seed(store).await;

    // Another account sees none of the fixture account's users.
    let mut other = fixture("rest/users-list");
    other["requestContext"]["authorizer"]["accountId"] = json!("someone-else");
    other["requestContext"]["authorizer"]["principalId"] = json!("someone-else");
    let answer = invoke(Function::Users, store, &other).await;
    assert_ok(&answer);
    assert_eq!(answer.body["count"], 0, "{}", answer.text);

    // Without the authorizer context the Authorization header alone is not
    // enough: the functions never look at tokens.
    let mut anonymous = fixture("rest/users-list");
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    assert_error(&invoke(Function::Users, store, &anonymous).await, 401);
    let mut anonymous = fixture("http/users-list");
    anonymous["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    assert_error(&invoke(Function::Users, store, &anonymous).await, 401);

    // A context naming a malformed account is refused the same way.
    let mut malformed = fixture("rest/segments-list");
    malformed["requestContext"]["authorizer"]["accountId"] = json!("not an account");
    assert_error(&invoke(Function::Segments, store, &malformed).await, 401);
}

#[tokio::test]
async fn rest_validation_errors_name_the_fields() {
    ignore_stage_in_path();
    let test_store = TestStore::new().await;
    let store = &test_store.store;
    let (user, segment) = seed(store).await;
    let mut event = fixture_for("rest/user-update", &user, &segment);
    event["body"] = json!(r#"{"attributes":{"default_colour":"red"}}"#);
    let answer = invoke(Function::Users, store, &event).await;
    assert_error(&answer, 400);
    assert_eq!(error_fields(&answer), ["attributes.default_colour"]);
}

#[tokio::test]
async fn http_api_events() {
    ignore_stage_in_path();
    let test_store = TestStore::new().await;
    let store = &test_store.store;

    let health = invoke(Function::Users, store, &fixture("http/health")).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);

    let created = invoke(Function::Users, store, &fixture("http/users-create")).await;
    assert_ok(&created);
    let user = created.body[0]["id"]
        .as_str()
        .expect("a user id")
        .to_owned();

    let details = invoke(
        Function::Users,
        store,
        &fixture_for("http/user-get", &user, FIXTURE_SEGMENT),
    )
    .await;
    assert_ok(&details);
    assert_eq!(details.body["userId"], "fixture-linus");
    assert_eq!(details.body["attributes"]["default_country"], "FI");
    assert_error(
        &invoke(Function::Users, store, &fixture("http/user-get")).await,
        404,
    );

    // Bracket sort parameters, from the raw query string.
    let list = invoke(Function::Users, store, &fixture("http/users-list")).await;
    assert_ok(&list);
    assert_eq!(list.body["count"], 1, "{}", list.text);
    assert_eq!(list.body["data"][0]["id"], user.as_str());

    let segments = invoke(Function::Segments, store, &fixture("http/segments-list")).await;
    assert_eq!(segments.status, StatusCode::OK, "{}", segments.text);
    assert_eq!(segments.body, json!([]));
}

//! API.md "Common rules": auth, the envelope, errors, ids, request ids.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::json;
use users_api_tests::{TestApi, assert_error, error_fields};

#[tokio::test]
async fn every_router_builds() {
    let api = TestApi::new().await;
    let state = shared::http::AppState::new(api.store.clone());
    let _ = users_function::router(state.clone());
    let _ = segments_function::router(state.clone());
    let exports = users_api_tests::test_export_state(&api.store, api.files.clone());
    let _ = export_function::router(exports.clone());
    let _ = users_api::app(exports);
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    assert_error(&api.call(Method::GET, "/users", None, None).await, 401);
    assert_error(
        &api.call(Method::GET, "/users", Some("uat_unknown"), None)
            .await,
        401,
    );
    let malformed = Request::get("/users")
        .header("authorization", format!("Basic {}", acme.token()))
        .body(Body::empty())
        .unwrap();
    assert_error(&api.send(malformed).await, 401);
    let bare = Request::get("/users")
        .header("authorization", acme.token().to_owned())
        .body(Body::empty())
        .unwrap();
    assert_error(&api.send(bare).await, 401);
    // Unauthenticated writes change nothing.
    let answer = api
        .call(
            Method::POST,
            "/users",
            None,
            Some(json!({"userId": "u", "attributes": {"a": "1"}})),
        )
        .await;
    assert_error(&answer, 401);
    assert_eq!(acme.get("/users").await.body["count"], 0);
    assert_eq!(acme.get("/users").await.status, StatusCode::OK);
}

#[tokio::test]
async fn revoked_tokens_stop_working() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    assert_eq!(acme.get("/users").await.status, StatusCode::OK);
    assert!(api.store.revoke_token(acme.token()).await.unwrap());
    assert_error(&acme.get("/users").await, 401);
    assert!(!api.store.revoke_token(acme.token()).await.unwrap());
}

#[tokio::test]
async fn tokens_are_stored_only_as_their_hash() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let scan = api
        .store
        .client()
        .scan()
        .table_name(api.store.table())
        .send()
        .await
        .unwrap();
    let dump = format!("{:?}", scan.items());
    assert!(!dump.contains(acme.token()), "the plain token is stored");
    assert!(dump.contains(&shared::store::hash_token(acme.token())));
}

#[tokio::test]
async fn health_needs_no_token() {
    let api = TestApi::new().await;
    let answer = api.call(Method::GET, "/health", None, None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["database"], "ok");
}

#[tokio::test]
async fn health_says_when_the_database_is_gone() {
    let api = TestApi::new().await;
    api.store.delete_table().await.unwrap();
    let answer = api.call(Method::GET, "/health", None, None).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(answer.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after_and_no_sdk_text() {
    // A store pointed at a closed port: every call fails to dispatch.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let store = shared::store::Store::new(
        shared::engine::local_client(&format!("http://127.0.0.1:{port}")),
        "t",
    );
    let app = users_function::router(shared::http::AppState::new(store));
    let mut request = Request::get("/users").body(Body::empty()).unwrap();
    request.extensions_mut().insert(shared::http::with_account(
        &shared::model::AccountId::parse("acme").unwrap(),
    ));
    let response = tower::ServiceExt::oneshot(app, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(r#""code":503"#), "{text}");
    assert!(!text.to_lowercase().contains("dispatch"), "{text}");
    assert!(!text.contains("127.0.0.1"), "{text}");
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_the_envelope() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    assert_error(&acme.get("/nothing-here").await, 404);
    assert_error(
        &acme.get("/users/5c486eeebda7873576a379e4/nothing").await,
        404,
    );
    assert_error(&acme.call(Method::PATCH, "/users", None).await, 405);
    assert_error(
        &acme
            .call(
                Method::POST,
                "/users/5c486eeebda7873576a379e4",
                Some(json!({})),
            )
            .await,
        405,
    );
    assert_error(
        &acme
            .call(Method::GET, "/users/5c486eeebda7873576a379e4/ban", None)
            .await,
        405,
    );
}

#[tokio::test]
async fn bodies_over_1_mib_are_413() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let big = "x".repeat(1024 * 1024 + 1);
    let request = acme
        .request(Method::POST, "/users")
        .header("content-type", "application/json")
        .body(Body::from(big))
        .unwrap();
    assert_error(&api.send(request).await, 413);
    // Without a Content-Length the limit still holds.
    let chunks = futures_stream(1024 * 1024 + 10);
    let request = acme
        .request(Method::POST, "/users")
        .header("content-type", "application/json")
        .body(chunks)
        .unwrap();
    assert_error(&api.send(request).await, 413);
}

fn futures_stream(size: usize) -> Body {
    let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
    let chunks = (0..size.div_ceil(64 * 1024)).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    Body::from_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn bodies_that_are_not_json_are_415_and_malformed_json_is_400() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let form = acme
        .request(Method::POST, "/users")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("userId=u"))
        .unwrap();
    assert_error(&api.send(form).await, 415);
    let no_type = acme
        .request(Method::POST, "/users")
        .body(Body::from(r#"{"userId":"u","attributes":{"a":"1"}}"#))
        .unwrap();
    assert_error(&api.send(no_type).await, 415);
    let broken = acme
        .request(Method::POST, "/users")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"userId": "u", "attributes": {"#))
        .unwrap();
    let answer = api.send(broken).await;
    assert_error(&answer, 400);
    assert!(
        answer.body["status"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
    let empty = acme
        .request(Method::PUT, "/users/5c486eeebda7873576a379e4/ban")
        .header("content-type", "application/json")
        .body(Body::empty())
        .unwrap();
    assert_error(&api.send(empty).await, 400);
    assert_eq!(acme.get("/users").await.body["count"], 0);
}

#[tokio::test]
async fn malformed_path_ids_are_400_and_unknown_ids_404() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    for bad in [
        "abc",
        "5C486EEEBDA7873576A379E4",
        "5c486eeebda7873576a379e",
        "5c486eeebda7873576a379e4a",
    ] {
        let answer = acme.get(&format!("/users/{bad}")).await;
        assert_error(&answer, 400);
        assert_eq!(error_fields(&answer), ["id"]);
    }
    assert_error(&acme.get("/users/5c486eeebda7873576a379e4").await, 404);
    assert_error(
        &acme
            .put(
                "/users/5c486eeebda7873576a379e4",
                json!({"attributes": {"a": "1"}}),
            )
            .await,
        404,
    );
    assert_error(
        &acme
            .put(
                "/users/5c486eeebda7873576a379e4/ban",
                json!({"banned": true}),
            )
            .await,
        404,
    );
    assert_error(&acme.delete("/users/5c486eeebda7873576a379e4").await, 404);
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let request = acme
        .request(Method::GET, "/users")
        .header("x-request-id", "trace-42")
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.send(request).await.headers["x-request-id"], "trace-42");
    let made = acme.get("/users").await;
    assert_eq!(made.headers["x-request-id"].len(), 36);
    let error = acme.get("/nothing").await;
    assert!(error.headers.contains_key("x-request-id"));
    let unauthorized = api.call(Method::GET, "/users", None, None).await;
    assert!(unauthorized.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn success_envelopes_have_the_reference_timestamp_format() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let answer = acme
        .post(
            "/users",
            json!({"userId": "u", "attributes": {"default_name": "Joe"}}),
        )
        .await;
    let envelope = &answer.body[0];
    let ts = envelope["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), "2018-01-19T11:55:07.552Z".len());
    assert_eq!(&ts[10..11], "T");
    assert_eq!(&ts[19..20], ".");
    assert!(ts.ends_with('Z'));
    assert_eq!(envelope["status"], json!({"code": 200, "type": "success"}));
}

#[tokio::test]
async fn an_account_past_its_limits_gets_429_with_retry_after_and_others_go_on() {
    // GIVEN accounts held to a burst of 3 and 1 request a second
    let api = TestApi::new()
        .await
        .with_account_limits(shared::http::AccountLimits {
            rate_per_second: 1.0,
            burst: 3,
        });
    let acme = api.client("acme").await;
    let globex = api.client("globex").await;

    // WHEN acme sends a fourth request at once
    for _ in 0..3 {
        assert_eq!(acme.get("/users").await.status, StatusCode::OK);
    }
    let throttled = acme.post("/segments", json!({"name": "never"})).await;

    // THEN it is 429 with Retry-After, in the envelope, and nothing changed
    assert_error(&throttled, 429);
    assert_eq!(throttled.headers["retry-after"], "1");
    assert_eq!(
        throttled.body["status"]["message"],
        "too many requests, retry later"
    );
    // AND another account, and the health check, are not held back
    assert_eq!(globex.get("/users").await.status, StatusCode::OK);
    let health = api.call(Method::GET, "/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert_eq!(acme.get("/segments").await.body, json!([]));
}

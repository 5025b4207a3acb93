//! The test harness: a real DynamoDB API endpoint and the real routers.
//!
//! With `USERS_API_TEST_ENDPOINT` set (the test script points it at moto's
//! server) every test makes its own uniquely named table there; otherwise
//! every test starts its own in-memory embedded engine. Either way requests
//! go through the same routers and the same store as in production.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use shared::engine::{EmbeddedEngine, local_client};
use shared::http::AppState;
use shared::model::AccountId;
use shared::store::Store;
use tower::ServiceExt;

/// The variable naming an external DynamoDB endpoint for the tests.
pub const ENDPOINT_ENV: &str = "USERS_API_TEST_ENDPOINT";

/// A store on a fresh table of its own.
pub struct TestStore {
    pub store: Store,
    _engine: Option<Arc<EmbeddedEngine>>,
}

impl TestStore {
    pub async fn new() -> Self {
        let table = format!("test-{}", uuid_simple());
        let (store, engine) = match std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty()) {
            Some(endpoint) => (Store::new(local_client(&endpoint), table), None),
            None => {
                let engine = EmbeddedEngine::start(None).await.expect("embedded engine starts");
                (Store::new(local_client(engine.endpoint()), table), Some(Arc::new(engine)))
            }
        };
        store.ensure_table().await.expect("table is created");
        Self { store, _engine: engine }
    }

    /// Which engine the tests run on, for messages.
    pub fn engine_name() -> &'static str {
        if std::env::var(ENDPOINT_ENV).is_ok_and(|e| !e.is_empty()) { "external" } else { "embedded" }
    }
}

fn uuid_simple() -> String {
    // Test tables only need to be unique; the clock and the process id make them so.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// An answer: status, headers, and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

/// The local server's whole app (every function behind the auth layer) on a fresh table.
pub struct TestApi {
    pub app: Router,
    pub store: Store,
    _store: TestStore,
}

impl TestApi {
    pub async fn new() -> Self {
        let test_store = TestStore::new().await;
        let store = test_store.store.clone();
        Self { app: users_api::app(AppState::new(store.clone())), store, _store: test_store }
    }

    /// A new token for `account` (created if new).
    pub async fn token(&self, account: &str) -> String {
        self.store
            .create_token(&AccountId::parse(account).expect("valid account"))
            .await
            .expect("token is created")
    }

    /// Sends a request; `body` is sent as JSON.
    pub async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&body).expect("JSON"))
            }
            None => Body::empty(),
        };
        self.send(request.body(body).expect("request")).await
    }

    /// Sends a prepared request.
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, headers, body, text }
    }

    pub async fn get(&self, uri: &str, token: &str) -> Answer {
        self.call(Method::GET, uri, Some(token), None).await
    }

    pub async fn post(&self, uri: &str, token: &str, body: Value) -> Answer {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }

    pub async fn put(&self, uri: &str, token: &str, body: Value) -> Answer {
        self.call(Method::PUT, uri, Some(token), Some(body)).await
    }

    pub async fn delete(&self, uri: &str, token: &str) -> Answer {
        self.call(Method::DELETE, uri, Some(token), None).await
    }

    /// Creates one user and returns its id.
    pub async fn create_user(&self, token: &str, user: Value) -> String {
        let answer = self.post("/users", token, user).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.body[0]["id"].as_str().expect("an id").to_owned()
    }

    /// Creates a segment and returns its id.
    pub async fn create_segment(&self, token: &str, name: &str) -> String {
        let answer = self.post("/segments", token, serde_json::json!({ "name": name })).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.body["id"].as_str().expect("an id").to_owned()
    }
}

/// Asserts the error envelope: status, code, type and a message.
pub fn assert_error(answer: &Answer, status: u16) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.text);
    assert_eq!(answer.body["status"]["code"], status, "{}", answer.text);
    assert_eq!(answer.body["status"]["type"], "error", "{}", answer.text);
    assert!(answer.body["status"]["message"].is_string(), "{}", answer.text);
    assert!(answer.body["timestamp"].is_string(), "{}", answer.text);
}

/// The fields an error envelope names.
pub fn error_fields(answer: &Answer) -> Vec<String> {
    answer.body["status"]["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

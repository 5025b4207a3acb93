//! The access log: one JSON line per request with the request id, method,
//! route, status and duration — and never a token or an attribute value,
//! even at `RUST_LOG=trace`.

use serde_json::{Value, json};
use tracing::subscriber::DefaultGuard;
use users_api_tests::{LogCapture, NewUser, TestApi};

/// JSON log lines as production writes them, with `rust_log` as `RUST_LOG`,
/// captured for this test's thread while the guard lives.
fn capture_logs(rust_log: Option<&str>) -> (LogCapture, DefaultGuard) {
    let captured = LogCapture::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_writer(move || sink.clone())
        .with_env_filter(shared::http::log_filter(rust_log))
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn access_logs_name_the_request_but_hold_no_secrets() {
    // At the most talkative setting an operator could choose.
    let (captured, _guard) = capture_logs(Some("trace"));

    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let secret_value = "s3cr3t-attribute-value";
    let id = acme
        .create_user(
            NewUser::new("secret-user-id")
                .with("default_email", "hidden@example.com")
                .with("note", secret_value),
        )
        .await;
    acme.put(
        &format!("/users/{id}"),
        json!({"attributes": {"note": secret_value}}),
    )
    .await;
    acme.get(&format!(
        "/users?filters[0][field]=note&filters[0][operator]=eq&filters[0][value]={secret_value}"
    ))
    .await;
    acme.get("/users/5c486eeebda7873576a379e4").await;
    api.call(http::Method::GET, "/users", Some("uat_wrong-token"), None)
        .await;

    let text = captured.text();
    for secret in [
        acme.token(),
        secret_value,
        "hidden@example.com",
        "secret-user-id",
        "uat_wrong-token",
    ] {
        assert!(!text.contains(secret), "the log holds {secret:?}");
    }
    let requests: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"]["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 5, "{text}");
    let statuses: Vec<u64> = requests
        .iter()
        .map(|r| r["fields"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 200, 200, 404, 401]);
    for request in &requests {
        assert!(request["span"]["request_id"].is_string(), "{request}");
        assert!(request["span"]["method"].is_string(), "{request}");
        assert!(request["fields"]["duration_ms"].is_number(), "{request}");
    }
    assert_eq!(requests[2]["span"]["route"], "/users");
    assert_eq!(requests[3]["span"]["route"], "/users/{id}");
}

#[tokio::test]
async fn a_failure_is_logged_once_on_its_requests_line() {
    let (captured, _guard) = capture_logs(None);

    // GIVEN an API whose database does not answer (nothing listens there)
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let gone = shared::store::Store::new(
        shared::engine::local_client("http://127.0.0.1:9"),
        api.store.table().to_owned(),
    );
    let acme = acme.on(&api.on_store(gone));
    // WHEN a request meets it
    let answer = acme.get("/users").await;
    assert_eq!(answer.status, 503);

    // THEN its one line says why, at warn, and no other line does
    let text = captured.text();
    let lines: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["fields"]["message"], "request");
    assert_eq!(lines[0]["level"], "WARN");
    assert_eq!(lines[0]["fields"]["status"], 503);
    assert!(
        lines[0]["fields"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("GetItem token")),
        "{text}"
    );
    assert!(
        !answer.text.contains("GetItem"),
        "never sent: {}",
        answer.text
    );
}

//! `Idempotency-Key`: a retried write is answered with the first answer and
//! done once, also when the attempts arrive together, and also when the
//! first attempt stopped after its work and before its answer was kept.

use axum::body::Body;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::model::AccountId;
use shared::store::items::{key, n};
use shared::store::keys;
use users_api_tests::{Answer, Client, NewUser, TestApi, assert_error};

/// Sends `body` (JSON, when given) with `Idempotency-Key: key`.
async fn send_keyed(
    client: &Client,
    method: Method,
    uri: &str,
    idempotency_key: &str,
    body: Option<Value>,
) -> Answer {
    let request = client
        .request(method, uri)
        .header("idempotency-key", idempotency_key)
        .header("content-type", "application/json");
    let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
    client.send(request.body(body).expect("request")).await
}

/// `POST`s `body` with `Idempotency-Key: key`.
async fn post_keyed(client: &Client, uri: &str, key: &str, body: Value) -> Answer {
    send_keyed(client, Method::POST, uri, key, Some(body)).await
}

/// Leaves the key's record as an attempt that stopped after its work, before
/// its answer was kept, leaves it once its lease has run out.
async fn forget_answer(api: &TestApi, account: &str, idempotency_key: &str) {
    let account = AccountId::parse(account).unwrap();
    api.store
        .client()
        .update_item()
        .table_name(api.store.table())
        .set_key(Some(key(
            keys::idempotency_key_pk(&account, idempotency_key),
            keys::CLAIM_SK,
        )))
        .update_expression("REMOVE answer SET leaseUntil = :zero")
        .condition_expression("attribute_exists(answer)")
        .expression_attribute_values(":zero", n(0))
        .send()
        .await
        .expect("the key's record had an answer");
}

async fn user_count(client: &Client) -> usize {
    client.get("/users").await.body["count"].as_u64().unwrap() as usize
}

#[tokio::test]
async fn a_repeated_create_without_user_id_gets_the_first_answer_and_one_user() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = json!({"attributes": {"default_email": "ann@example.com"}});

    let first = post_keyed(&acme, "/users", "create-ann", user.clone()).await;
    let again = post_keyed(&acme, "/users", "create-ann", user).await;

    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.text, first.text,
        "the first answer, timestamp and all"
    );
    assert_eq!(again.headers["content-type"], first.headers["content-type"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(user_count(&acme).await, 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_422_and_changes_nothing() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = |user_id: &str| json!({"userId": user_id, "attributes": {"x": "1"}});
    let first = post_keyed(&acme, "/users", "k1", user("a")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);

    let other_body = post_keyed(&acme, "/users", "k1", user("b")).await;
    assert_error(&other_body, 422);
    let other_route = post_keyed(&acme, "/segments", "k1", json!({"name": "VIP"})).await;
    assert_error(&other_route, 422);

    assert_eq!(user_count(&acme).await, 1);
    let segments = acme.get("/segments").await.body;
    assert_eq!(segments.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn keys_belong_to_their_account() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let globex = api.client("globex").await;
    let user = json!({"userId": "same", "attributes": {"x": "1"}});
    let at_acme = post_keyed(&acme, "/users", "shared-key", user.clone()).await;
    let at_globex = post_keyed(&globex, "/users", "shared-key", user).await;
    assert_eq!(at_acme.status, StatusCode::OK);
    assert_eq!(at_globex.status, StatusCode::OK);
    assert!(at_globex.headers.get("idempotent-replayed").is_none());
    assert_ne!(at_acme.body[0]["id"], at_globex.body[0]["id"]);
    assert_eq!(user_count(&globex).await, 1);
}

#[tokio::test]
async fn attempts_that_arrive_together_store_one_user_and_get_one_answer() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = json!({"attributes": {"default_email": "bob@example.com"}});
    let attempts = (0..6).map(|_| post_keyed(&acme, "/users", "together", user.clone()));
    let answers = futures_util::future::join_all(attempts).await;
    let ids: Vec<&Value> = answers.iter().map(|a| &a.body[0]["id"]).collect();
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(user_count(&acme).await, 1);
}

#[tokio::test]
async fn a_repeat_after_the_first_attempt_stopped_finds_its_work_and_does_it_not_again() {
    // GIVEN a user, a segment, a conversation and an export job, each
    // created by an attempt whose answer was never kept (it stopped)
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let creates = [
        (
            "/users",
            json!({"attributes": {"default_email": "cy@example.com"}}),
        ),
        ("/segments", json!({"name": "VIP"})),
        ("/users/exports", json!({"fields": ["userId"]})),
    ];
    let mut firsts = Vec::new();
    for (uri, body) in &creates {
        let first = post_keyed(&acme, uri, uri, body.clone()).await;
        assert!(first.status.is_success(), "{uri}: {}", first.text);
        forget_answer(&api, "acme", uri).await;
        firsts.push(first);
    }
    let user = firsts[0].body[0]["id"].as_str().unwrap().to_owned();
    let conversations = format!("/users/{user}/conversations");
    let talk = || post_keyed(&acme, &conversations, "talk", json!({"firstMessage": "hi"}));
    let first_conversation = talk().await;
    assert_eq!(
        first_conversation.status,
        StatusCode::OK,
        "{}",
        first_conversation.text
    );
    forget_answer(&api, "acme", "talk").await;

    // WHEN each is sent again under its key
    for ((uri, body), first) in creates.iter().zip(&firsts) {
        let again = post_keyed(&acme, uri, uri, body.clone()).await;
        // THEN it answers as the first attempt did, naming the same object
        assert_eq!(again.status, first.status, "{uri}: {}", again.text);
        assert!(
            again.headers.get("idempotent-replayed").is_none(),
            "{uri}: done, not replayed"
        );
        let id_of = |answer: &Answer| match answer.body.get(0) {
            Some(element) => element["id"].clone(),
            None => answer.body["id"].clone(),
        };
        assert_eq!(id_of(&again), id_of(first), "{uri}");
    }
    let again = talk().await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["id"], first_conversation.body["id"]);

    // AND nothing was done twice
    assert_eq!(user_count(&acme).await, 1);
    let details = acme.get(&format!("/users/{user}")).await.body;
    assert_eq!(details["conversations"].as_array().unwrap().len(), 1);
    let listed = acme.get("/users").await.body;
    assert_eq!(listed["data"][0]["conversations"], 1);
    let segments = acme.get("/segments").await.body;
    assert_eq!(segments.as_array().unwrap().len(), 1);
    // AND the answer is now kept
    let replayed = talk().await;
    assert_eq!(replayed.headers["idempotent-replayed"], "true");
    assert_eq!(replayed.text, again.text);
}

#[tokio::test]
async fn errors_are_kept_too_and_reads_and_bad_keys_are_told_apart() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ban_nobody = || {
        let missing = "/users/5c486eeebda7873576a379e4/ban";
        send_keyed(
            &acme,
            Method::PUT,
            missing,
            "ban",
            Some(json!({"banned": true})),
        )
    };
    let first = ban_nobody().await;
    assert_error(&first, 404);
    let again = ban_nobody().await;
    assert_error(&again, 404);
    assert_eq!(again.headers["idempotent-replayed"], "true");

    let bad_key = post_keyed(&acme, "/segments", "two words", json!({"name": "A"})).await;
    assert_error(&bad_key, 400);
    assert_eq!(
        bad_key.body["status"]["errors"][0]["field"],
        "Idempotency-Key"
    );

    // A read ignores the header.
    for _ in 0..2 {
        let list = send_keyed(&acme, Method::GET, "/users", "read", None).await;
        assert_eq!(list.status, StatusCode::OK);
        assert!(list.headers.get("idempotent-replayed").is_none());
    }
}

#[tokio::test]
async fn a_repeated_delete_answers_200_again() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = acme.create_user(NewUser::new("gone").with("x", "1")).await;
    let uri = format!("/users/{user}");
    let first = send_keyed(&acme, Method::DELETE, &uri, "erase", None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = send_keyed(&acme, Method::DELETE, &uri, "erase", None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.text, first.text);
    let unkeyed = acme.delete(&uri).await;
    assert_error(&unkeyed, 404);
}

#[tokio::test]
async fn a_replayed_export_job_keeps_its_location() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let body = json!({"fields": ["userId"]});
    let first = post_keyed(&acme, "/users/exports", "job", body.clone()).await;
    let again = post_keyed(&acme, "/users/exports", "job", body).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(again.headers["location"], first.headers["location"]);
}

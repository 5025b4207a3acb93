//! API.md "Users": create, list, details, update, ban, delete.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Value, json};
use users_api_tests::{Client, NewUser, TestApi, assert_error, error_fields};

fn user(user_id: &str) -> NewUser {
    NewUser::new(user_id).with("default_name", format!("Name {user_id}"))
}

#[tokio::test]
async fn create_answers_an_array_of_envelopes_and_details_show_the_user() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let answer = acme
        .post("/users", json!({"userId": "u-1", "attributes": {"default_name": "Joe", "default_email": "joe@doe.com", "plan": "pro"}}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let id = answer.body[0]["id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert_eq!(answer.body.as_array().unwrap().len(), 1);

    let details = acme.get(&format!("/users/{id}")).await;
    assert_eq!(details.status, StatusCode::OK);
    let body = &details.body;
    assert_eq!(body["id"], id);
    assert_eq!(body["userId"], "u-1");
    assert_eq!(body["banned"], false);
    assert_eq!(body["attributes"]["default_name"], "Joe");
    assert_eq!(body["attributes"]["default_url"], Value::Null);
    assert_eq!(body["attributes"]["plan"], "pro");
    assert_eq!(body["attributes"].as_object().unwrap().len(), 14);
    assert_eq!(body["conversations"], json!([]));
    assert_eq!(body["segments"], json!([]));
    assert_eq!(body["sessionAttributes"], json!({}));
    assert_eq!(body["createdAt"], body["lastSeen"]);
    let created = body["createdAt"].as_str().unwrap();
    assert_eq!(created.len(), "2019-01-23 13:32:30.163Z".len());
    assert_eq!(&created[10..11], " ");
    // Attribute keys keep the documented order: the 13 defaults first, then custom keys.
    let order: Vec<&str> = details
        .text
        .split("\"attributes\":{")
        .nth(1)
        .unwrap()
        .split(',')
        .take(2)
        .collect();
    assert!(order[0].starts_with("\"default_email\""), "{order:?}");
    assert!(order[1].starts_with("\"default_name\""), "{order:?}");
}

#[tokio::test]
async fn user_id_defaults_to_a_uuid_when_an_email_is_given() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let id = acme
        .create_user(NewUser::without_user_id().with("default_email", "a@b.c"))
        .await;
    let details = acme.get(&format!("/users/{id}")).await;
    let user_id = details.body["userId"].as_str().unwrap();
    assert_eq!(user_id.len(), 36);
    assert_eq!(&user_id[14..15], "4");
}

#[tokio::test]
async fn invalid_users_are_400_naming_every_field_and_store_nothing() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let answer = acme
        .post("/users", json!({"userId": "", "attributes": {"default_colour": "red", "default_email": "nope"}, "extra": 1}))
        .await;
    assert_error(&answer, 400);
    let mut fields = error_fields(&answer);
    fields.sort();
    assert_eq!(
        fields,
        [
            "attributes.default_colour",
            "attributes.default_email",
            "extra",
            "userId"
        ]
    );
    assert!(answer.body.get("id").is_none());
    let answer = acme
        .post("/users", json!({"attributes": {"default_name": "x"}}))
        .await;
    assert_eq!(error_fields(&answer), ["userId"]);
    let answer = acme
        .post("/users", json!({"userId": "u", "attributes": {}}))
        .await;
    assert_eq!(error_fields(&answer), ["attributes"]);
    let answer = acme.post("/users", json!("u")).await;
    assert_error(&answer, 400);
    let answer = acme.post("/users", json!({"userId": "u", "attributes": {"a": "1"}, "segments": ["5c486eeebda7873576a379e4"]})).await;
    assert_error(&answer, 400);
    assert!(answer.text.contains("5c486eeebda7873576a379e4"));
    assert_eq!(acme.get("/users").await.body["count"], 0);
}

#[tokio::test]
async fn a_taken_user_id_is_409_naming_the_existing_user() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let first = acme.create_user(user("dup")).await;
    let answer = acme.post("/users", user("dup").json()).await;
    assert_error(&answer, 409);
    assert_eq!(answer.body["id"], first);
    assert_eq!(acme.get("/users").await.body["count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_with_one_user_id_make_exactly_one_user() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let acme = acme.clone();
        tasks.push(tokio::spawn(async move {
            acme.post("/users", user("racer").json()).await
        }));
    }
    let mut created = Vec::new();
    let mut conflicts = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        match answer.status {
            StatusCode::OK => created.push(answer.body[0]["id"].as_str().unwrap().to_owned()),
            StatusCode::CONFLICT => conflicts.push(answer.body["id"].as_str().unwrap().to_owned()),
            other => panic!("unexpected {other}: {}", answer.text),
        }
    }
    assert_eq!(created.len(), 1, "exactly one create succeeds");
    assert_eq!(conflicts.len(), 7);
    assert!(
        conflicts.iter().all(|id| *id == created[0]),
        "every 409 names the winner"
    );
    let list = acme.get("/users").await;
    assert_eq!(list.body["count"], 1);
}

#[tokio::test]
async fn bulk_create_answers_200_when_all_succeed() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let answer = acme
        .post(
            "/users",
            json!([user("a").json(), user("b").json(), user("c").json()]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let envelopes = answer.body.as_array().unwrap();
    assert_eq!(envelopes.len(), 3);
    assert!(envelopes.iter().all(|e| e["status"]["code"] == 200));
    assert_eq!(acme.get("/users").await.body["count"], 3);
}

#[tokio::test]
async fn bulk_create_answers_207_with_each_elements_status_and_keeps_the_good_ones() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let existing = acme.create_user(user("taken")).await;
    let answer = acme
        .post("/users", json!([user("ok-1").json(), {"userId": "bad", "attributes": {"default_x": "1"}}, user("taken").json(), user("ok-2").json()]))
        .await;
    assert_eq!(answer.status, StatusCode::MULTI_STATUS, "{}", answer.text);
    let envelopes = answer.body.as_array().unwrap();
    let codes: Vec<u64> = envelopes
        .iter()
        .map(|e| e["status"]["code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [200, 400, 409, 200]);
    assert_eq!(
        envelopes[1]["status"]["errors"][0]["field"],
        "attributes.default_x"
    );
    assert_eq!(envelopes[2]["id"], existing);
    assert_eq!(envelopes[1]["status"]["type"], "error");
    assert_eq!(acme.get("/users").await.body["count"], 3);
}

#[tokio::test]
async fn bulk_bodies_hold_1_to_100_users() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    assert_error(&acme.post("/users", json!([])).await, 400);
    let too_many: Vec<Value> = (0..101).map(|i| user(&format!("u{i}")).json()).collect();
    assert_error(&acme.post("/users", json!(too_many)).await, 400);
    assert_eq!(acme.get("/users").await.body["count"], 0);
    let hundred: Vec<Value> = (0..100).map(|i| user(&format!("u{i}")).json()).collect();
    assert_eq!(
        acme.post("/users", json!(hundred)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn update_sets_unsets_and_leaves_other_keys_alone() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let id = acme
        .create_user(
            NewUser::new("u")
                .with("default_name", "Joe")
                .with("default_city", "Paris")
                .with("plan", "free"),
        )
        .await;
    let before = acme.get(&format!("/users/{id}")).await.body;
    let answer = acme
        .put(
            &format!("/users/{id}"),
            json!({"attributes": {"default_city": null, "plan": "pro", "team": "a"}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.body.get("id").is_none());
    assert_eq!(answer.body["status"]["code"], 200);
    let after = acme.get(&format!("/users/{id}")).await.body;
    assert_eq!(after["attributes"]["default_name"], "Joe");
    assert_eq!(after["attributes"]["default_city"], Value::Null);
    assert_eq!(after["attributes"]["plan"], "pro");
    assert_eq!(after["attributes"]["team"], "a");
    assert_eq!(
        after["lastSeen"], before["lastSeen"],
        "updates do not touch lastSeen"
    );
}

#[tokio::test]
async fn update_refuses_bad_input_and_changes_nothing() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let id = acme
        .create_user(NewUser::new("u").with("default_name", "Joe"))
        .await;
    let uri = format!("/users/{id}");
    let before = acme.get(&uri).await.body;
    for (body, field) in [
        (
            json!({"attributes": {"default_name": "n".repeat(257), "plan": "pro"}}),
            "attributes.default_name",
        ),
        (json!({"attributes": {}}), "attributes"),
        (json!({}), "attributes"),
        (json!({"attributes": {"a": 1}}), "attributes.a"),
        (json!({"attributes": {"a": "1"}, "userId": "x"}), "userId"),
    ] {
        let answer = acme.put(&uri, body).await;
        assert_error(&answer, 400);
        assert_eq!(error_fields(&answer), [field]);
    }
    assert_eq!(acme.get(&uri).await.body, before);
}

#[tokio::test]
async fn a_user_holds_at_most_99_attributes() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let first: serde_json::Map<String, Value> =
        (0..60).map(|i| (format!("a{i}"), json!("v"))).collect();
    let id = acme
        .create_user(NewUser::new("u").with_attributes(first))
        .await;
    let uri = format!("/users/{id}");
    let more: serde_json::Map<String, Value> =
        (0..40).map(|i| (format!("b{i}"), json!("v"))).collect();
    let answer = acme.put(&uri, json!({"attributes": more})).await;
    assert_error(&answer, 400);
    assert_eq!(error_fields(&answer), ["attributes"]);
    let details = acme.get(&uri).await.body;
    assert!(
        details["attributes"].get("b0").is_none(),
        "nothing was written"
    );
    // Unsetting one while adding 39 fits exactly.
    let mut fits: serde_json::Map<String, Value> =
        (0..39).map(|i| (format!("b{i}"), json!("v"))).collect();
    fits.insert("a0".into(), Value::Null);
    assert_eq!(
        acme.put(&uri, json!({"attributes": fits})).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn ban_and_unban() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let id = acme.create_user(user("u")).await;
    let uri = format!("/users/{id}/ban");
    let answer = acme.put(&uri, json!({"banned": true})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["status"]["code"], 200);
    assert_eq!(acme.get(&format!("/users/{id}")).await.body["banned"], true);
    acme.put(&uri, json!({"banned": false})).await;
    assert_eq!(
        acme.get(&format!("/users/{id}")).await.body["banned"],
        false
    );
    for bad in [
        json!({}),
        json!({"banned": "true"}),
        json!({"banned": null}),
        json!([true]),
    ] {
        assert_error(&acme.put(&uri, bad).await, 400);
    }
    assert_eq!(
        acme.get(&format!("/users/{id}")).await.body["banned"],
        false
    );
}

#[tokio::test]
async fn delete_erases_the_user_and_frees_its_user_id() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let id = acme.create_user(user("gone")).await;
    let answer = acme.delete(&format!("/users/{id}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["id"], id);
    assert_error(&acme.get(&format!("/users/{id}")).await, 404);
    assert_error(&acme.delete(&format!("/users/{id}")).await, 404);
    assert_eq!(acme.get("/users").await.body["count"], 0);
    let again = acme.create_user(user("gone")).await;
    assert_ne!(again, id);
}

#[tokio::test]
async fn accounts_never_see_each_others_users() {
    let api = TestApi::new().await;
    let alice = api.client("alice").await;
    let bob = api.client("bob").await;
    let id = alice.create_user(user("shared-id")).await;
    let uri = format!("/users/{id}");
    assert_error(&bob.get(&uri).await, 404);
    assert_error(&bob.put(&uri, json!({"attributes": {"a": "1"}})).await, 404);
    assert_error(
        &bob.put(&format!("{uri}/ban"), json!({"banned": true}))
            .await,
        404,
    );
    assert_error(&bob.delete(&uri).await, 404);
    assert_eq!(bob.get("/users").await.body["count"], 0);
    let filtered = bob
        .get("/users?filters[0][field]=userId&filters[0][operator]=eq&filters[0][value]=shared-id")
        .await;
    assert_eq!(filtered.body["count"], 0);
    assert_error(&bob.get(&format!("/users?after={id}")).await, 400);
    // The same userId is free in another account.
    let bobs = bob.create_user(user("shared-id")).await;
    assert_ne!(bobs, id);
    let details = alice.get(&uri).await.body;
    assert_eq!(details["banned"], false);
    assert_eq!(details["attributes"].get("a"), None);
}

#[tokio::test]
async fn list_shows_the_reference_fields_in_order() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    acme.create_user(
        NewUser::new("u")
            .with("default_email", "joe@doe.com")
            .with("default_name", "Joe"),
    )
    .await;
    let answer = acme.get("/users").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.text.starts_with(r#"{"data":[{"id":"#),
        "{}",
        answer.text
    );
    assert_eq!(answer.body["count"], 1);
    assert_eq!(answer.body["next"], Value::Null);
    let user = &answer.body["data"][0];
    let keys: BTreeSet<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "userId",
            "banned",
            "attributes",
            "conversations",
            "createdAt",
            "lastSeen"
        ])
    );
    assert_eq!(user["conversations"], 0);
    assert_eq!(user["attributes"].as_object().unwrap().len(), 13);
}

/// DynamoDB requests one call makes, counted by the store's meter; the
/// token lookup (one `GetItem`) is taken out.
async fn requests_of(client: &Client, call: impl AsyncFnOnce() -> StatusCode) -> u64 {
    let store = client.store();
    let before = store.meter();
    store
        .resolve_token(client.token())
        .await
        .expect("the token resolves");
    let lookup = store.meter() - before;
    let before = store.meter();
    let status = call().await;
    assert!(status.is_success(), "{status}");
    (store.meter() - before).requests - lookup.requests
}

#[tokio::test]
async fn the_user_routes_make_as_few_dynamodb_requests_as_their_items_allow() {
    // GIVEN an account with one user who has had a conversation
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let id = acme.create_user(user("u-1")).await;
    let path = format!("/users/{id}");
    acme.record_conversation(&id, "hi").await;

    // WHEN each route is called THEN it makes this many requests:
    // create is one transaction;
    let create = requests_of(&acme, async || {
        acme.post("/users", user("u-2").json()).await.status
    })
    .await;
    assert_eq!(create, 1, "create");
    // details read the profile and the newest conversations, which sort
    // right after it (one query); the user is in no segment;
    let details = requests_of(&acme, async || acme.get(&path).await.status).await;
    assert_eq!(details, 1, "details");
    // a list page is one query of the index (keys) and one BatchGetItem of
    // the profiles;
    let list = requests_of(&acme, async || acme.get("/users?limit=20").await.status).await;
    assert_eq!(list, 2, "list page");
    // an update reads the profile (the attribute limits) and writes it.
    let update = requests_of(&acme, async || {
        acme.put(&path, json!({"attributes": {"plan": "pro"}}))
            .await
            .status
    })
    .await;
    assert_eq!(update, 2, "update");
}

#[tokio::test]
async fn the_meter_counts_items_and_the_units_the_engine_reports() {
    // GIVEN a user
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let id = acme.create_user(user("u-1")).await;
    // WHEN it is read
    let before = api.store.meter();
    assert_eq!(
        acme.get(&format!("/users/{id}")).await.status,
        StatusCode::OK
    );
    let spent = api.store.meter() - before;
    // THEN the token and the profile were read, and the time in flight kept
    assert_eq!(spent.items_read, 2, "{spent:?}");
    assert!(!spent.engine_time.is_zero());
    // and every engine here reports consumed capacity (DynamoDB's rules: a
    // strongly consistent read of up to 4 KB is one unit; moto counts the
    // profile's consistent `Query` as half of one).
    assert!(spent.read_units >= 1.5, "{spent:?}");
    assert_eq!(spent.write_units, 0.0);
}

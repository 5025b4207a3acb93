//! Conversations and activity: `POST /users/{id}/conversations`, `lastSeen`,
//! and paging by `lastSeen` while activity is being recorded.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Value, json};
use users_api_tests::{Client, NewUser, TestApi, assert_error, error_fields, ids_of};

#[tokio::test]
async fn recording_a_conversation_moves_count_last_seen_and_session_attributes() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = acme.create_user(NewUser::new("u").with("a", "1")).await;
    let before = acme.get(&format!("/users/{user}")).await.body;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let uri = format!("/users/{user}/conversations");
    let first = acme.post(&uri, json!({"firstMessage": "hello", "sessionAttributes": {"group-selected": "14", "step": "1"}})).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let first_id = first.body["id"].as_str().unwrap().to_owned();
    assert_eq!(first_id.len(), 24);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = acme
        .post(
            &uri,
            json!({"firstMessage": null, "sessionAttributes": {"step": null}}),
        )
        .await;
    let second_id = second.body["id"].as_str().unwrap().to_owned();

    let details = acme.get(&format!("/users/{user}")).await.body;
    let conversations = details["conversations"].as_array().unwrap();
    assert_eq!(conversations.len(), 2);
    assert_eq!(conversations[0]["id"], second_id, "newest first");
    assert_eq!(conversations[1]["id"], first_id);
    assert_eq!(conversations[1]["firstMessage"], "hello");
    assert_eq!(conversations[0]["firstMessage"], Value::Null);
    assert_eq!(conversations[0]["date"], conversations[0]["createdAt"]);
    assert_eq!(
        details["sessionAttributes"],
        json!({"group-selected": "14"})
    );
    assert!(details["lastSeen"].as_str().unwrap() > before["lastSeen"].as_str().unwrap());
    assert_eq!(details["lastSeen"], conversations[0]["date"]);
    assert_eq!(details["createdAt"], before["createdAt"]);
    let list = acme.get("/users").await.body;
    assert_eq!(list["data"][0]["conversations"], 2);
    assert_eq!(list["data"][0]["lastSeen"], details["lastSeen"]);
}

#[tokio::test]
async fn conversation_bodies_are_validated_and_users_must_exist() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = acme.create_user(NewUser::new("u").with("a", "1")).await;
    let uri = format!("/users/{user}/conversations");
    for (body, field) in [
        (json!({"firstMessage": 3}), "firstMessage"),
        (
            json!({"sessionAttributes": {"bad key": "x"}}),
            "sessionAttributes.bad key",
        ),
        (
            json!({"sessionAttributes": {"k": 1}}),
            "sessionAttributes.k",
        ),
        (json!({"other": 1}), "other"),
    ] {
        let answer = acme.post(&uri, body).await;
        assert_error(&answer, 400);
        assert_eq!(error_fields(&answer), [field]);
    }
    assert_eq!(
        acme.get(&format!("/users/{user}")).await.body["conversations"],
        json!([])
    );
    assert_error(
        &acme
            .post("/users/5c486eeebda7873576a379e4/conversations", json!({}))
            .await,
        404,
    );
    let other = api.client("other").await;
    assert_error(&other.post(&uri, json!({})).await, 404);
}

#[tokio::test]
async fn sorting_by_last_seen_follows_activity() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = acme.create_users_in_turn(3).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    acme.post(&format!("/users/{}/conversations", ids[0]), json!({}))
        .await;
    let by_seen = acme.get("/users?sort.field=lastSeen").await.body;
    assert_eq!(
        ids_of(&by_seen),
        [ids[0].clone(), ids[2].clone(), ids[1].clone()]
    );
    let by_created = acme.get("/users").await.body;
    assert_eq!(
        ids_of(&by_created),
        [ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    let active = acme
        .get("/users?filters[0][field]=conversations&filters[0][operator]=gte&filters[0][value]=1")
        .await
        .body;
    assert_eq!(ids_of(&active), [ids[0].clone()]);
}

/// Pages through a lastSeen listing with `limit`, recording activity on
/// `movers` after the first page, and returns every id seen.
async fn page_while_active(client: &Client, order: &str, movers: &[String]) -> Vec<String> {
    let mut seen = Vec::new();
    let mut uri = format!("/users?sort.field=lastSeen&sort.order={order}&limit=5");
    for page in 0..100 {
        let answer = client.get(&uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        seen.extend(ids_of(&answer.body));
        if page == 0 {
            for mover in movers {
                let recorded = client
                    .post(&format!("/users/{mover}/conversations"), json!({}))
                    .await;
                assert_eq!(recorded.status, StatusCode::OK);
            }
        }
        match answer.body["next"].as_str() {
            Some(next) => {
                uri = format!("/users?sort.field=lastSeen&sort.order={order}&limit=5&after={next}")
            }
            None => return seen,
        }
    }
    panic!("paging did not end")
}

#[tokio::test]
async fn paging_by_last_seen_never_repeats_or_skips_while_activity_is_recorded() {
    for order in ["desc", "asc"] {
        let api = TestApi::new().await;
        let acme = api.client("acme").await;
        let ids = acme.create_users_in_turn(17).await;
        // Movers: some already shown on the first page, some not yet, one twice.
        let first_page: Vec<String> = ids_of(
            &acme
                .get(&format!(
                    "/users?sort.field=lastSeen&sort.order={order}&limit=5"
                ))
                .await
                .body,
        );
        let unseen: Vec<String> = ids
            .iter()
            .filter(|id| !first_page.contains(id))
            .cloned()
            .collect();
        let movers = vec![
            first_page[1].clone(),
            unseen[0].clone(),
            unseen[7].clone(),
            unseen[7].clone(),
            first_page[4].clone(),
        ];
        let seen = page_while_active(&acme, order, &movers).await;
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{order}: a user was repeated");
        assert_eq!(unique.len(), ids.len(), "{order}: a user was skipped");
        // Users created after paging began are not part of the snapshot.
        let page = acme
            .get(&format!(
                "/users?sort.field=lastSeen&sort.order={order}&limit=5"
            ))
            .await
            .body;
        let next = page["next"].as_str().unwrap().to_owned();
        let latecomer = acme.create_user(NewUser::new("late").with("a", "1")).await;
        acme.post(&format!("/users/{}/conversations", ids[3]), json!({}))
            .await;
        let rest = acme
            .get(&format!(
                "/users?sort.field=lastSeen&sort.order={order}&limit=40&after={next}"
            ))
            .await
            .body;
        assert!(!ids_of(&rest).contains(&latecomer), "{order}");
        assert_eq!(
            ids_of(&page).len() + ids_of(&rest).len(),
            ids.len(),
            "{order}"
        );
    }
}

#[tokio::test]
async fn a_last_seen_cursor_is_not_a_created_at_cursor() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    acme.create_users_in_turn(3).await;
    let page = acme.get("/users?sort.field=lastSeen&limit=1").await.body;
    let cursor = page["next"].as_str().unwrap();
    let answer = acme.get(&format!("/users?after={cursor}")).await;
    assert_error(&answer, 400);
    assert_eq!(error_fields(&answer), ["after"]);
    let other = api.client("other").await;
    assert_error(
        &other
            .get(&format!("/users?sort.field=lastSeen&after={cursor}"))
            .await,
        400,
    );
}

#[tokio::test]
async fn activity_while_the_first_page_is_read_neither_repeats_nor_skips_anyone() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    // GIVEN 1,500 users of which every 30th is picked: a filtered first page
    // reads hundreds of users to fill itself
    let seeds = (0..1500)
        .map(|i| NewUser::new(format!("u{i}")).with("pick", if i % 30 == 0 { "yes" } else { "no" }))
        .collect();
    let ids = acme.seed_users(seeds).await;
    let picked: Vec<String> = ids.iter().step_by(30).cloned().collect();
    let done = AtomicBool::new(false);
    let filter = "filters[0][field]=pick&filters[0][operator]=eq&filters[0][value]=yes";
    // WHEN activity is recorded on picked users all the while, from before
    // the first page is read until the last one is
    let paging = async {
        let mut seen = Vec::new();
        let mut uri = format!("/users?sort.field=lastSeen&sort.order=desc&limit=10&{filter}");
        for _ in 0..200 {
            let answer = acme.get(&uri).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            seen.extend(ids_of(&answer.body));
            match answer.body["next"].as_str() {
                Some(next) => {
                    uri = format!(
                        "/users?sort.field=lastSeen&sort.order=desc&limit=10&{filter}&after={next}"
                    )
                }
                None => break,
            }
        }
        done.store(true, Ordering::Relaxed);
        seen
    };
    let activity = async {
        let mut moved = 0;
        while !done.load(Ordering::Relaxed) {
            let mover = &picked[(moved * 7) % picked.len()];
            let recorded = acme
                .post(&format!("/users/{mover}/conversations"), json!({}))
                .await;
            assert_eq!(recorded.status, StatusCode::OK, "{}", recorded.text);
            moved += 1;
            tokio::task::yield_now().await;
        }
        moved
    };
    let (seen, moved) = tokio::join!(paging, activity);
    // THEN every picked user is listed exactly once
    assert!(moved > 0);
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a user was repeated ({moved} moves)"
    );
    let expected: BTreeSet<&String> = picked.iter().collect();
    assert_eq!(unique, expected, "a user was skipped ({moved} moves)");
}

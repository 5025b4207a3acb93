//! Segments: the `/segments` resource and `/users/{id}/segments`.

use std::collections::BTreeSet;
use std::sync::Arc;

use http::StatusCode;
use serde_json::{Value, json};
use users_api_tests::{
    SeedUser, TestApi, assert_error, error_fields, ids_of, seed_users, segment_counts,
};

async fn user_segments(api: &TestApi, token: &str, user: &str) -> BTreeSet<String> {
    let details = api.get(&format!("/users/{user}"), token).await;
    assert_eq!(details.status, StatusCode::OK, "{}", details.text);
    details.body["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

fn new_user(user_id: &str) -> Value {
    json!({"userId": user_id, "attributes": {"default_name": user_id}})
}

#[tokio::test]
async fn segments_are_created_listed_oldest_first_renamed_and_deleted() {
    let api = TestApi::new().await;
    let token = api.token("acme").await;
    let leads = api.create_segment(&token, "Leads").await;
    let vip = api.create_segment(&token, "VIP").await;
    let list = api.get("/segments", &token).await.body;
    assert_eq!(list[0]["id"], leads);
    assert_eq!(list[0]["name"], "Leads");
    assert_eq!(list[0]["users"], 0);
    assert!(list[0]["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(list[1]["id"], vip);
    let answer = api
        .put(&format!("/segments/{vip}"), &token, json!({"name": "Gold"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["id"], vip);
    assert_eq!(
        segment_counts(&api, &token).await,
        [("Leads".to_owned(), 0), ("Gold".to_owned(), 0)]
    );
    // The old name is free again; the new one is taken.
    api.create_segment(&token, "VIP").await;
    assert_error(
        &api.post("/segments", &token, json!({"name": "Gold"})).await,
        409,
    );
    let answer = api.delete(&format!("/segments/{leads}"), &token).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["id"], leads);
    assert_error(
        &api.delete(&format!("/segments/{leads}"), &token).await,
        404,
    );
    assert_error(
        &api.put(&format!("/segments/{leads}"), &token, json!({"name": "x"}))
            .await,
        404,
    );
    assert_eq!(
        api.get("/segments", &token)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn segment_names_are_unique_per_account_and_validated() {
    let api = TestApi::new().await;
    let alice = api.token("alice").await;
    let bob = api.token("bob").await;
    let first = api.create_segment(&alice, "Leads").await;
    let answer = api
        .post("/segments", &alice, json!({"name": "Leads"}))
        .await;
    assert_error(&answer, 409);
    assert_eq!(answer.body["id"], first);
    api.create_segment(&bob, "Leads").await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "n".repeat(257)}), "name"),
        (json!({"name": 3}), "name"),
        (json!({"name": "a", "x": 1}), "x"),
    ] {
        let answer = api.post("/segments", &alice, body).await;
        assert_error(&answer, 400);
        assert_eq!(error_fields(&answer), [field]);
    }
    let other = api.create_segment(&alice, "Other").await;
    assert_error(
        &api.put(
            &format!("/segments/{other}"),
            &alice,
            json!({"name": "Leads"}),
        )
        .await,
        409,
    );
    assert_eq!(
        api.get("/segments", &alice)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Bob sees only his own segment and cannot touch Alice's.
    assert_eq!(
        api.get("/segments", &bob)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_error(
        &api.put(&format!("/segments/{first}"), &bob, json!({"name": "Mine"}))
            .await,
        404,
    );
    assert_error(&api.delete(&format!("/segments/{first}"), &bob).await, 404);
}

#[tokio::test]
async fn add_replace_and_remove_keep_counts_exact() {
    let api = TestApi::new().await;
    let token = api.token("acme").await;
    let a = api.create_segment(&token, "A").await;
    let b = api.create_segment(&token, "B").await;
    let c = api.create_segment(&token, "C").await;
    let user = api.create_user(&token, new_user("u1")).await;
    let uri = format!("/users/{user}/segments");

    let answer = api.post(&uri, &token, json!([a, b])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["id"], user);
    // Adding again is fine and counts nothing twice.
    api.post(&uri, &token, json!([a])).await;
    assert_eq!(
        user_segments(&api, &token, &user).await,
        BTreeSet::from([a.clone(), b.clone()])
    );
    assert_eq!(
        segment_counts(&api, &token).await,
        [("A".into(), 1), ("B".into(), 1), ("C".into(), 0)]
    );

    api.put(&uri, &token, json!([b, c])).await;
    assert_eq!(
        user_segments(&api, &token, &user).await,
        BTreeSet::from([b.clone(), c.clone()])
    );
    assert_eq!(
        segment_counts(&api, &token).await,
        [("A".into(), 0), ("B".into(), 1), ("C".into(), 1)]
    );

    // Removing an absent id is fine.
    api.call(
        http::Method::DELETE,
        &uri,
        Some(&token),
        Some(json!([c, a])),
    )
    .await;
    assert_eq!(
        user_segments(&api, &token, &user).await,
        BTreeSet::from([b.clone()])
    );
    assert_eq!(
        segment_counts(&api, &token).await,
        [("A".into(), 0), ("B".into(), 1), ("C".into(), 0)]
    );

    // PUT [] clears.
    assert_eq!(
        api.put(&uri, &token, json!([])).await.status,
        StatusCode::OK
    );
    assert!(user_segments(&api, &token, &user).await.is_empty());
    assert_eq!(
        segment_counts(&api, &token).await,
        [("A".into(), 0), ("B".into(), 0), ("C".into(), 0)]
    );
    let details = api.get(&format!("/users/{user}"), &token).await.body;
    assert_eq!(details["segments"], json!([]));
}

#[tokio::test]
async fn details_name_the_segments() {
    let api = TestApi::new().await;
    let token = api.token("acme").await;
    let leads = api.create_segment(&token, "Leads").await;
    let user = api
        .create_user(
            &token,
            json!({"userId": "u", "attributes": {"a": "1"}, "segments": leads}),
        )
        .await;
    let details = api.get(&format!("/users/{user}"), &token).await.body;
    assert_eq!(details["segments"], json!([{"id": leads, "name": "Leads"}]));
    assert_eq!(segment_counts(&api, &token).await, [("Leads".into(), 1)]);
}

#[tokio::test]
async fn unknown_segment_ids_are_400_naming_them_and_change_nothing() {
    let api = TestApi::new().await;
    let alice = api.token("alice").await;
    let bob = api.token("bob").await;
    let mine = api.create_segment(&alice, "Mine").await;
    let bobs = api.create_segment(&bob, "Bob's").await;
    let user = api.create_user(&alice, new_user("u")).await;
    let uri = format!("/users/{user}/segments");
    api.post(&uri, &alice, json!([mine])).await;
    let missing = "5c486eeebda7873576a379e4";
    for method in [http::Method::POST, http::Method::PUT, http::Method::DELETE] {
        for body in [json!([mine, missing]), json!([bobs])] {
            let answer = api
                .call(method.clone(), &uri, Some(&alice), Some(body.clone()))
                .await;
            assert_error(&answer, 400);
            let unknown = if body.to_string().contains(missing) {
                missing
            } else {
                bobs.as_str()
            };
            assert!(answer.text.contains(unknown), "{method} {}", answer.text);
            assert!(
                !answer.text.contains(&format!("ids: {mine}")),
                "{}",
                answer.text
            );
        }
    }
    assert_eq!(
        user_segments(&api, &alice, &user).await,
        BTreeSet::from([mine.clone()])
    );
    assert_eq!(segment_counts(&api, &alice).await, [("Mine".into(), 1)]);
    assert_eq!(segment_counts(&api, &bob).await, [("Bob's".into(), 0)]);
    // Bad bodies.
    for body in [
        json!([]),
        json!("x"),
        json!(["nope"]),
        json!({"ids": [mine]}),
    ] {
        assert_error(&api.post(&uri, &alice, body).await, 400);
    }
    let answer = api.post(&uri, &alice, json!([mine, "nope"])).await;
    assert_eq!(error_fields(&answer), ["1"]);
    // Another account's user is 404.
    assert_error(&api.post(&uri, &bob, json!([bobs])).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_adds_on_one_user_all_land() {
    let api = Arc::new(TestApi::new().await);
    let token = api.token("acme").await;
    let user = api.create_user(&token, new_user("busy")).await;
    let mut segments = Vec::new();
    for i in 0..10 {
        segments.push(api.create_segment(&token, &format!("S{i}")).await);
    }
    let tasks: Vec<_> = segments
        .iter()
        .cloned()
        .map(|segment| {
            let api = api.clone();
            let token = token.clone();
            let uri = format!("/users/{user}/segments");
            tokio::spawn(async move { api.post(&uri, &token, json!([segment])).await })
        })
        .collect();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    assert_eq!(
        user_segments(&api, &token, &user).await,
        segments.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert!(
        segment_counts(&api, &token)
            .await
            .iter()
            .all(|(_, count)| *count == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_and_removes_lose_nothing() {
    let api = Arc::new(TestApi::new().await);
    let token = api.token("acme").await;
    let user = api.create_user(&token, new_user("busy")).await;
    let mut segments = Vec::new();
    for i in 0..8 {
        segments.push(api.create_segment(&token, &format!("S{i}")).await);
    }
    api.post(
        &format!("/users/{user}/segments"),
        &token,
        json!(segments[..4]),
    )
    .await;
    // Remove the first four while adding the last four, all at once.
    let tasks: Vec<_> = segments
        .iter()
        .enumerate()
        .map(|(i, segment)| {
            let api = api.clone();
            let token = token.clone();
            let uri = format!("/users/{user}/segments");
            let method = if i < 4 {
                http::Method::DELETE
            } else {
                http::Method::POST
            };
            let body = json!([segment]);
            tokio::spawn(async move { api.call(method, &uri, Some(&token), Some(body)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(
        user_segments(&api, &token, &user).await,
        segments[4..].iter().cloned().collect::<BTreeSet<_>>()
    );
    let counts = segment_counts(&api, &token).await;
    assert_eq!(
        counts.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
        [0, 0, 0, 0, 1, 1, 1, 1]
    );
}

#[tokio::test]
async fn deleting_a_segment_takes_it_out_of_every_member() {
    let api = TestApi::new().await;
    let token = api.token("acme").await;
    let doomed = api.create_segment(&token, "Doomed").await;
    let kept = api.create_segment(&token, "Kept").await;
    let mut members = Vec::new();
    for i in 0..5 {
        let user = api.create_user(&token, json!({"userId": format!("m{i}"), "attributes": {"a": "1"}, "segments": [doomed, kept]})).await;
        members.push(user);
    }
    assert_eq!(
        api.delete(&format!("/segments/{doomed}"), &token)
            .await
            .status,
        StatusCode::OK
    );
    for user in &members {
        assert_eq!(
            user_segments(&api, &token, user).await,
            BTreeSet::from([kept.clone()])
        );
    }
    assert_eq!(segment_counts(&api, &token).await, [("Kept".into(), 5)]);
    let filter = format!(
        "/users?filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={doomed}"
    );
    assert_eq!(api.get(&filter, &token).await.body["count"], 0);
    // The name is free again.
    api.create_segment(&token, "Doomed").await;
}

#[tokio::test]
async fn deleting_a_user_gives_back_its_memberships() {
    let api = TestApi::new().await;
    let token = api.token("acme").await;
    let segment = api.create_segment(&token, "S").await;
    let user = api
        .create_user(
            &token,
            json!({"userId": "u", "attributes": {"a": "1"}, "segments": [segment]}),
        )
        .await;
    api.create_user(
        &token,
        json!({"userId": "v", "attributes": {"a": "1"}, "segments": [segment]}),
    )
    .await;
    assert_eq!(segment_counts(&api, &token).await, [("S".into(), 2)]);
    api.delete(&format!("/users/{user}"), &token).await;
    assert_eq!(segment_counts(&api, &token).await, [("S".into(), 1)]);
    let filter = format!(
        "/users?filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={segment}"
    );
    assert_eq!(api.get(&filter, &token).await.body["count"], 1);
}

#[tokio::test]
async fn the_segment_filter_reads_the_members_index_not_the_account() {
    let api = TestApi::new().await;
    let token = api.token("acme").await;
    let segment = api.create_segment(&token, "Ten").await;
    let segment_id: shared::model::ObjectId = segment.parse().unwrap();
    let users = (0..2_000)
        .map(|n| users_api_tests::SeedUser {
            user_id: format!("u{n}"),
            attributes: [("a".to_owned(), "1".to_owned())].into(),
            segments: if n % 200 == 7 {
                vec![segment_id]
            } else {
                vec![]
            },
        })
        .collect();
    let ids = users_api_tests::seed_users(&api.store, "acme", users).await;
    let members: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 200 == 7)
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(members.len(), 10);
    let before = api.store.items_read();
    let answer = api
        .get(&format!("/users?sort.order=asc&filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={segment}"), &token)
        .await;
    let read = api.store.items_read() - before;
    assert_eq!(answer.body["count"], 10, "{}", answer.text);
    let ids: Vec<String> = answer.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, members);
    assert!(
        read <= 30,
        "a 10-member segment in a 2,000-user account read {read} items"
    );
    // ne / exists / notExists are answered by the walk and agree.
    let not_member = api
        .get(&format!("/users?limit=40&filters[0][field]=segments&filters[0][operator]=ne&filters[0][value]={segment}"), &token)
        .await;
    assert!(
        not_member.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| !members.contains(&u["id"].as_str().unwrap().to_owned()))
    );
    // A walk over 2,000 users spends its read budget: follow `next` to the end.
    let mut in_any = Vec::new();
    let mut uri =
        "/users?limit=40&sort.order=asc&filters[0][field]=segments&filters[0][operator]=exists"
            .to_owned();
    loop {
        let page = api.get(&uri, &token).await.body;
        in_any.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => {
                uri = format!(
                    "/users?limit=40&sort.order=asc&filters[0][field]=segments&filters[0][operator]=exists&after={next}"
                )
            }
            None => break,
        }
    }
    assert_eq!(in_any, members);
}

#[tokio::test]
async fn a_delete_racing_a_rename_never_answers_404_and_leaves_no_name_taken() {
    let api = TestApi::new().await;
    let token = api.token("acme").await;
    for round in 0..5 {
        let old = format!("Old {round}");
        let new = format!("New {round}");
        let segment = api.create_segment(&token, &old).await;
        // WHEN a rename and a delete of the segment race
        let uri = format!("/segments/{segment}");
        let (renamed, deleted) = tokio::join!(
            api.put(&uri, &token, json!({ "name": new })),
            api.delete(&uri, &token),
        );
        // THEN the delete, which found the segment, never answers 404
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
        assert!(
            renamed.status == StatusCode::OK || renamed.status == StatusCode::NOT_FOUND,
            "{}",
            renamed.text
        );
        // AND neither name stays taken by the deleted segment
        api.create_segment(&token, &old).await;
        api.create_segment(&token, &new).await;
    }
}

#[tokio::test]
async fn adding_a_segment_reads_the_segment_and_the_profile_then_writes_once() {
    // GIVEN a user and a segment
    let api = TestApi::new().await;
    let token = api.token("acme").await;
    let user = api
        .create_user(
            &token,
            json!({"userId": "u-1", "attributes": {"plan": "pro"}}),
        )
        .await;
    let segment = api.create_segment(&token, "vip").await;
    // WHEN the user is added to it
    let before = api.store.meter();
    let answer = api
        .post(&format!("/users/{user}/segments"), &token, json!([segment]))
        .await;
    let spent = api.store.meter() - before;
    // THEN: the token, the segment, the profile, one transaction; no second
    // pass once the transaction has done everything.
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(spent.requests, 4, "{spent:?}");
    assert_eq!(
        segment_counts(&api, &token).await,
        vec![("vip".to_owned(), 1)]
    );
}

#[tokio::test]
async fn a_large_segment_is_paged_by_its_members_not_by_the_account() {
    // GIVEN a segment with more members than one request may read
    let api = TestApi::new().await;
    let token = api.token("acme").await;
    let segment = api.create_segment(&token, "big").await;
    let members = shared::store::READ_BUDGET + 100;
    let users = (0..2 * members)
        .map(|i| SeedUser {
            user_id: format!("user-{i:05}"),
            segments: if i % 2 == 0 {
                vec![segment.parse().unwrap()]
            } else {
                vec![]
            },
            ..SeedUser::default()
        })
        .collect();
    let ids = seed_users(&api.store, "acme", users).await;
    // WHEN the first page of its members is listed
    let before = api.store.items_read();
    let page = api
        .get(
            &format!("/users?limit=20&filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={segment}"),
            &token,
        )
        .await;
    let read = api.store.items_read() - before;
    // THEN it holds the 20 newest members, and what was read is 21 members
    // (one tells that more follow), their profiles, the segment and the
    // token: not the 1,100 members, nor the account's other users.
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let newest: Vec<String> = ids.iter().step_by(2).rev().take(20).cloned().collect();
    assert_eq!(ids_of(&page.body), newest);
    assert!(read <= 44, "read {read} items for a page of 20");
}

//! Segments: the `/segments` resource and `/users/{id}/segments`.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::json;
use users_api_tests::{Client, NewUser, TestApi, assert_error, error_fields, ids_of};

async fn user_segments(client: &Client, user: &str) -> BTreeSet<String> {
    let details = client.get(&format!("/users/{user}")).await;
    assert_eq!(details.status, StatusCode::OK, "{}", details.text);
    details.body["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

fn new_user(user_id: &str) -> NewUser {
    NewUser::new(user_id).with("default_name", user_id)
}

#[tokio::test]
async fn segments_are_created_listed_oldest_first_renamed_and_deleted() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let leads = acme.create_segment("Leads").await;
    let vip = acme.create_segment("VIP").await;
    let list = acme.get("/segments").await.body;
    assert_eq!(list[0]["id"], leads);
    assert_eq!(list[0]["name"], "Leads");
    assert_eq!(list[0]["users"], 0);
    assert!(list[0]["createdAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(list[1]["id"], vip);
    let answer = acme
        .put(&format!("/segments/{vip}"), json!({"name": "Gold"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["id"], vip);
    assert_eq!(
        acme.segment_counts().await,
        [("Leads".to_owned(), 0), ("Gold".to_owned(), 0)]
    );
    // The old name is free again; the new one is taken.
    acme.create_segment("VIP").await;
    assert_error(&acme.post("/segments", json!({"name": "Gold"})).await, 409);
    let answer = acme.delete(&format!("/segments/{leads}")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["id"], leads);
    assert_error(&acme.delete(&format!("/segments/{leads}")).await, 404);
    assert_error(
        &acme
            .put(&format!("/segments/{leads}"), json!({"name": "x"}))
            .await,
        404,
    );
    assert_eq!(
        acme.get("/segments").await.body.as_array().unwrap().len(),
        2
    );
}

#[tokio::test]
async fn segment_names_are_unique_per_account_and_validated() {
    let api = TestApi::new().await;
    let alice = api.client("alice").await;
    let bob = api.client("bob").await;
    let first = alice.create_segment("Leads").await;
    let answer = alice.post("/segments", json!({"name": "Leads"})).await;
    assert_error(&answer, 409);
    assert_eq!(answer.body["id"], first);
    bob.create_segment("Leads").await;
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "n".repeat(257)}), "name"),
        (json!({"name": 3}), "name"),
        (json!({"name": "a", "x": 1}), "x"),
    ] {
        let answer = alice.post("/segments", body).await;
        assert_error(&answer, 400);
        assert_eq!(error_fields(&answer), [field]);
    }
    let other = alice.create_segment("Other").await;
    assert_error(
        &alice
            .put(&format!("/segments/{other}"), json!({"name": "Leads"}))
            .await,
        409,
    );
    assert_eq!(
        alice.get("/segments").await.body.as_array().unwrap().len(),
        2
    );
    // Bob sees only his own segment and cannot touch Alice's.
    assert_eq!(bob.get("/segments").await.body.as_array().unwrap().len(), 1);
    assert_error(
        &bob.put(&format!("/segments/{first}"), json!({"name": "Mine"}))
            .await,
        404,
    );
    assert_error(&bob.delete(&format!("/segments/{first}")).await, 404);
}

#[tokio::test]
async fn add_replace_and_remove_keep_counts_exact() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let a = acme.create_segment("A").await;
    let b = acme.create_segment("B").await;
    let c = acme.create_segment("C").await;
    let user = acme.create_user(new_user("u1")).await;
    let uri = format!("/users/{user}/segments");

    let answer = acme.post(&uri, json!([a, b])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["id"], user);
    // Adding again is fine and counts nothing twice.
    acme.post(&uri, json!([a])).await;
    assert_eq!(
        user_segments(&acme, &user).await,
        BTreeSet::from([a.clone(), b.clone()])
    );
    assert_eq!(
        acme.segment_counts().await,
        [("A".into(), 1), ("B".into(), 1), ("C".into(), 0)]
    );

    acme.put(&uri, json!([b, c])).await;
    assert_eq!(
        user_segments(&acme, &user).await,
        BTreeSet::from([b.clone(), c.clone()])
    );
    assert_eq!(
        acme.segment_counts().await,
        [("A".into(), 0), ("B".into(), 1), ("C".into(), 1)]
    );

    // Removing an absent id is fine.
    acme.call(http::Method::DELETE, &uri, Some(json!([c, a])))
        .await;
    assert_eq!(
        user_segments(&acme, &user).await,
        BTreeSet::from([b.clone()])
    );
    assert_eq!(
        acme.segment_counts().await,
        [("A".into(), 0), ("B".into(), 1), ("C".into(), 0)]
    );

    // PUT [] clears.
    assert_eq!(acme.put(&uri, json!([])).await.status, StatusCode::OK);
    assert!(user_segments(&acme, &user).await.is_empty());
    assert_eq!(
        acme.segment_counts().await,
        [("A".into(), 0), ("B".into(), 0), ("C".into(), 0)]
    );
    let details = acme.get(&format!("/users/{user}")).await.body;
    assert_eq!(details["segments"], json!([]));
}

#[tokio::test]
async fn details_name_the_segments() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let leads = acme.create_segment("Leads").await;
    // `segments` may be one id rather than an array.
    let created = acme
        .post(
            "/users",
            json!({"userId": "u", "attributes": {"a": "1"}, "segments": leads}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let user = created.body[0]["id"].as_str().unwrap();
    let details = acme.get(&format!("/users/{user}")).await.body;
    assert_eq!(details["segments"], json!([{"id": leads, "name": "Leads"}]));
    assert_eq!(acme.segment_counts().await, [("Leads".into(), 1)]);
}

#[tokio::test]
async fn unknown_segment_ids_are_400_naming_them_and_change_nothing() {
    let api = TestApi::new().await;
    let alice = api.client("alice").await;
    let bob = api.client("bob").await;
    let mine = alice.create_segment("Mine").await;
    let bobs = bob.create_segment("Bob's").await;
    let user = alice.create_user(new_user("u")).await;
    let uri = format!("/users/{user}/segments");
    alice.post(&uri, json!([mine])).await;
    let missing = "5c486eeebda7873576a379e4";
    for method in [http::Method::POST, http::Method::PUT, http::Method::DELETE] {
        for body in [json!([mine, missing]), json!([bobs])] {
            let answer = alice.call(method.clone(), &uri, Some(body.clone())).await;
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
        user_segments(&alice, &user).await,
        BTreeSet::from([mine.clone()])
    );
    assert_eq!(alice.segment_counts().await, [("Mine".into(), 1)]);
    assert_eq!(bob.segment_counts().await, [("Bob's".into(), 0)]);
    // Bad bodies.
    for body in [
        json!([]),
        json!("x"),
        json!(["nope"]),
        json!({"ids": [mine]}),
    ] {
        assert_error(&alice.post(&uri, body).await, 400);
    }
    let answer = alice.post(&uri, json!([mine, "nope"])).await;
    assert_eq!(error_fields(&answer), ["1"]);
    // Another account's user is 404.
    assert_error(&bob.post(&uri, json!([bobs])).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_adds_on_one_user_all_land() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = acme.create_user(new_user("busy")).await;
    let mut segments = Vec::new();
    for i in 0..10 {
        segments.push(acme.create_segment(&format!("S{i}")).await);
    }
    let tasks: Vec<_> = segments
        .iter()
        .cloned()
        .map(|segment| {
            let acme = acme.clone();
            let uri = format!("/users/{user}/segments");
            tokio::spawn(async move { acme.post(&uri, json!([segment])).await })
        })
        .collect();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    assert_eq!(
        user_segments(&acme, &user).await,
        segments.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert!(
        acme.segment_counts()
            .await
            .iter()
            .all(|(_, count)| *count == 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_and_removes_lose_nothing() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = acme.create_user(new_user("busy")).await;
    let mut segments = Vec::new();
    for i in 0..8 {
        segments.push(acme.create_segment(&format!("S{i}")).await);
    }
    acme.post(&format!("/users/{user}/segments"), json!(segments[..4]))
        .await;
    // Remove the first four while adding the last four, all at once.
    let tasks: Vec<_> = segments
        .iter()
        .enumerate()
        .map(|(i, segment)| {
            let acme = acme.clone();
            let uri = format!("/users/{user}/segments");
            let method = if i < 4 {
                http::Method::DELETE
            } else {
                http::Method::POST
            };
            let body = json!([segment]);
            tokio::spawn(async move { acme.call(method, &uri, Some(body)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().status, StatusCode::OK);
    }
    assert_eq!(
        user_segments(&acme, &user).await,
        segments[4..].iter().cloned().collect::<BTreeSet<_>>()
    );
    let counts = acme.segment_counts().await;
    assert_eq!(
        counts.iter().map(|(_, c)| *c).collect::<Vec<_>>(),
        [0, 0, 0, 0, 1, 1, 1, 1]
    );
}

#[tokio::test]
async fn deleting_a_segment_takes_it_out_of_every_member() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let doomed = acme.create_segment("Doomed").await;
    let kept = acme.create_segment("Kept").await;
    let mut members = Vec::new();
    for i in 0..5 {
        let user = acme
            .create_user(
                NewUser::new(format!("m{i}"))
                    .with("a", "1")
                    .in_segment(&doomed)
                    .in_segment(&kept),
            )
            .await;
        members.push(user);
    }
    assert_eq!(
        acme.delete(&format!("/segments/{doomed}")).await.status,
        StatusCode::OK
    );
    for user in &members {
        assert_eq!(
            user_segments(&acme, user).await,
            BTreeSet::from([kept.clone()])
        );
    }
    assert_eq!(acme.segment_counts().await, [("Kept".into(), 5)]);
    let filter = format!(
        "/users?filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={doomed}"
    );
    assert_eq!(acme.get(&filter).await.body["count"], 0);
    // The name is free again.
    acme.create_segment("Doomed").await;
}

#[tokio::test]
async fn deleting_a_user_gives_back_its_memberships() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let segment = acme.create_segment("S").await;
    let user = acme
        .create_user(NewUser::new("u").with("a", "1").in_segment(&segment))
        .await;
    acme.create_user(NewUser::new("v").with("a", "1").in_segment(&segment))
        .await;
    assert_eq!(acme.segment_counts().await, [("S".into(), 2)]);
    acme.delete(&format!("/users/{user}")).await;
    assert_eq!(acme.segment_counts().await, [("S".into(), 1)]);
    let filter = format!(
        "/users?filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={segment}"
    );
    assert_eq!(acme.get(&filter).await.body["count"], 1);
}

#[tokio::test]
async fn the_segment_filter_reads_the_members_index_not_the_account() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let segment = acme.create_segment("Ten").await;
    let users = (0..2_000)
        .map(|n| {
            let user = NewUser::new(format!("u{n}")).with("a", "1");
            if n % 200 == 7 {
                user.in_segment(&segment)
            } else {
                user
            }
        })
        .collect();
    let ids = acme.seed_users(users).await;
    let members: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 200 == 7)
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(members.len(), 10);
    let before = api.store.items_read();
    let answer = acme
        .get(&format!("/users?sort.order=asc&filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={segment}"))
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
    let not_member = acme
        .get(&format!("/users?limit=40&filters[0][field]=segments&filters[0][operator]=ne&filters[0][value]={segment}"))
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
        let page = acme.get(&uri).await.body;
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
    let acme = api.client("acme").await;
    for round in 0..5 {
        let old = format!("Old {round}");
        let new = format!("New {round}");
        let segment = acme.create_segment(&old).await;
        // WHEN a rename and a delete of the segment race
        let uri = format!("/segments/{segment}");
        let (renamed, deleted) =
            tokio::join!(acme.put(&uri, json!({ "name": new })), acme.delete(&uri),);
        // THEN the delete, which found the segment, never answers 404
        assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text);
        assert!(
            renamed.status == StatusCode::OK || renamed.status == StatusCode::NOT_FOUND,
            "{}",
            renamed.text
        );
        // AND neither name stays taken by the deleted segment
        acme.create_segment(&old).await;
        acme.create_segment(&new).await;
    }
}

#[tokio::test]
async fn adding_a_segment_reads_the_segment_and_the_profile_then_writes_once() {
    // GIVEN a user and a segment
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = acme
        .create_user(NewUser::new("u-1").with("plan", "pro"))
        .await;
    let segment = acme.create_segment("vip").await;
    // WHEN the user is added to it
    let before = api.store.meter();
    let answer = acme
        .post(&format!("/users/{user}/segments"), json!([segment]))
        .await;
    let spent = api.store.meter() - before;
    // THEN: the acme.token(), the segment, the profile, one transaction; no second
    // pass once the transaction has done everything.
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(spent.requests, 4, "{spent:?}");
    assert_eq!(acme.segment_counts().await, vec![("vip".to_owned(), 1)]);
}

#[tokio::test]
async fn a_large_segment_is_paged_by_its_members_not_by_the_account() {
    // GIVEN a segment with more members than one request may read
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let segment = acme.create_segment("big").await;
    let members = shared::store::READ_BUDGET + 100;
    let users = (0..2 * members)
        .map(|i| {
            let user = NewUser::new(format!("user-{i:05}"));
            if i % 2 == 0 {
                user.in_segment(&segment)
            } else {
                user
            }
        })
        .collect();
    let ids = acme.seed_users(users).await;
    // WHEN the first page of its members is listed
    let before = api.store.items_read();
    let page = acme
        .get(&format!("/users?limit=20&filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={segment}"))
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

//! Erasing a user and deleting a segment always finish: the object is gone
//! at once, and whatever clean-up is left when the request stops (its time,
//! a crash) is finished by repeating the `DELETE` or by the background sweep,
//! after which no item of the table mentions the object. The user's details
//! stay bounded whatever its history. (A real crash, SIGKILL of the local
//! server, is in `functions/local/tests/crash.rs`.)

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use shared::deadline::Deadline;
use shared::store::{CleanupConfig, DETAILS_CONVERSATIONS};
use users_api_tests::{
    Client, ConversationKeys, NewUser, TestApi, assert_error, error_fields, ids_in, ids_of,
    items_mentioning,
};

/// A configuration under which a `DELETE` only hides the object.
fn nothing_inline() -> CleanupConfig {
    CleanupConfig {
        inline: Duration::ZERO,
        ..CleanupConfig::default()
    }
}

/// A configuration under which a `DELETE` has time to finish its clean-up
/// on any engine (the default 2 s leaves the rest to the background on a
/// slow one).
fn all_inline() -> CleanupConfig {
    CleanupConfig {
        inline: Duration::from_secs(120),
        ..CleanupConfig::default()
    }
}

#[tokio::test]
async fn an_erase_left_unfinished_is_finished_by_repeating_the_delete() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let kept = acme.create_segment("Kept").await;
    let also = acme.create_segment("Also").await;
    let user = acme
        .create_user(
            NewUser::new("gone")
                .with("default_email", "gone@x.y")
                .in_segment(&kept)
                .in_segment(&also),
        )
        .await;
    let other = acme
        .create_user(NewUser::new("stays").with("a", "1").in_segment(&kept))
        .await;
    acme.seed_conversations(&user, 300, "hello", ConversationKeys::Current)
        .await;
    for _ in 0..3 {
        acme.record_conversation(&user, "x").await;
    }
    // A lastSeen listing whose cursor rests on the user.
    let page = acme
        .get("/users?sort.field=lastSeen&sort.order=desc&limit=1")
        .await;
    assert_eq!(page.body["data"][0]["id"], user.as_str(), "{}", page.text);
    assert!(page.body["next"].is_string());

    // WHEN the erase stops right after hiding the user (as at a timeout)
    let hiding_only = acme.on(&api.with_cleanup(nothing_inline()));
    let answer = hiding_only.delete(&format!("/users/{user}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // THEN the user is gone for every reader, its userId free, though its
    // items are still there
    assert_error(&acme.get(&format!("/users/{user}")).await, 404);
    assert_eq!(acme.get("/users").await.body["count"], 1);
    assert!(items_mentioning(&api.store, &user).await > 300);
    // AND repeating the DELETE finishes it
    let answer = acme
        .on(&api.with_cleanup(all_inline()))
        .delete(&format!("/users/{user}"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["id"], user.as_str());
    assert_eq!(items_mentioning(&api.store, &user).await, 0);
    assert_eq!(
        acme.segment_counts().await,
        [("Kept".to_owned(), 1), ("Also".to_owned(), 0)]
    );
    assert_error(&acme.delete(&format!("/users/{user}")).await, 404);
    acme.create_user(NewUser::new("gone").with("a", "1")).await;
    assert_eq!(
        acme.get(&format!("/users/{other}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_segment_delete_left_unfinished_hides_the_segment_and_is_finished_by_repeating_it() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let doomed = acme.create_segment("Doomed").await;
    let kept = acme.create_segment("Kept").await;
    let seeds = (0..300)
        .map(|i| {
            NewUser::new(format!("m{i}"))
                .with("a", "1")
                .in_segment(&doomed)
                .in_segment(&kept)
        })
        .collect();
    let members = acme.seed_users(seeds).await;
    assert_eq!(
        acme.segment_counts().await,
        [("Doomed".to_owned(), 300), ("Kept".to_owned(), 300)]
    );

    let hiding_only = acme.on(&api.with_cleanup(nothing_inline()));
    let answer = hiding_only.delete(&format!("/segments/{doomed}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // Meanwhile: no answer shows the deleted segment, its name is free.
    assert_eq!(acme.segment_counts().await, [("Kept".to_owned(), 300)]);
    let details = acme.get(&format!("/users/{}", members[0])).await;
    assert_eq!(
        details.body["segments"],
        json!([{"id": kept, "name": "Kept"}])
    );
    let filter = format!(
        "/users?filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={doomed}"
    );
    assert_eq!(acme.get(&filter).await.body["count"], 0);
    assert!(items_mentioning(&api.store, &doomed).await >= 300);
    // Adding a member to it is refused.
    let add = acme
        .post(&format!("/users/{}/segments", members[1]), json!([doomed]))
        .await;
    assert_error(&add, 400);
    assert_eq!(error_fields(&add), ["segments"]);

    let answer = acme
        .on(&api.with_cleanup(all_inline()))
        .delete(&format!("/segments/{doomed}"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(items_mentioning(&api.store, &doomed).await, 0);
    assert_error(&acme.delete(&format!("/segments/{doomed}")).await, 404);
    assert_eq!(acme.segment_counts().await, [("Kept".to_owned(), 300)]);
    acme.create_segment("Doomed").await;
}

#[tokio::test]
async fn the_sweep_finishes_every_pending_clean_up_without_a_client() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let segment = acme.create_segment("S").await;
    let seeds = (0..120)
        .map(|i| {
            NewUser::new(format!("m{i}"))
                .with("a", "1")
                .in_segment(&segment)
        })
        .collect();
    let members = acme.seed_users(seeds).await;
    acme.seed_conversations(&members[0], 200, "hi", ConversationKeys::Current)
        .await;
    let hiding_only = acme.on(&api.with_cleanup(nothing_inline()));
    for uri in [
        format!("/users/{}", members[0]),
        format!("/segments/{segment}"),
    ] {
        let answer = hiding_only.delete(&uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    // WHEN the background sweeps, with no request at all
    let sweep = api
        .store
        .run_cleanup(Deadline::after(Duration::from_secs(60)))
        .await
        .unwrap();
    // THEN both are finished and nothing of them is left
    assert_eq!((sweep.finished, sweep.pending), (2, 0));
    assert_eq!(items_mentioning(&api.store, &members[0]).await, 0);
    assert_eq!(items_mentioning(&api.store, &segment).await, 0);
    let again = api
        .store
        .run_cleanup(Deadline::after(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!((again.finished, again.pending), (0, 0));
    // The other members are whole.
    let details = acme.get(&format!("/users/{}", members[1])).await;
    assert_eq!(details.status, StatusCode::OK);
    assert_eq!(details.body["segments"], json!([]));
}

#[tokio::test]
async fn an_erase_stops_before_the_request_deadline_and_the_rest_follows() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = acme.create_user(NewUser::new("busy").with("a", "1")).await;
    acme.seed_conversations(&user, 600, "hi", ConversationKeys::Current)
        .await;
    // GIVEN a slow pace (600 items take 6 s) and a request with 1.5 s left
    let slow = acme.on(&api.with_cleanup(CleanupConfig {
        pace: 100,
        inline: Duration::from_secs(30),
        ..CleanupConfig::default()
    }));
    let mut request = acme
        .request(Method::DELETE, &format!("/users/{user}"))
        .body(axum::body::Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(Deadline::after(Duration::from_millis(1500)));
    let started = std::time::Instant::now();
    // WHEN the user is erased
    let answer = slow.send(request).await;
    // THEN the answer comes before the deadline, the user is gone, and the
    // rest of its items are left to the background
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_error(&acme.get(&format!("/users/{user}")).await, 404);
    assert!(items_mentioning(&api.store, &user).await > 0);
    let sweep = api
        .store
        .run_cleanup(Deadline::after(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(sweep.finished, 1);
    assert_eq!(items_mentioning(&api.store, &user).await, 0);
}

/// Every conversation id of `user` that paging `limit` at a time yields, in order.
async fn paged_conversations(client: &Client, user: &str, limit: usize) -> Vec<String> {
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let uri = match &after {
            Some(after) => format!("/users/{user}/conversations?limit={limit}&after={after}"),
            None => format!("/users/{user}/conversations?limit={limit}"),
        };
        let page = client.get(&uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let data = ids_of(&page.body);
        assert_eq!(page.body["count"], data.len());
        assert!(data.len() <= limit);
        paged.extend(data);
        match page.body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return paged,
        }
    }
}

#[tokio::test]
async fn details_of_a_user_are_one_request_and_conversations_of_the_keys_before_are_merged_in() {
    use shared::model::{AccountId, ObjectId};
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let account = AccountId::parse("acme").unwrap();
    let user = acme.create_user(NewUser::new("u").with("a", "1")).await;
    let plain = acme.create_user(NewUser::new("p").with("a", "1")).await;
    // GIVEN conversations keyed as before (`C#…`)
    let mut older = acme
        .seed_conversations(&user, 30, "before", ConversationKeys::Legacy)
        .await;
    // AND conversations recorded now, also for a user with no others
    let mut ids = Vec::new();
    for _ in 0..25 {
        ids.push(acme.record_conversation(&user, "now").await);
        acme.record_conversation(&plain, "now").await;
    }
    ids.reverse();
    // AND newer ones keyed as before, as a function of the version before
    // writes them while a deployment rolls out
    let mut during = acme
        .seed_conversations(&user, 7, "during", ConversationKeys::Legacy)
        .await;
    older.reverse();
    during.reverse();
    let mut all = during.clone();
    all.extend(ids.iter().cloned());
    all.extend(older.iter().cloned());

    // WHEN the details of the user with only current conversations are
    // read THEN that is one request
    let plain_id: ObjectId = plain.parse().unwrap();
    let before = api.store.meter();
    let details = api
        .store
        .user_details(&account, plain_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((api.store.meter() - before).requests, 1);
    assert_eq!(details.conversations.len(), DETAILS_CONVERSATIONS);
    assert_eq!(details.conversations_count, 25);
    assert!(details.conversations_next.is_some());
    // AND a page of its conversations is one round trip of two requests
    let before = api.store.meter();
    let page = api
        .store
        .conversations(&account, plain_id, None, 30)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((api.store.meter() - before).requests, 2);
    assert_eq!((page.conversations.len(), page.next), (25, None));

    // WHEN the details of the other are read THEN both kinds are merged, newest first
    let details = acme.get(&format!("/users/{user}")).await;
    assert_eq!(details.status, StatusCode::OK, "{}", details.text);
    let shown = ids_in(&details.body["conversations"]);
    assert_eq!(shown, all[..DETAILS_CONVERSATIONS]);
    assert_eq!(details.body["conversationsCount"], all.len());
    assert_eq!(
        details.body["conversationsNext"],
        all[DETAILS_CONVERSATIONS - 1].as_str()
    );
    // AND paging reaches each conversation once, in order, across both kinds
    for limit in [1, 7, 100] {
        assert_eq!(
            paged_conversations(&acme, &user, limit).await,
            all,
            "limit {limit}"
        );
    }
    // AND `after` may name either kind
    for (after, rest) in [
        (&older[0], &older[1..]),
        (&ids[24], &older[..]),
        (&during[6], &all[7..]),
    ] {
        let page = acme
            .get(&format!(
                "/users/{user}/conversations?limit=100&after={after}"
            ))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(ids_of(&page.body), rest);
    }

    // WHEN the user is erased THEN no item of either kind is left
    let answer = acme
        .on(&api.with_cleanup(all_inline()))
        .delete(&format!("/users/{user}"))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(items_mentioning(&api.store, &user).await, 0);
    assert_error(
        &acme.get(&format!("/users/{user}/conversations")).await,
        404,
    );
}

#[tokio::test]
async fn details_of_a_user_with_2000_conversations_of_4_kb_are_bounded_and_the_rest_is_paged() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = acme
        .create_user(NewUser::new("chatty").with("a", "1"))
        .await;
    let message = "m".repeat(4096);
    let mut ids = acme
        .seed_conversations(&user, 2000, &message, ConversationKeys::Current)
        .await;
    ids.reverse(); // newest first
    let read_before = api.store.items_read();
    // WHEN the details are read
    let details = acme.get(&format!("/users/{user}")).await;
    // THEN they hold the newest conversations and the count, and read little
    assert_eq!(details.status, StatusCode::OK, "{}", details.text);
    assert!(details.text.len() < 200_000, "{} bytes", details.text.len());
    let shown = ids_in(&details.body["conversations"]);
    assert_eq!(shown, ids[..DETAILS_CONVERSATIONS]);
    assert_eq!(details.body["conversationsCount"], 2000);
    assert_eq!(
        details.body["conversationsNext"],
        ids[DETAILS_CONVERSATIONS - 1].as_str()
    );
    assert!(api.store.items_read() - read_before <= 2 * DETAILS_CONVERSATIONS as u64);

    // AND every conversation is reached, once, newest first, by paging
    assert_eq!(paged_conversations(&acme, &user, 100).await, ids);

    // Bad paging is 400; another account's or an unknown user is 404.
    let bad = acme
        .get(&format!(
            "/users/{user}/conversations?after={}",
            shared::model::ObjectId::new()
        ))
        .await;
    assert_error(&bad, 400);
    assert_eq!(error_fields(&bad), ["after"]);
    assert_error(
        &acme
            .get(&format!("/users/{user}/conversations?limit=101"))
            .await,
        400,
    );
    assert_error(
        &acme
            .get(&format!("/users/{user}/conversations?page=2"))
            .await,
        400,
    );
    let bob = api.client("bob").await;
    assert_error(&bob.get(&format!("/users/{user}/conversations")).await, 404);
}

//! A process that dies mid-request: the local server is killed with SIGKILL
//! while a `DELETE` erases a user with thousands of conversations, and again
//! while one deletes a segment with thousands of members. After a restart,
//! the objects are still gone, the repeated `DELETE`s answer `200` and
//! finish the clean-up, and a scan of the whole table finds nothing of
//! either. The table lives on the tests' engine (embedded, moto or DynamoDB
//! Local), which the server process reaches as an external endpoint.

mod support;

use std::time::{Duration, Instant};

use shared::model::AccountId;
use shared::store::keys::{self, Index};
use support::{Server, request, try_request};
use users_api_tests::{
    ConversationKeys, NewUser, TestStore, items_in_partition, items_mentioning, seed_conversations,
    seed_users,
};

const THOUSANDS: usize = 1_500;

/// A server on the tests' table whose `DELETE`s do their whole clean-up in
/// the request, with no background sweep (so what finishes a clean-up here
/// is the request, and only it); `slow` paces it at 300 items a second, so a
/// `DELETE` is still at work when it is killed. (The background sweep is
/// tested in `tests/tests/cleanup.rs` and the clean-up function's tests.)
fn server(test_store: &TestStore, slow: bool) -> Server {
    let endpoint = test_store.endpoint();
    let table = test_store.store.table().to_owned();
    Server::start(move |command| {
        command
            .args(["--dynamodb-endpoint", &endpoint, "--table", &table])
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("CLEANUP_INLINE_MS", "600000")
            .env("USERS_API_CLEANUP_INTERVAL_MS", "0");
        if slow {
            command.env("CLEANUP_PACE", "300");
        }
    })
}

/// The partition whose items a clean-up removes (a user's collection, or a
/// segment's members in the members index): a cheap measure of progress,
/// where a scan of the whole table is not.
struct Progress<'a> {
    pk: String,
    index: Option<Index>,
    test_store: &'a TestStore,
}

impl Progress<'_> {
    async fn left(&self) -> usize {
        items_in_partition(&self.test_store.store, &self.pk, self.index).await
    }
}

/// Sends `DELETE path` in the background, waits until the clean-up has
/// visibly begun (`progress` shrank by 100), then kills the server with
/// SIGKILL. Returns how many items of the table still mention `needle`.
async fn kill_midway(
    mut server: Server,
    token: &str,
    path: &str,
    progress: Progress<'_>,
    needle: &str,
) -> usize {
    let before = progress.left().await;
    let (addr, token, path) = (server.addr.clone(), token.to_owned(), path.to_owned());
    let deleting = std::thread::spawn(move || try_request(&addr, "DELETE", &path, &token, None));
    let started = Instant::now();
    while progress.left().await + 100 > before {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the clean-up never began"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    assert_eq!(
        deleting.join().unwrap(),
        None,
        "the DELETE died with the server"
    );
    let left = items_mentioning(&progress.test_store.store, needle).await;
    assert!(left > 0, "the kill came after the clean-up had finished");
    left
}

/// Waits until the clean-up's partition is empty, then checks with a scan
/// that no item of the table mentions `needle`.
async fn until_nothing_mentions(progress: Progress<'_>, needle: &str) {
    let started = Instant::now();
    while progress.left().await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the clean-up of {needle} did not end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while items_mentioning(&progress.test_store.store, needle).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "items of {needle} are still there"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erase_and_segment_delete_killed_midway_are_finished_after_a_restart() {
    // GIVEN a segment with 1,500 members, one of whom has 1,500 conversations
    let test_store = TestStore::new().await;
    let store = &test_store.store;
    let account = AccountId::parse("acme").unwrap();
    let token = test_store.token("acme").await;
    let segment = store
        .create_segment(&account, "Everyone")
        .await
        .unwrap()
        .to_string();
    let kept = store
        .create_segment(&account, "Kept")
        .await
        .unwrap()
        .to_string();
    let seeds = (0..THOUSANDS)
        .map(|i| {
            NewUser::new(format!("u{i}"))
                .with("a", "1")
                .in_segment(&segment)
                .in_segment(&kept)
        })
        .collect();
    let members = seed_users(store, "acme", seeds).await;
    let user = members[0].clone();
    seed_conversations(
        store,
        "acme",
        &user,
        THOUSANDS,
        "hello",
        ConversationKeys::Current,
    )
    .await;
    let user_items = || Progress {
        pk: keys::user_pk(&account, user.parse().unwrap()),
        index: None,
        test_store: &test_store,
    };
    let memberships = || Progress {
        pk: keys::segment_members_pk(&account, segment.parse().unwrap()),
        index: Some(keys::BY_SEGMENT),
        test_store: &test_store,
    };

    // WHEN the server dies in the middle of erasing the user
    let left = kill_midway(
        server(&test_store, true),
        &token,
        &format!("/users/{user}"),
        user_items(),
        &user,
    )
    .await;
    // THEN the user is already gone, and what is left waits
    assert_eq!(
        store
            .get_user(&account, user.parse().unwrap())
            .await
            .unwrap(),
        None
    );
    assert!(left > 0);

    // WHEN the server dies in the middle of deleting the segment
    let left = kill_midway(
        server(&test_store, true),
        &token,
        &format!("/segments/{segment}"),
        memberships(),
        &segment,
    )
    .await;
    let listed = store.list_segments(&account).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["Kept"]
    );
    assert!(left > 0);

    // AND the restarted server is asked again
    let restarted = server(&test_store, false);
    let addr = restarted.addr.clone();
    let (token_for_requests, user_path, segment_path) = (
        token.clone(),
        format!("/users/{user}"),
        format!("/segments/{segment}"),
    );
    let answers = tokio::task::spawn_blocking(move || {
        [
            request(&addr, "DELETE", &user_path, &token_for_requests, None),
            request(&addr, "DELETE", &segment_path, &token_for_requests, None),
        ]
    })
    .await
    .unwrap();
    // THEN both answer 200 and finish: nothing of either is left
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    until_nothing_mentions(user_items(), &user).await;
    until_nothing_mentions(memberships(), &segment).await;
    let kept_segment = store
        .list_segments(&account)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.id.to_string() == kept)
        .unwrap();
    assert_eq!(
        kept_segment.users,
        (THOUSANDS - 1) as u64,
        "counters are exact"
    );
    let addr = restarted.addr.clone();
    let again = tokio::task::spawn_blocking(move || {
        request(&addr, "DELETE", &format!("/users/{user}"), &token, None)
    })
    .await
    .unwrap();
    assert_eq!(again.0, 404, "{}", again.1);
}

//! The clean-up function fed its two kinds of event (`tests/events/cleanup`:
//! a stream record of a job written, the scheduled sweep): each finishes
//! every pending clean-up within the invocation's deadline, whatever the
//! event says, and answers a summary.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use shared::store::CleanupConfig;
use users_api_tests::{ConversationKeys, NewUser, TestApi, items_mentioning};

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/events/cleanup")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A Lambda context whose invocation ends `left` from now.
fn context(left: Duration) -> Context {
    let mut context = Context::default();
    context.deadline = (SystemTime::now() + left)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    context
}

#[tokio::test]
async fn each_event_finishes_the_pending_clean_ups() {
    for name in ["stream-job-insert", "schedule"] {
        let api = TestApi::new().await;
        let acme = api.client("acme").await;
        let segment = acme.create_segment("S").await;
        let seeds = (0..50)
            .map(|i| {
                NewUser::new(format!("u{i}"))
                    .with("a", "1")
                    .in_segment(&segment)
            })
            .collect();
        let users = acme.seed_users(seeds).await;
        acme.seed_conversations(&users[0], 150, "hi", ConversationKeys::Current)
            .await;
        // GIVEN a user and a segment deleted, their clean-ups left pending
        let hiding_only = acme.on(&api.with_cleanup(CleanupConfig {
            inline: Duration::ZERO,
            ..CleanupConfig::default()
        }));
        for uri in [
            format!("/users/{}", users[0]),
            format!("/segments/{segment}"),
        ] {
            assert_eq!(hiding_only.delete(&uri).await.status, StatusCode::OK);
        }
        assert!(items_mentioning(&api.store, &users[0]).await > 0);
        // WHEN the function gets the event
        let event = LambdaEvent::new(fixture(name), context(Duration::from_secs(60)));
        let summary = cleanup_function::handle(&api.store, event).await.unwrap();
        // THEN both are finished
        assert_eq!(summary, json!({"finished": 2, "pending": 0}), "{name}");
        assert_eq!(items_mentioning(&api.store, &users[0]).await, 0, "{name}");
        assert_eq!(items_mentioning(&api.store, &segment).await, 0, "{name}");
    }
}

#[tokio::test]
async fn an_invocation_near_its_deadline_leaves_the_work_pending_not_failed() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let user = acme.create_user(NewUser::new("u").with("a", "1")).await;
    let hiding_only = acme.on(&api.with_cleanup(CleanupConfig {
        inline: Duration::ZERO,
        ..CleanupConfig::default()
    }));
    hiding_only.delete(&format!("/users/{user}")).await;
    // An invocation with less time than its margin does no work, says so,
    // and keeps the job for the next one.
    let event = LambdaEvent::new(fixture("schedule"), context(Duration::from_millis(500)));
    let summary = cleanup_function::handle(&api.store, event).await.unwrap();
    assert_eq!(summary, json!({"finished": 0, "pending": 1}));
    let event = LambdaEvent::new(fixture("schedule"), context(Duration::from_secs(60)));
    let summary = cleanup_function::handle(&api.store, event).await.unwrap();
    assert_eq!(summary, json!({"finished": 1, "pending": 0}));
}

//! Hot accounts: each account's sort indexes written in N shards and read
//! merged (`USERS_INDEX_SHARDS`). Whatever N, every walk (list pages in both
//! sorts and orders, filtered walks, last-seen snapshots while users move,
//! exports) hands out exactly the order one unsharded index would, and N may
//! grow under existing users.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::json;
use shared::model::AccountId;
use shared::store::keys;
use users_api_tests::{Client, NewUser, TestApi, ids_of, items_in_partition};

/// Creates `n` users in order (`tier` gold for every seventh); returns their
/// ids in creation order.
async fn seed(client: &Client, first: usize, n: usize) -> Vec<String> {
    let users = (first..first + n)
        .map(|i| {
            let tier = if i % 7 == 0 { "gold" } else { "basic" };
            NewUser::new(format!("user-{i:05}")).with("tier", tier)
        })
        .collect();
    client.create_users(users).await
}

/// Every id of `uri`'s pages, in order, checking that no page repeats one.
async fn page_all(client: &Client, uri: &str) -> Vec<String> {
    page_all_after(client, uri, None).await
}

/// Every id of `uri`'s pages from `after` on, in order.
async fn page_all_after(client: &Client, uri: &str, mut after: Option<String>) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for _ in 0..500 {
        let page_uri = match &after {
            Some(after) => format!("{uri}&after={after}"),
            None => uri.to_owned(),
        };
        let answer = client.get(&page_uri).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        all.extend(ids_of(&answer.body));
        match answer.body["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => {
                let distinct: BTreeSet<&String> = all.iter().collect();
                assert_eq!(distinct.len(), all.len(), "a user was listed twice");
                return all;
            }
        }
    }
    panic!("paging did not end");
}

/// How many entries each shard of the account's created-at index holds.
async fn entries_per_shard(api: &TestApi, account: &str, shards: u16) -> Vec<usize> {
    let account = AccountId::parse(account).unwrap();
    let mut counts = Vec::new();
    for pk in keys::users_index_pks(&account, shards) {
        counts.push(items_in_partition(&api.store, &pk, Some(keys::BY_CREATED)).await);
    }
    counts
}

async fn converse(client: &Client, user: &str) {
    client.record_conversation(user, "hi").await;
    // Distinct lastSeen instants, so the expected order is unambiguous.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
}

fn reversed(ids: &[String]) -> Vec<String> {
    ids.iter().rev().cloned().collect()
}

#[tokio::test]
async fn users_spread_over_the_shards_and_are_listed_in_exact_order() {
    for shards in [4_u16, 16] {
        // GIVEN an account whose indexes are written in `shards` shards
        let api = TestApi::new().await.with_index_shards(shards);
        let acme = api.client("acme").await;
        let ids = seed(&acme, 0, 70).await;
        let spread = entries_per_shard(&api, "acme", shards).await;
        assert_eq!(spread.iter().sum::<usize>(), 70, "{spread:?}");
        let used = spread.iter().filter(|&&count| count > 0).count();
        assert!(used >= usize::from(shards) * 3 / 4, "{shards}: {spread:?}");

        // WHEN its users are paged in both orders THEN each page continues
        // exactly where the last one ended, as from one index
        assert_eq!(page_all(&acme, "/users?limit=7").await, reversed(&ids));
        assert_eq!(page_all(&acme, "/users?sort.order=asc&limit=9").await, ids);

        // AND by lastSeen, after activity moved some users to the front
        for at in [5, 50, 0] {
            converse(&acme, &ids[at]).await;
        }
        let moved = [ids[0].clone(), ids[50].clone(), ids[5].clone()];
        let mut by_seen = moved.to_vec();
        by_seen.extend(reversed(&ids).into_iter().filter(|id| !moved.contains(id)));
        assert_eq!(
            page_all(&acme, "/users?sort.field=lastSeen&limit=8").await,
            by_seen
        );
        let mut ascending = by_seen.clone();
        ascending.reverse();
        assert_eq!(
            page_all(&acme, "/users?sort.field=lastSeen&sort.order=asc&limit=11").await,
            ascending
        );

        // AND a filtered walk finds exactly the matches, in order
        let gold: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 7 == 0)
            .map(|(_, id)| id.clone())
            .collect();
        let filtered = "/users?sort.order=asc&limit=3&filters[0][field]=tier&filters[0][operator]=eq&filters[0][value]=gold";
        assert_eq!(page_all(&acme, filtered).await, gold);
    }
}

#[tokio::test]
async fn the_shard_count_may_grow_under_existing_users() {
    // GIVEN users written unsharded
    let unsharded = TestApi::new().await;
    let acme = unsharded.client("acme").await;
    let mut ids = seed(&acme, 0, 20).await;
    // WHEN the shard count grows, more users come, and old ones are active
    let api = unsharded.with_index_shards(4);
    let acme = acme.on(&api);
    ids.extend(seed(&acme, 20, 20).await);
    assert!(entries_per_shard(&api, "acme", 4).await[0] >= 20);
    for at in [3, 11] {
        converse(&acme, &ids[at]).await;
    }
    // THEN every user is listed once, in order, old and new
    assert_eq!(page_all(&acme, "/users?sort.order=asc&limit=6").await, ids);
    let moved = [ids[11].clone(), ids[3].clone()];
    let mut by_seen = moved.to_vec();
    by_seen.extend(reversed(&ids).into_iter().filter(|id| !moved.contains(id)));
    assert_eq!(
        page_all(&acme, "/users?sort.field=lastSeen&limit=7").await,
        by_seen
    );
}

#[tokio::test]
async fn a_last_seen_snapshot_holds_across_shards_while_users_move() {
    // GIVEN 30 users in 4 shards, and the first page by lastSeen
    let api = TestApi::new().await.with_index_shards(4);
    let acme = api.client("acme").await;
    let ids = seed(&acme, 0, 30).await;
    let first = acme.get("/users?sort.field=lastSeen&limit=10").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let mut seen = ids_of(&first.body);
    assert_eq!(seen, reversed(&ids)[..10]);
    // WHEN users on this page and on later pages become active
    for at in [0, 4, 12, 25, 7] {
        converse(&acme, &ids[at]).await;
    }
    // THEN the following pages show the snapshot: nobody twice, nobody left out
    let next = first.body["next"].as_str().unwrap().to_owned();
    let rest = page_all_after(&acme, "/users?sort.field=lastSeen&limit=10", Some(next)).await;
    seen.extend(rest);
    assert_eq!(seen, reversed(&ids));
}

#[tokio::test]
async fn exports_merge_the_shards_in_order() {
    // GIVEN more users than one export page in each of 4 shards
    let api = TestApi::new().await.with_index_shards(4);
    let acme = api.client("acme").await;
    let users = 1_200;
    let seeds = (0..users)
        .map(|i| NewUser::new(format!("u{i:04}")))
        .collect();
    acme.seed_users(seeds).await;
    let expected: Vec<String> = (0..users).map(|i| format!("u{i:04}")).collect();
    // WHEN the account is exported in either order
    for (order, rows) in [("asc", expected.clone()), ("desc", reversed(&expected))] {
        let body = json!({"fields": ["userId"], "sort": {"field": "createdAt", "order": order}});
        let read_before = api.store.items_read();
        let answer = acme.post("/users/export", body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        // THEN the rows are the users in that order, each once
        let lines: Vec<&str> = answer.text.trim_end().split("\r\n").collect();
        assert_eq!(lines[0], "User ID");
        assert_eq!(lines[1..], rows, "{order}");
        // AND each index entry and each profile is read about once (the
        // first page does not read a page from every shard and drop it)
        let read = api.store.items_read() - read_before;
        assert!(read <= 2 * users + users / 4, "{order}: {read} items read");
    }
}

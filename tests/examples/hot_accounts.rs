//! What one busy account can take: for each shard count N of the account's
//! sort indexes (`USERS_INDEX_SHARDS`), the write units a conversation costs
//! (all of it, and the part that lands in the account's index partitions),
//! the conversations per second that allows against DynamoDB's partition and
//! table limits, and what a list page costs and takes at that N.
//!
//! Every call goes through the real router in process (`oneshot`), on the
//! engine of `USERS_API_TEST_ENDPOINT` (DynamoDB Local reports units by
//! DynamoDB's rules) or the embedded one. `scripts/bench.sh` runs it; by hand:
//!
//! ```text
//! cargo run --release -p users-api-tests --example hot_accounts
//! HOT_USERS=20000 HOT_SHARDS=1,4,16 cargo run --release -p users-api-tests --example hot_accounts
//! ```
//!
//! Prints a Markdown section to stdout.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;
use shared::store::MeterReading;
use users_api_tests::bench::{account_of, engine_name, env_number, ms, percentile};
use users_api_tests::{Client, TestApi};

/// DynamoDB's throughput limit of one partition, in write units per second.
const PARTITION_WRITE_UNITS: f64 = 1_000.0;
/// An on-demand table's default throughput quota, in write units per second.
const TABLE_WRITE_UNITS: f64 = 40_000.0;

/// One list call's figures over the rounds.
struct ListCost {
    requests: f64,
    read_units: f64,
    times: Vec<Duration>,
}

impl ListCost {
    fn summary(&self) -> String {
        let mut times = self.times.clone();
        times.sort();
        format!(
            "{:.1} req, {:.1} RRU, {} / {} ms",
            self.requests,
            self.read_units,
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99))
        )
    }
}

#[tokio::main]
async fn main() {
    let users = env_number("HOT_USERS", 5_000).max(100);
    let rounds = env_number("HOT_ROUNDS", 100).clamp(1, users);
    let shard_counts: Vec<u16> = std::env::var("HOT_SHARDS")
        .unwrap_or_else(|_| "1,4,16".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let mut rows = Vec::new();
    for &shards in &shard_counts {
        rows.push((shards, measure(users, rounds, shards).await));
    }

    println!("## Hot accounts: N shards per account\n");
    println!(
        "`tests/examples/hot_accounts.rs`: an account of {users} users, its sort indexes written in N shards; {rounds} calls of each kind through the real router, in process; engine: {}. \
         *Conversation* is `POST /users/{{id}}/conversations` on {rounds} different users: its write units in all, and those of the account's index partitions (the last-seen index: the user's old entry deleted, its new one and its ghost put). \
         *Sustained* is what one account can take: the N index partitions at DynamoDB's {PARTITION_WRITE_UNITS} write units per second each, and the table at the on-demand default quota of {TABLE_WRITE_UNITS} write units per second, whichever binds first. \
         List pages of 20: requests, read units, and the call's time p50 / p99.\n",
        engine_name("HOT_ENGINE")
    );
    println!(
        "| N | conversation: write units (index partitions) | sustained conversations/s (partitions / table) | page by createdAt | page by lastSeen | unindexed filter page |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (shards, m) in &rows {
        let per_partition = m.index_write_units;
        let by_partitions = if per_partition > 0.0 {
            f64::from(*shards) * PARTITION_WRITE_UNITS / per_partition
        } else {
            f64::INFINITY
        };
        let by_table = if m.write_units > 0.0 {
            TABLE_WRITE_UNITS / m.write_units
        } else {
            f64::INFINITY
        };
        println!(
            "| {shards} | {:.2} ({:.2}) | {:.0} ({:.0} / {:.0}) | {} | {} | {} |",
            m.write_units,
            m.index_write_units,
            by_partitions.min(by_table),
            by_partitions,
            by_table,
            m.by_created.summary(),
            m.by_seen.summary(),
            m.filtered.summary(),
        );
    }
}

/// What one shard count costs.
struct Measured {
    write_units: f64,
    index_write_units: f64,
    by_created: ListCost,
    by_seen: ListCost,
    filtered: ListCost,
}

async fn measure(users: usize, rounds: usize, shards: u16) -> Measured {
    let api = TestApi::new().await.with_index_shards(shards);
    let acme = api.client("acme").await;
    let seeded = Instant::now();
    let ids = acme.seed_users(account_of(users, None)).await;
    eprintln!("N={shards}: seeded {users} users in {:?}", seeded.elapsed());

    let before = api.store.meter();
    for id in ids.iter().take(rounds) {
        let answer = acme
            .call(
                Method::POST,
                &format!("/users/{id}/conversations"),
                Some(json!({"sessionAttributes": {"channel": "web"}})),
            )
            .await;
        assert!(answer.status.is_success(), "{}", answer.text);
    }
    let spent: MeterReading = api.store.meter() - before;
    let n = rounds as f64;
    Measured {
        write_units: spent.write_units / n,
        index_write_units: spent.index_write_units / n,
        by_created: list(&acme, "/users?limit=20", rounds).await,
        by_seen: list(&acme, "/users?limit=20&sort.field=lastSeen", rounds).await,
        filtered: list(
            &acme,
            "/users?limit=20&filters[0][field]=plan&filters[0][operator]=eq&filters[0][value]=enterprise",
            rounds,
        )
        .await,
    }
}

async fn list(client: &Client, uri: &str, rounds: usize) -> ListCost {
    let mut times = Vec::with_capacity(rounds);
    let before = client.store().meter();
    for _ in 0..rounds {
        let started = Instant::now();
        let answer = client.call(Method::GET, uri, None).await;
        times.push(started.elapsed());
        assert!(answer.status.is_success(), "{uri}: {}", answer.text);
    }
    let spent = client.store().meter() - before;
    // Each call also looks its token up: one request, half a read unit.
    let lookup = client.store().meter();
    client
        .store()
        .resolve_token(client.token())
        .await
        .expect("token");
    let lookup = client.store().meter() - lookup;
    let n = rounds as f64;
    ListCost {
        requests: spent.requests as f64 / n - lookup.requests as f64,
        read_units: spent.read_units / n - lookup.read_units,
        times,
    }
}

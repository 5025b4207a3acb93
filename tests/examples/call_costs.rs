//! What each API call costs: DynamoDB requests, items read, read and write
//! units (as the engine reports them through `ReturnConsumedCapacity`), and
//! the handler's own time with the engine's time taken out, p50/p99.
//!
//! Every call goes through the real router in process (`oneshot`), on the
//! engine of `USERS_API_TEST_ENDPOINT` (DynamoDB Local gives units computed by
//! DynamoDB's rules) or the embedded one. `scripts/bench.sh` runs it; by hand:
//!
//! ```text
//! cargo run --release -p users-api-tests --example call_costs
//! COSTS_USERS=100000 COSTS_ROUNDS=200 cargo run --release -p users-api-tests --example call_costs
//! ```
//!
//! Prints a Markdown section to stdout; with `COSTS_JSON=path`, also writes
//! the per-call figures there (what `scripts/bench.sh` checks the targets on).

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::store::MeterReading;
use users_api_tests::bench::{account_of, engine_name, env_number, ms, percentile};
use users_api_tests::{Client, TestApi};

/// On-demand prices, us-east-1, per million request units (since November
/// 2024), and the per-call prices in front of the functions.
const WRITE_UNIT_PRICE: f64 = 0.625;
const READ_UNIT_PRICE: f64 = 0.125;
const LAMBDA_REQUEST_PRICE: f64 = 0.20;
const HTTP_API_REQUEST_PRICE: f64 = 1.00;

/// One kind of call: its name and the request of round `i`.
struct CallKind {
    name: &'static str,
    request: Box<dyn Fn(usize) -> (Method, String, Option<Value>)>,
}

struct Measured {
    cost: MeterReading,
    handler: Vec<Duration>,
    engine: Vec<Duration>,
    returned: u64,
}

#[tokio::main]
async fn main() {
    let users = env_number("COSTS_USERS", 1000).max(100);
    let rounds = env_number("COSTS_ROUNDS", 50).clamp(1, users / 4);
    let api = TestApi::new().await;
    let acme = api.client("acme").await;

    let segment = acme.create_segment("vip").await;
    let trial = acme.create_segment("trial").await;
    let seeded = Instant::now();
    let ids = acme.seed_users(account_of(users, Some(&segment))).await;
    eprintln!("seeded {users} users in {:?}", seeded.elapsed());

    // The token lookup every call starts with (in Lambda: the authorizer's,
    // which API Gateway caches per acme.token()).
    let before = api.store.meter();
    for _ in 0..rounds {
        api.store.resolve_token(acme.token()).await.expect("token");
    }
    let auth = per_call(api.store.meter() - before, rounds);

    let kinds: Vec<CallKind> = vec![
        // Every tenth user is in the segment (`account_of`).
        CallKind {
            name: "GET /users/{id}",
            request: Box::new({
                let ids = ids.clone();
                move |i| {
                    let user = &ids[(10 * i + 1) % ids.len()];
                    (Method::GET, format!("/users/{user}"), None)
                }
            }),
        },
        CallKind {
            name: "GET /users/{id} (in a segment)",
            request: Box::new({
                let ids = ids.clone();
                move |i| {
                    let user = &ids[(10 * i) % ids.len()];
                    (Method::GET, format!("/users/{user}"), None)
                }
            }),
        },
        CallKind {
            name: "POST /users (one)",
            request: Box::new(|i| {
                let body = json!({"userId": format!("new-{i:07}"), "attributes": {"default_email": format!("new{i}@example.com"), "plan": "pro"}});
                (Method::POST, "/users".to_owned(), Some(body))
            }),
        },
        CallKind {
            name: "PUT /users/{id}",
            request: Box::new({
                let ids = ids.clone();
                move |i| {
                    let body = json!({"attributes": {"plan": "team", "default_city": format!("City {i}")}});
                    (
                        Method::PUT,
                        format!("/users/{}", ids[rounds + i]),
                        Some(body),
                    )
                }
            }),
        },
        CallKind {
            name: "GET /users (page of 20)",
            request: Box::new(|_| (Method::GET, "/users?limit=20".to_owned(), None)),
        },
        CallKind {
            name: "GET /users (indexed filter: email eq)",
            request: Box::new(move |i| {
                let uri = format!(
                    "/users?filters[0][field]=default_email&filters[0][operator]=eq&filters[0][value]=user{}@example.com",
                    (i * 7919) % users
                );
                (Method::GET, uri, None)
            }),
        },
        CallKind {
            name: "GET /users (indexed filter: segment, page of 20)",
            request: Box::new({
                let segment = segment.clone();
                move |_| {
                    let uri = format!(
                        "/users?limit=20&filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={segment}"
                    );
                    (Method::GET, uri, None)
                }
            }),
        },
        CallKind {
            name: "GET /users (unindexed filter: plan eq, page of 20)",
            request: Box::new(|_| {
                let uri = "/users?limit=20&filters[0][field]=plan&filters[0][operator]=eq&filters[0][value]=enterprise".to_owned();
                (Method::GET, uri, None)
            }),
        },
        CallKind {
            name: "POST /users/{id}/segments (add one)",
            request: Box::new({
                let ids = ids.clone();
                move |i| {
                    let body = json!([trial]);
                    (
                        Method::POST,
                        format!("/users/{}/segments", ids[2 * rounds + i]),
                        Some(body),
                    )
                }
            }),
        },
        CallKind {
            name: "POST /users/{id}/conversations",
            request: Box::new({
                let ids = ids.clone();
                move |i| {
                    let body = json!({"sessionAttributes": {"channel": "web"}});
                    (
                        Method::POST,
                        format!("/users/{}/conversations", ids[i % 4]),
                        Some(body),
                    )
                }
            }),
        },
        CallKind {
            name: "DELETE /users/{id} (erase)",
            request: Box::new(move |i| {
                (
                    Method::DELETE,
                    format!("/users/{}", ids[3 * rounds + i]),
                    None,
                )
            }),
        },
    ];

    let mut rows = Vec::new();
    for kind in &kinds {
        let measured = measure(&acme, kind, rounds).await;
        rows.push((kind.name, measured));
    }

    println!("## What each call costs\n");
    println!(
        "`tests/examples/call_costs.rs`: {rounds} calls of each kind through the real router, in process, on an account of {users} users; engine: {}. \
         DynamoDB figures are per call, after the token lookup (its own row), as the engine reported them (`ReturnConsumedCapacity = INDEXES`). \
         *Handler* is the call's time minus the time its DynamoDB requests were in flight (so: routing, validation, (de)serialisation, SDK signing); \
         *engine* is that time in flight. Milliseconds, p50 / p99.\n",
        engine_name("COSTS_ENGINE")
    );
    println!(
        "| call | requests | items read | returned | read units | write units (of which indexes) | handler p50 / p99 | engine p50 / p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| token lookup | {:.2} | {:.2} | — | {:.2} | {:.2} | — | — |",
        auth.requests, auth.items_read, auth.read_units, auth.write_units
    );
    for (name, m) in &rows {
        let c = per_call(m.cost, rounds);
        let mut handler = m.handler.clone();
        let mut engine = m.engine.clone();
        handler.sort();
        engine.sort();
        println!(
            "| {name} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} ({:.2}) | {} / {} | {} / {} |",
            c.requests - auth.requests,
            c.items_read - auth.items_read,
            m.returned as f64 / rounds as f64,
            c.read_units - auth.read_units,
            c.write_units - auth.write_units,
            c.index_write_units,
            ms(percentile(&handler, 0.5)),
            ms(percentile(&handler, 0.99)),
            ms(percentile(&engine, 0.5)),
            ms(percentile(&engine, 0.99)),
        );
    }

    if let Some(path) = std::env::var("COSTS_JSON").ok().filter(|p| !p.is_empty()) {
        let calls: Vec<Value> = rows
            .iter()
            .map(|(name, m)| {
                let c = per_call(m.cost, rounds);
                json!({
                    "call": name,
                    "requests": c.requests - auth.requests,
                    "items_read": c.items_read - auth.items_read,
                    "returned": m.returned as f64 / rounds as f64,
                })
            })
            .collect();
        let figures = json!({"users": users, "rounds": rounds, "calls": calls});
        std::fs::write(&path, figures.to_string()).expect("COSTS_JSON is writable");
    }

    println!("\n### Cost per million calls\n");
    println!(
        "On-demand prices, us-east-1: ${WRITE_UNIT_PRICE} per million write request units, ${READ_UNIT_PRICE} per million read request units; \
         Lambda ${LAMBDA_REQUEST_PRICE} per million requests; HTTP API ${HTTP_API_REQUEST_PRICE} per million requests. \
         The token lookup is included once per call (as without API Gateway's authorizer cache). \
         Lambda's duration charge is left out: it depends on the memory setting and on DynamoDB's latency in the region, neither of which this machine has.\n"
    );
    println!("| call | DynamoDB | + Lambda and HTTP API requests |");
    println!("|---|---:|---:|");
    for (name, m) in &rows {
        let c = per_call(m.cost, rounds);
        let dynamodb = c.read_units * READ_UNIT_PRICE + c.write_units * WRITE_UNIT_PRICE;
        println!(
            "| {name} | ${dynamodb:.3} | ${:.3} |",
            dynamodb + LAMBDA_REQUEST_PRICE + HTTP_API_REQUEST_PRICE
        );
    }
}

/// Per-call averages of a total over `rounds` calls.
struct PerCall {
    requests: f64,
    items_read: f64,
    read_units: f64,
    write_units: f64,
    index_write_units: f64,
}

fn per_call(total: MeterReading, rounds: usize) -> PerCall {
    let n = rounds as f64;
    PerCall {
        requests: total.requests as f64 / n,
        items_read: total.items_read as f64 / n,
        read_units: total.read_units / n,
        write_units: total.write_units / n,
        index_write_units: total.index_write_units / n,
    }
}

async fn measure(client: &Client, kind: &CallKind, rounds: usize) -> Measured {
    let mut measured = Measured {
        cost: MeterReading::default(),
        handler: Vec::with_capacity(rounds),
        engine: Vec::with_capacity(rounds),
        returned: 0,
    };
    for i in 0..rounds {
        let (method, uri, body) = (kind.request)(i);
        let before = client.store().meter();
        let started = Instant::now();
        let answer = client.call(method, &uri, body).await;
        let took = started.elapsed();
        let spent = client.store().meter() - before;
        assert!(
            answer.status.is_success(),
            "{}: {} {}",
            kind.name,
            answer.status,
            answer.text
        );
        if answer.status == StatusCode::OK {
            measured.returned += returned(&answer.body);
        }
        measured.cost = measured.cost + spent;
        measured.engine.push(spent.engine_time);
        measured
            .handler
            .push(took.saturating_sub(spent.engine_time));
    }
    measured
}

/// Users in a list answer; one for any other answer.
fn returned(body: &Value) -> u64 {
    match body.get("data").and_then(Value::as_array) {
        Some(users) => users.len() as u64,
        None => 1,
    }
}

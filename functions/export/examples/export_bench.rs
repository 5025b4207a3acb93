//! The export benchmark: how fast `POST /users/export` streams, how soon the
//! first byte leaves, and whether memory stays flat as the account grows.
//! Run it with `scripts/bench_export.sh` (results in `docs/benchmarks.md`).
//!
//! Two commands, each meant for its own process, so that what one does never
//! shows in the other's memory:
//!
//! - `seed --db FILE --users N` writes N users of account `bench` into an
//!   embedded-engine database file: profile items only (what the export
//!   reads), 25 per `BatchWriteItem`, a few requests in flight, through an
//!   engine in SQLite's bulk-loading mode (no fsync per write).
//! - `run --db FILE --users N [--repeat R]` opens that file with the embedded
//!   engine in this process, sends the export (`{}`: every user, all 17
//!   fields, newest first) R times through the export function's router, and
//!   reads each body chunk by chunk, dropping it as a client would. It checks
//!   that every user arrived, then prints one line: the median time to the
//!   first chunk and to the end, rows per second, and the process's peak
//!   resident memory (`VmHWM`, engine included) next to its resident memory
//!   before the first export.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use axum::body::Body;
use export_function::ExportState;
use http_body_util::BodyExt;
use shared::engine::{EmbeddedEngine, local_client};
use shared::http::{AppState, with_account};
use shared::model::{AccountId, Attributes, ObjectId, Timestamp, User};
use shared::store::Store;
use shared::store::items::{ProfileItem, to_item};
use tokio::task::JoinSet;
use tower::ServiceExt;

const TABLE: &str = "users-bench";
const ACCOUNT: &str = "bench";
/// Items per `BatchWriteItem` (DynamoDB's maximum).
const BATCH: usize = 25;
/// `BatchWriteItem` requests in flight while seeding.
const IN_FLIGHT: usize = 4;

type Failure = Box<dyn std::error::Error + Send + Sync>;

struct Args {
    command: String,
    db: PathBuf,
    users: usize,
    repeat: usize,
}

fn parse_args() -> Result<Args, Failure> {
    let mut args = std::env::args().skip(1);
    let command = args
        .next()
        .ok_or("usage: export_bench seed|run --db FILE --users N [--repeat R]")?;
    let (mut db, mut users, mut repeat) = (None, None, 3);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--db" => db = Some(PathBuf::from(value)),
            "--users" => users = Some(value.parse()?),
            "--repeat" => repeat = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(Args {
        command,
        db: db.ok_or("--db is required")?,
        users: users.ok_or("--users is required")?,
        repeat: repeat.max(1),
    })
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = parse_args()?;
    let account = AccountId::parse(ACCOUNT)?;
    match args.command.as_str() {
        "seed" => seed(&args.db, &account, args.users).await,
        "run" => {
            // The engine as the local server runs it: normal SQLite settings.
            let engine = EmbeddedEngine::start(Some(&args.db)).await?;
            let store = Store::new(local_client(engine.endpoint()), TABLE);
            store.ensure_table().await?;
            run(&store, &account, args.users, args.repeat).await
        }
        other => Err(format!("unknown command {other}; use seed or run").into()),
    }
}

/// User `i` of the bench account: created 7 ms after user `i - 1`, with the
/// attributes a typical chat user has (about 400 bytes of CSV).
fn bench_user(i: usize, base: i64) -> User {
    let created = Timestamp::from_millis(base + 7 * i as i64);
    let attributes = [
        ("default_name", format!("Bench User {i}")),
        ("default_email", format!("user{i}@example.com")),
        (
            "default_url",
            format!("https://shop.example.com/products/{}", i % 977),
        ),
        (
            "default_avatar",
            format!("https://cdn.example.com/avatars/{i}.png"),
        ),
        ("default_language", "pl".to_owned()),
        ("default_timezone", "Europe/Warsaw".to_owned()),
        (
            "default_ip",
            format!("10.{}.{}.{}", i % 256, (i / 256) % 256, i % 7),
        ),
        ("default_city", "Warszawa".to_owned()),
        ("default_country", "PL".to_owned()),
        ("default_referrer", "https://www.google.com/".to_owned()),
        ("default_source", "messenger".to_owned()),
        (
            "plan",
            if i.is_multiple_of(3) { "pro" } else { "free" }.to_owned(),
        ),
    ];
    User {
        id: ObjectId::at_seconds(created.unix_seconds()),
        user_id: format!("bench-{i:07}"),
        banned: false,
        attributes: Attributes(
            attributes
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
        ),
        session_attributes: Default::default(),
        conversations: (i % 5) as u64,
        segments: Default::default(),
        created_at: created,
        last_seen: Timestamp::from_millis(created.millis() + 60_000),
    }
}

async fn write_batch(store: Store, mut writes: Vec<WriteRequest>) -> Result<(), Failure> {
    for attempt in 0..20u64 {
        let output = store
            .client()
            .batch_write_item()
            .request_items(store.table(), writes)
            .send()
            .await?;
        writes = output
            .unprocessed_items
            .and_then(|mut u| u.remove(store.table()))
            .unwrap_or_default();
        if writes.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10 * (attempt + 1))).await;
    }
    Err("BatchWriteItem kept leaving items unprocessed".into())
}

/// Seeds through the DynamoDB API of an engine on `db` that runs with
/// SQLite's bulk-loading settings (no fsync per write; the file is thrown
/// away if seeding fails), then restores the normal ones.
async fn seed(db: &Path, account: &AccountId, users: usize) -> Result<(), Failure> {
    let started = Instant::now();
    let database = dynoxide::Database::new(&db.to_string_lossy())?;
    database.enable_bulk_loading()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dynoxide::server::serve_with_shutdown(
        listener,
        database.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let store = Store::new(local_client(&endpoint), TABLE);
    store.ensure_table().await?;

    let base = Timestamp::now().millis() - 7 * users as i64 - 3_600_000;
    let mut tasks = JoinSet::new();
    for first in (0..users).step_by(BATCH) {
        let mut writes = Vec::with_capacity(BATCH);
        for i in first..(first + BATCH).min(users) {
            let item = to_item(&ProfileItem::new(account, &bench_user(i, base)))?;
            writes.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                    .build(),
            );
        }
        if tasks.len() == IN_FLIGHT
            && let Some(done) = tasks.join_next().await
        {
            done??;
        }
        tasks.spawn(write_batch(store.clone(), writes));
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }

    database.disable_bulk_loading()?;
    let _ = stop.send(());
    server.await??;
    eprintln!(
        "seeded {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One export: time to the first chunk, time to the end, rows received.
async fn export_once(
    router: &axum::Router,
    account: &AccountId,
) -> Result<(Duration, Duration, usize), Failure> {
    let mut request = axum::http::Request::post("/users/export")
        .header("content-type", "application/json")
        .body(Body::from("{}"))?;
    request.extensions_mut().insert(with_account(account));
    let started = Instant::now();
    let response = router.clone().oneshot(request).await?;
    if !response.status().is_success() {
        return Err(format!("export answered {}", response.status()).into());
    }
    let mut body = response.into_body();
    let mut first_chunk = None;
    let mut lines = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            first_chunk.get_or_insert_with(|| started.elapsed());
            // The bench data holds no line breaks inside cells.
            lines += data.iter().filter(|&&b| b == b'\n').count();
        }
    }
    let total = started.elapsed();
    Ok((first_chunk.unwrap_or(total), total, lines.saturating_sub(1)))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// A `/proc/self/status` value in KiB (`VmHWM`: peak resident set; `VmRSS`: now).
fn status_kib(key: &str) -> Result<u64, Failure> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with(key))
        .ok_or_else(|| format!("{key} missing from /proc/self/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed status line")?
        .parse()?)
}

async fn run(
    store: &Store,
    account: &AccountId,
    users: usize,
    repeat: usize,
) -> Result<(), Failure> {
    let jobs_folder = std::env::temp_dir().join(format!("export-bench-{}", std::process::id()));
    let router = export_function::router(ExportState::local(
        AppState::new(store.clone()),
        &jobs_folder,
    ));
    let rss_before = status_kib("VmRSS:")?;
    let (mut firsts, mut totals) = (Vec::new(), Vec::new());
    for _ in 0..repeat {
        let (first, total, rows) = export_once(&router, account).await?;
        if rows != users {
            return Err(format!("exported {rows} rows of {users} users").into());
        }
        firsts.push(first);
        totals.push(total);
    }
    let (first, total) = (median(firsts), median(totals));
    println!(
        "users={users} ttfb_ms={:.1} seconds={:.3} rows_per_s={:.0} rss_before_kib={rss_before} peak_rss_kib={}",
        first.as_secs_f64() * 1000.0,
        total.as_secs_f64(),
        users as f64 / total.as_secs_f64(),
        status_kib("VmHWM:")?,
    );
    Ok(())
}

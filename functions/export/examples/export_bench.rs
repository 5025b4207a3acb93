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
//! - `run --db FILE --users N [--repeat R] [--mode stream|gzip|job]` opens
//!   that file with the embedded engine in this process and exports every
//!   user (`{}`: all 17 fields, newest first) R times:
//!   - `stream`: `POST /users/export` through the export function's router,
//!     the body read chunk by chunk and dropped, as a client would;
//!   - `gzip`: the same with `Accept-Encoding: gzip`, each chunk inflated as
//!     it arrives to count its rows;
//!   - `job`: an export job run to the end by the job code (one run, files
//!     in a temporary folder), its file inflated afterwards to count rows.
//!
//!   It checks that every user arrived, then prints one line: the median
//!   time to the first chunk (the whole time for a job) and to the end, rows
//!   per second, bytes per row, and the process's peak resident memory
//!   (`VmHWM`, engine included) next to its resident memory before the first
//!   export.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use axum::body::Body;
use export_function::ExportState;
use export_function::files::{Files, FolderFiles};
use export_function::jobs::{JobConfig, Jobs, RunOutcome};
use http_body_util::BodyExt;
use shared::deadline::Deadline;
use shared::engine::{EmbeddedEngine, local_client};
use shared::http::{AppState, with_account};
use shared::model::{AccountId, Attributes, ObjectId, Timestamp, User};
use shared::store::ExportJobState;
use shared::store::Store;
use shared::store::items::{ProfileItem, to_item};
use tokio::task::JoinSet;
use tower::ServiceExt;

const TABLE: &str = "users-bench";
/// `--db` value for an in-memory engine, seeded by `run` itself.
const MEMORY: &str = ":memory:";
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
    mode: Mode,
}

/// How the export is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stream,
    Gzip,
    Job,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Stream => "stream",
            Mode::Gzip => "gzip",
            Mode::Job => "job",
        }
    }
}

fn parse_args() -> Result<Args, Failure> {
    let mut args = std::env::args().skip(1);
    let command = args
        .next()
        .ok_or("usage: export_bench seed|run --db FILE --users N [--repeat R] [--mode M]")?;
    let (mut db, mut users, mut repeat, mut mode) = (None, None, 3, Mode::Stream);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--db" => db = Some(PathBuf::from(value)),
            "--users" => users = Some(value.parse()?),
            "--repeat" => repeat = value.parse()?,
            "--mode" => {
                mode = match value.as_str() {
                    "stream" => Mode::Stream,
                    "gzip" => Mode::Gzip,
                    "job" => Mode::Job,
                    other => return Err(format!("unknown mode {other}").into()),
                }
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    Ok(Args {
        command,
        db: db.ok_or("--db is required")?,
        users: users.ok_or("--users is required")?,
        repeat: repeat.max(1),
        mode,
    })
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = parse_args()?;
    let account = AccountId::parse(ACCOUNT)?;
    match args.command.as_str() {
        "seed" => seed(&args.db, &account, args.users).await,
        "run" if args.db.as_os_str() == MEMORY => {
            // The engine in memory, seeded in this process: what the export
            // does when the engine's reads cost no disk pages.
            let engine = EmbeddedEngine::start(None).await?;
            let store = Store::new(local_client(engine.endpoint()), TABLE);
            store.ensure_table().await?;
            seed_into(&store, &account, args.users).await?;
            run(&store, &account, &args).await
        }
        "run" => {
            // The engine as the local server runs it: normal SQLite settings.
            let engine = EmbeddedEngine::start(Some(&args.db)).await?;
            let store = Store::new(local_client(engine.endpoint()), TABLE);
            store.ensure_table().await?;
            run(&store, &account, &args).await
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
    seed_into(&store, account, users).await?;

    database.disable_bulk_loading()?;
    let _ = stop.send(());
    server.await??;
    eprintln!(
        "seeded {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Writes the `users` bench users of `account` through `store`.
async fn seed_into(store: &Store, account: &AccountId, users: usize) -> Result<(), Failure> {
    let base = Timestamp::now().millis() - 7 * users as i64 - 3_600_000;
    let mut tasks = JoinSet::new();
    for first in (0..users).step_by(BATCH) {
        let mut writes = Vec::with_capacity(BATCH);
        for i in first..(first + BATCH).min(users) {
            let item = to_item(&ProfileItem::new(
                account,
                &bench_user(i, base),
                store.index_shards(),
            ))?;
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
    Ok(())
}

/// What one export measured.
struct Measured {
    first: Duration,
    total: Duration,
    rows: usize,
    bytes: u64,
}

/// Counts the rows of CSV written to it (the bench data holds no line
/// breaks inside cells), keeping nothing.
#[derive(Default)]
struct RowCounter(usize);

impl std::io::Write for RowCounter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0 += data.iter().filter(|&&b| b == b'\n').count();
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One streamed export: time to the first chunk, time to the end, rows
/// received (after the header), body bytes.
async fn export_once(
    router: &axum::Router,
    account: &AccountId,
    gzip: bool,
) -> Result<Measured, Failure> {
    use std::io::Write;
    let mut request =
        axum::http::Request::post("/users/export").header("content-type", "application/json");
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let mut request = request.body(Body::from("{}"))?;
    request.extensions_mut().insert(with_account(account));
    let started = Instant::now();
    let response = router.clone().oneshot(request).await?;
    if !response.status().is_success() {
        return Err(format!("export answered {}", response.status()).into());
    }
    let mut body = response.into_body();
    let mut first_chunk = None;
    let mut bytes = 0u64;
    let mut inflate = flate2::write::GzDecoder::new(RowCounter::default());
    let mut plain = RowCounter::default();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            first_chunk.get_or_insert_with(|| started.elapsed());
            bytes += data.len() as u64;
            if gzip {
                inflate.write_all(&data)?;
            } else {
                plain.write_all(&data)?;
            }
        }
    }
    let total = started.elapsed();
    let lines = if gzip { inflate.finish()?.0 } else { plain.0 };
    Ok(Measured {
        first: first_chunk.unwrap_or(total),
        total,
        rows: lines.saturating_sub(1),
        bytes,
    })
}

/// One export job, run to the end in this process: its rows counted in its
/// file.
async fn job_once(store: &Store, account: &AccountId, folder: &Path) -> Result<Measured, Failure> {
    let files = Files::Folder(FolderFiles::new(folder));
    let jobs = Jobs::new(store.clone(), files.clone(), JobConfig::default());
    let started = Instant::now();
    let job = store.create_export_job(account, "{}".to_owned()).await?;
    loop {
        match jobs
            .run(account, job.id, Deadline::after(Duration::from_secs(900)))
            .await?
        {
            RunOutcome::Continues => continue,
            RunOutcome::Finished(ExportJobState::Done) => break,
            other => return Err(format!("the job ended {other:?}").into()),
        }
    }
    let total = started.elapsed();
    let done = store.export_job(account, job.id).await?.ok_or("job gone")?;
    let path = files
        .local_path(done.file.as_deref().ok_or("no file")?)
        .ok_or("no path")?;
    let mut counter = RowCounter::default();
    std::io::copy(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(&path)?),
        &mut counter,
    )?;
    std::fs::remove_file(&path)?;
    Ok(Measured {
        first: total,
        total,
        rows: counter.0.saturating_sub(1),
        bytes: done.bytes,
    })
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

async fn run(store: &Store, account: &AccountId, args: &Args) -> Result<(), Failure> {
    let folder = std::env::temp_dir().join(format!("export-bench-{}", std::process::id()));
    let files = Files::Folder(FolderFiles::new(&folder));
    let router = export_function::router(ExportState::local(AppState::new(store.clone()), files));
    let rss_before = status_kib("VmRSS:")?;
    let (mut firsts, mut totals, mut bytes) = (Vec::new(), Vec::new(), 0);
    for _ in 0..args.repeat {
        let measured = match args.mode {
            Mode::Stream => export_once(&router, account, false).await?,
            Mode::Gzip => export_once(&router, account, true).await?,
            Mode::Job => job_once(store, account, &folder).await?,
        };
        if measured.rows != args.users {
            return Err(format!("exported {} rows of {} users", measured.rows, args.users).into());
        }
        firsts.push(measured.first);
        totals.push(measured.total);
        bytes = measured.bytes;
    }
    let (first, total) = (median(firsts), median(totals));
    let users = args.users;
    println!(
        "mode={} users={users} ttfb_ms={:.1} seconds={:.3} rows_per_s={:.0} bytes_per_row={:.1} rss_before_kib={rss_before} peak_rss_kib={}",
        args.mode.name(),
        first.as_secs_f64() * 1000.0,
        total.as_secs_f64(),
        users as f64 / total.as_secs_f64(),
        bytes as f64 / users as f64,
        status_kib("VmHWM:")?,
    );
    Ok(())
}

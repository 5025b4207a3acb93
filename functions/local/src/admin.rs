//! The operator's commands of `users-api`: `import` a CSV in the export's
//! format, `export` an account as CSV, and `stats` per account.
//!
//! An import is resumable: each row is written under an id seed of its own
//! (the account, the file's SHA-256 and the row's line), so writing a row
//! again finds the user it wrote before instead of making a second one, and
//! `<file>.progress` says how many rows are done, so a run that stopped (a
//! crash, Ctrl-C, a database outage) goes on from there when started again.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use export_function::ExportState;
use export_function::files::Files;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use shared::ApiError;
use shared::http::{AppState, with_account};
use shared::import::ImportColumns;
use shared::model::{AccountId, IdSeed, Timestamp};
use shared::store::{AccountStats, Store};
use tower::ServiceExt;

/// How an import went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows stored by this run.
    pub imported: u64,
    /// Rows a run before this one had done.
    pub done_before: u64,
    /// Rows refused (each reported with its line).
    pub refused: u64,
}

/// Where an import stands, kept beside its file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Progress {
    file_sha256: String,
    account: String,
    /// When the first run began (Unix seconds): the time part of the ids of
    /// rows without a `First Seen`.
    started: i64,
    /// Rows done, from the first.
    done: u64,
}

fn progress_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".progress");
    PathBuf::from(name)
}

/// Rows written at the same time.
pub const IMPORT_CONCURRENCY: usize = 8;
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Imports `file` into `account`, reporting refused rows (with their line
/// numbers) to `refusals` and a progress line to stderr when it is a
/// terminal. Resumes where a run before stopped.
pub async fn import(
    store: &Store,
    account: &AccountId,
    file: &Path,
    refusals: &mut dyn Write,
) -> Result<ImportReport, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("read {}: {e}", file.display()))?;
    let saved = progress_path(file);
    let progress = Progress::resumed(&saved, &bytes, account);
    let csv_of = || {
        csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(bytes.as_slice())
    };
    let headers = csv_of()
        .headers()
        .map_err(|e| format!("{}: {e}", file.display()))?
        .clone();
    let columns = ImportColumns::from_headers(headers.iter())?;
    let total = csv_of().records().count() as u64;
    let done_before = progress.done.min(total);
    let row = RowImport {
        store,
        account,
        columns: &columns,
        file_sha256: &progress.file_sha256.clone(),
        started: progress.started,
    };
    let mut first_lines = FirstLines::default();
    let mut reader = csv_of();
    let rows = reader
        .records()
        .enumerate()
        .skip(progress.done as usize)
        .map(|(index, record)| {
            let earlier = record
                .as_ref()
                .ok()
                .and_then(|record| first_lines.earlier(&columns, record));
            row.store(index, record, earlier)
        });
    let mut rows = futures_util::stream::iter(rows).buffered(IMPORT_CONCURRENCY);
    let mut tally = Tally {
        report: ImportReport {
            done_before,
            ..ImportReport::default()
        },
        bar: Bar::new(total, done_before),
        saved,
        progress,
        last_save: Instant::now(),
        refusals,
    };
    while let Some((index, line, outcome)) = rows.next().await {
        tally.take(index, line, outcome)?;
    }
    tally.finish(total)
}

/// What an import run has done, row by row in file order: its counts, its
/// progress line, and its saved progress.
struct Tally<'a> {
    report: ImportReport,
    bar: Bar,
    saved: PathBuf,
    progress: Progress,
    last_save: Instant,
    refusals: &'a mut dyn Write,
}

impl Tally<'_> {
    /// Counts the row of `index` (at `line`); a row refused is reported, a
    /// row that cannot be written stops the run (its progress saved).
    fn take(
        &mut self,
        index: usize,
        line: u64,
        outcome: Result<(), Refusal>,
    ) -> Result<(), String> {
        match outcome {
            Ok(()) => self.report.imported += 1,
            Err(Refusal::Row(message)) => {
                self.report.refused += 1;
                self.bar.clear();
                let _ = writeln!(self.refusals, "line {line}: {message}");
            }
            Err(Refusal::Stop(message)) => {
                save(&self.saved, &self.progress)?;
                self.bar.clear();
                return Err(format!(
                    "stopped at line {line} ({message}); {} rows are done, run the same import again to go on",
                    self.progress.done
                ));
            }
        }
        self.progress.done = index as u64 + 1;
        self.bar.draw(self.progress.done);
        if self.last_save.elapsed() >= SAVE_EVERY {
            save(&self.saved, &self.progress)?;
            self.last_save = Instant::now();
        }
        Ok(())
    }

    /// The run's report, once all `total` rows are done.
    fn finish(mut self, total: u64) -> Result<ImportReport, String> {
        self.progress.done = total;
        save(&self.saved, &self.progress)?;
        self.bar.clear();
        Ok(self.report)
    }
}

/// The line where each `userId` of the file came first: a `userId` given
/// again later is refused there, whichever of the concurrent writes would
/// land first.
#[derive(Default)]
struct FirstLines(HashMap<String, u64>);

impl FirstLines {
    /// The earlier line of `record`'s `userId`, if it came before.
    fn earlier(&mut self, columns: &ImportColumns, record: &csv::StringRecord) -> Option<u64> {
        let line = record.position().map_or(0, |p| p.line());
        let cells: Vec<&str> = record.iter().collect();
        let user_id = columns.user_id(&cells)?.to_owned();
        match self.0.get(&user_id) {
            Some(&first) => Some(first),
            None => {
                self.0.insert(user_id, line);
                None
            }
        }
    }
}

impl Progress {
    /// Where an import of `bytes` into `account` stands: as saved by a run
    /// before (of the same file and account), or at its start.
    fn resumed(saved: &Path, bytes: &[u8], account: &AccountId) -> Self {
        let file_sha256 = hex::encode(Sha256::digest(bytes));
        std::fs::read(saved)
            .ok()
            .and_then(|text| serde_json::from_slice::<Progress>(&text).ok())
            .filter(|p| p.file_sha256 == file_sha256 && p.account == account.as_str())
            .unwrap_or(Progress {
                file_sha256,
                account: account.to_string(),
                started: Timestamp::now().unix_seconds(),
                done: 0,
            })
    }
}

/// What storing one row needs.
struct RowImport<'a> {
    store: &'a Store,
    account: &'a AccountId,
    columns: &'a ImportColumns,
    file_sha256: &'a str,
    started: i64,
}

impl RowImport<'_> {
    /// Stores the row at `index`; answers its index and line with the outcome.
    /// `earlier` is the line that gave the same `userId` before.
    async fn store(
        &self,
        index: usize,
        record: csv::Result<csv::StringRecord>,
        earlier: Option<u64>,
    ) -> (usize, u64, Result<(), Refusal>) {
        let record = match record {
            Ok(record) => record,
            Err(e) => return (index, 0, Err(Refusal::Row(format!("not CSV: {e}")))),
        };
        let line = record.position().map_or(0, |p| p.line());
        if let Some(first) = earlier {
            let said = format!("User ID: the same as line {first}'s");
            return (index, line, Err(Refusal::Row(said)));
        }
        let cells: Vec<&str> = record.iter().collect();
        let secret = |purpose| row_secret(self.account, self.file_sha256, line, purpose);
        // Read under the row's own seed, so that a generated `userId` is the
        // same in every run.
        let parsed = IdSeed::new(self.started, secret("userId"))
            .scope(async { self.columns.user(&cells) })
            .await;
        let user = match parsed {
            Ok(user) => user,
            Err(errors) => {
                let said: Vec<String> = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                return (index, line, Err(Refusal::Row(said.join("; "))));
            }
        };
        let seconds = user.created_at.map_or(self.started, |at| at.unix_seconds());
        let stored = IdSeed::new(seconds, secret("id"))
            .scope(self.store.create_user(self.account, user))
            .await;
        let outcome = stored.map(|_| ()).map_err(|e| describe_refusal(&e));
        (index, line, outcome)
    }
}

/// Why a row was not stored: its own fault (reported, the import goes on)
/// or the database's (the import stops, to be run again).
enum Refusal {
    Row(String),
    Stop(String),
}

fn describe_refusal(error: &ApiError) -> Refusal {
    match error {
        ApiError::Validation { errors, .. } => Refusal::Row(
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ApiError::Conflict { message, id } => Refusal::Row(match id {
            Some(id) => format!("User ID: {message} (user {id})"),
            None => message.clone(),
        }),
        ApiError::Unavailable { detail } | ApiError::Internal { detail, .. } => {
            Refusal::Stop(detail.clone())
        }
        other => Refusal::Row(other.to_string()),
    }
}

/// What the new ids of one row (`purpose`: its `userId`, its `id`) are drawn
/// from: the account, the file and the row's line.
fn row_secret(account: &AccountId, file_sha256: &str, line: u64, purpose: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"users-api import\n")
        .chain_update(purpose)
        .chain_update(b"\n")
        .chain_update(account.as_str())
        .chain_update(b"\n")
        .chain_update(file_sha256)
        .chain_update(line.to_be_bytes())
        .finalize()
        .into()
}

fn save(path: &Path, progress: &Progress) -> Result<(), String> {
    let text = serde_json::to_vec_pretty(progress).map_err(|e| e.to_string())?;
    let partial = path.with_extension("progress.partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("write {}: {e}", path.display()))
}

/// The progress line on a terminal: rows, share, rate and time left.
struct Bar {
    total: u64,
    from: u64,
    started: Instant,
    drawn: Option<Instant>,
    shown: bool,
}

impl Bar {
    fn new(total: u64, from: u64) -> Self {
        Self {
            total,
            from,
            started: Instant::now(),
            drawn: None,
            shown: std::io::stderr().is_terminal(),
        }
    }

    fn draw(&mut self, done: u64) {
        if !self.shown
            || self
                .drawn
                .is_some_and(|at| at.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.drawn = Some(Instant::now());
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = (done - self.from) as f64 / seconds;
        let left = self.total.saturating_sub(done);
        let eta = if rate > 0.0 {
            (left as f64 / rate) as u64
        } else {
            0
        };
        let share = if self.total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / self.total as f64
        };
        eprint!(
            "\r\x1b[2K{done}/{} rows  {share:.1}%  {rate:.0} rows/s  ETA {}m{:02}s",
            self.total,
            eta / 60,
            eta % 60
        );
    }

    fn clear(&mut self) {
        if self.shown && self.drawn.is_some() {
            eprint!("\r\x1b[2K");
            self.drawn = None;
        }
    }
}

/// Writes `account`'s export (the body of `POST /users/export`, `{}` for
/// every user in every column) to `out`, as the route streams it.
pub async fn export(
    store: &Store,
    files: Files,
    account: &AccountId,
    request: &str,
    out: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let routes = export_function::routes(ExportState::local(AppState::new(store.clone()), files));
    let request = axum::http::Request::post("/users/export")
        .header("content-type", "application/json")
        .extension(with_account(account))
        .body(axum::body::Body::from(request.to_owned()))
        .map_err(|e| e.to_string())?;
    let response = routes.oneshot(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let text = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let said: serde_json::Value = serde_json::from_slice(&text).unwrap_or(json!({}));
        return Err(format!(
            "{status}: {}",
            said["status"]["message"]
                .as_str()
                .unwrap_or("the export failed")
        ));
    }
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("the export failed midway: {e}"))?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data).await.map_err(|e| e.to_string())?;
        }
    }
    out.flush().await.map_err(|e| e.to_string())
}

/// The counts per account, as a table.
pub fn stats_table(stats: &std::collections::BTreeMap<String, AccountStats>) -> String {
    let width = stats
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max("account".len());
    let mut table = format!(
        "{:<width$}  {:>9}  {:>9}  {:>7}\n",
        "account", "users", "segments", "tokens"
    );
    for (account, counts) in stats {
        table += &format!(
            "{account:<width$}  {:>9}  {:>9}  {:>7}\n",
            counts.users, counts.segments, counts.tokens
        );
    }
    table
}

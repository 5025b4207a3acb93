//! The local server and admin CLI behind `cargo run`.
//!
//! [`app`] mounts every function's routes on one router behind an auth layer
//! that resolves tokens as the Lambda authorizer does. [`Backend`] decides
//! where the data lives: the embedded engine on a database file under the
//! data directory, or any DynamoDB endpoint (moto, LocalStack, AWS).

pub mod admin;

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use export_function::ExportState;
use export_function::jobs::Jobs;
use shared::ApiError;
use shared::deadline::Deadline;
use shared::engine::{EmbeddedEngine, local_client};
use shared::http::{AccountLimits, AccountThrottle, authorize, finish, throttle_accounts};
use shared::store::{CleanupConfig, Store};

/// Every route of the API, as API Gateway would route them, behind the auth
/// layer, with no per-account limits. The export state carries the state
/// every function shares.
pub fn app(state: ExportState) -> Router {
    app_with_limits(state, None)
}

/// [`app`] with each account held to `limits`, as API Gateway's usage plan
/// holds it in AWS (`429` with `Retry-After` past them).
pub fn app_with_limits(state: ExportState, limits: Option<AccountLimits>) -> Router {
    let store = state.app.store.clone();
    let shared = state.app.clone();
    let mut routes = users_function::routes(shared.clone())
        .merge(segments_function::routes(shared))
        .merge(export_function::routes(state))
        .route("/openapi.json", axum::routing::get(openapi_document));
    if let Some(limits) = limits {
        routes = routes.layer(axum::middleware::from_fn_with_state(
            AccountThrottle::new(limits),
            throttle_accounts,
        ));
    }
    finish(routes.layer(axum::middleware::from_fn_with_state(store, authorize)))
}

/// The API's OpenAPI document (`openapi.yaml`, as JSON: `scripts/openapi.py`).
pub const OPENAPI_JSON: &str = include_str!("../../../openapi.json");

async fn openapi_document() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON,
    )
}

/// The folder of export files under the data directory (when no bucket is
/// configured).
pub const EXPORTS_FOLDER: &str = "exports";

/// How long one background run of an export job may work.
pub const EXPORT_SWEEP: Duration = Duration::from_secs(60);

/// Runs the export jobs that no task of this process is running (a job a
/// crash interrupted, or one written by another process) in the
/// background, as the export-jobs function does in AWS: a sweep at once,
/// then one every `every`. A job a run of this process holds is left alone.
pub fn export_jobs_in_background(jobs: Jobs, every: Duration) -> tokio::task::JoinHandle<()> {
    sweep_in_background("export jobs", every, move || {
        let jobs = jobs.clone();
        async move {
            let sweep = jobs.sweep(Deadline::after(EXPORT_SWEEP)).await?;
            Ok((sweep.finished, sweep.pending))
        }
    })
}

/// How long one background sweep of the clean-ups may work.
pub const CLEANUP_SWEEP: Duration = Duration::from_secs(30);

/// Finishes pending clean-ups (what deletes leave behind) in the background,
/// as the clean-up function does in AWS: a sweep at once (a clean-up that a
/// crash interrupted resumes at start-up), then one every `every`.
pub fn clean_up_in_background(store: Store, every: Duration) -> tokio::task::JoinHandle<()> {
    sweep_in_background("clean-up", every, move || {
        let store = store.clone();
        async move {
            let sweep = store.run_cleanup(Deadline::after(CLEANUP_SWEEP)).await?;
            Ok((sweep.finished, sweep.pending))
        }
    })
}

/// Runs `sweep` (which answers how many items it finished and left
/// pending) at once and then every `every`, logging what it did; a failed
/// sweep is logged and the next one retries.
fn sweep_in_background<F, Fut>(
    what: &'static str,
    every: Duration,
    sweep: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(usize, usize), ApiError>> + Send,
{
    tokio::spawn(async move {
        loop {
            match sweep().await {
                Ok((finished, pending)) if finished + pending > 0 => {
                    tracing::info!(finished, pending, "{what} sweep")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(error = ?error, "{what} sweep failed; retried later"),
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// The file in the data directory that tells other processes (the CLI) where
/// a running server's embedded engine listens.
pub const ENGINE_FILE: &str = "engine.endpoint";
/// The embedded engine's database file in the data directory.
pub const DATABASE_FILE: &str = "users.db";

/// Where the data lives.
pub enum Backend {
    /// The embedded engine, started by this process.
    Embedded(EmbeddedEngine),
    /// An engine another process runs (a server on the same data directory)
    /// or an external DynamoDB endpoint.
    Remote,
}

/// Connects to the data: `endpoint` when given, else a server already running
/// on `data_dir` (through its engine file), else a new embedded engine on the
/// database file in `data_dir`.
pub async fn connect(
    endpoint: Option<&str>,
    data_dir: &Path,
    table: &str,
    reuse_running: bool,
) -> Result<(Store, Backend), ApiError> {
    if let Some(endpoint) = endpoint {
        return Ok((
            Store::from_env(Some(endpoint), table).await,
            Backend::Remote,
        ));
    }
    if reuse_running && let Some(endpoint) = running_engine(data_dir).await {
        let store =
            Store::new(local_client(&endpoint), table).with_cleanup(CleanupConfig::from_env());
        return Ok((store, Backend::Remote));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| {
        ApiError::internal(format!("create data directory {}: {e}", data_dir.display()))
    })?;
    let engine = EmbeddedEngine::start(Some(&data_dir.join(DATABASE_FILE))).await?;
    let store =
        Store::new(local_client(engine.endpoint()), table).with_cleanup(CleanupConfig::from_env());
    Ok((store, Backend::Embedded(engine)))
}

/// The endpoint of a live engine announced in `data_dir`, if any.
async fn running_engine(data_dir: &Path) -> Option<String> {
    let endpoint = std::fs::read_to_string(data_dir.join(ENGINE_FILE))
        .ok()?
        .trim()
        .to_owned();
    let address = endpoint.strip_prefix("http://")?.to_owned();
    let probe = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::net::TcpStream::connect(address),
    )
    .await;
    matches!(probe, Ok(Ok(_))).then_some(endpoint)
}

/// Announces the embedded engine's endpoint in the data directory; the file
/// goes away with the returned guard.
pub fn announce(data_dir: &Path, engine: &EmbeddedEngine) -> std::io::Result<Announcement> {
    let path = data_dir.join(ENGINE_FILE);
    std::fs::write(&path, engine.endpoint())?;
    Ok(Announcement(path))
}

/// Removes the engine file when dropped.
pub struct Announcement(PathBuf);

impl Drop for Announcement {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

//! The export function: `POST /users/export`, streamed as CSV.
//!
//! A request goes through three stages, and the line between the second and
//! the third is the line between a JSON answer and a CSV one:
//!
//! 1. The body is read (an empty one means `{}`, as the reference's own
//!    example sends none; otherwise the API's JSON body rules apply) and
//!    parsed by [`ExportRequest::parse`]; mistakes are `400` with the fields.
//! 2. The store's page stream ([`Store::export_users`]) is polled for its
//!    first page. Anything that fails up to here (validation, a database that
//!    is unavailable) answers the usual JSON error envelope.
//! 3. The answer starts: `200`, `text/csv`, the header line and the first
//!    page as the first chunk. A task then reads the following pages and
//!    sends one chunk of rows per page through a bounded channel, so it reads
//!    only as fast as the client takes the rows and holds a few pages at
//!    most, whatever the size of the account. A failure from here on ends
//!    the body with an error (logged in the request's span): the client sees
//!    a truncated transfer, never JSON appended to the CSV. A client that
//!    goes away stops the reading.
//!
//! The request's deadline (in Lambda, the invocation's: the function's
//! timeout) is kept [`DEADLINE_MARGIN`] away: past that, no page is read and
//! the body ends with an error, so an export that cannot finish in time is a
//! failed transfer, never a CSV that looks complete but lacks its end.
//!
//! The body is gzip when the request accepts it (`Accept-Encoding`), the
//! CSV as it is otherwise ([`encoding`]).
//!
//! A streamed answer has a byte budget ([`StreamLimits`]): in Lambda a
//! streamed response carries at most 200 MB, so an export that would pass
//! [`LAMBDA_STREAM_BUDGET`] is refused with `413` when its first page already
//! shows it, and otherwise ends with a failed transfer when the next chunk
//! would pass it. Both point to export jobs ([`jobs`]): `POST /users/exports`
//! writes any size to a gzipped file and `GET /users/exports/{id}` tells how
//! far it got and, once done, where to download it. The local server streams
//! without a byte budget.
//!
//! The same router runs under `lambda_http::run_with_streaming_response` in
//! the Lambda and under `axum::serve` in the local server; both stream.
//!
//! [`Store::export_users`]: shared::store::Store::export_users

use std::pin::Pin;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use shared::deadline::Deadline;
use shared::export::{CsvRows, ExportRequest};
use shared::http::{Account, AppState, OptionalJsonBody, finish, keyed};
use shared::model::User;
use shared::{ApiError, ApiResult};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

pub mod encoding;
pub mod files;
mod job_routes;
pub mod jobs;

use encoding::{BodyEncoder, accepts_gzip};
use jobs::Jobs;

/// The media type of the answer.
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";
/// How the answer asks to be saved.
pub const CSV_DISPOSITION: &str = "attachment; filename=\"users.csv\"";
/// Chunks (one page of rows each) that may wait for the client.
pub const CHANNEL_CHUNKS: usize = 2;
/// What the export keeps in hand before its deadline: time to read a page,
/// send it and end the stream.
pub const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Lambda's cap on a streamed response is 200 MB; what the export sends
/// stays under it, with room for the chunk framing and headers.
pub const LAMBDA_STREAM_BUDGET: u64 = 190_000_000;
/// The variable that sets the streamed answer's byte budget (`0`: none).
pub const STREAM_BUDGET_ENV: &str = "EXPORT_STREAM_MAX_BYTES";

/// How much a streamed export may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Most body bytes (compressed, when gzip) of one streamed export;
    /// `None` for no cap.
    pub max_bytes: Option<u64>,
}

impl StreamLimits {
    /// No cap: the local server.
    pub const NONE: Self = Self { max_bytes: None };
    /// Lambda's.
    pub const LAMBDA: Self = Self {
        max_bytes: Some(LAMBDA_STREAM_BUDGET),
    };

    /// `default`, unless [`STREAM_BUDGET_ENV`] says otherwise.
    pub fn from_env(default: Self) -> Self {
        match std::env::var(STREAM_BUDGET_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(0) => Self::NONE,
            Some(bytes) => Self {
                max_bytes: Some(bytes),
            },
            None => default,
        }
    }
}

/// What the export function serves with.
#[derive(Clone, Debug)]
pub struct ExportState {
    pub app: AppState,
    pub stream: StreamLimits,
    pub jobs: Jobs,
}

/// Where export files go in a Lambda without a bucket configured: the
/// instance's own disk, which is only good for trying things out.
pub const LAMBDA_FOLDER: &str = "/tmp/exports";

impl ExportState {
    /// The Lambda's state: Lambda's stream cap (or [`STREAM_BUDGET_ENV`]'s),
    /// files in the bucket of [`files::BUCKET_ENV`]; jobs run in the
    /// export-jobs function, started by the table's stream.
    pub async fn lambda(app: AppState) -> Self {
        let files = files::Files::from_env(LAMBDA_FOLDER.as_ref()).await;
        let jobs = Jobs::new(app.store.clone(), files, jobs::JobConfig::default());
        Self {
            app,
            stream: StreamLimits::from_env(StreamLimits::LAMBDA),
            jobs,
        }
    }

    /// The local server's state: no stream cap, job files in `files`, jobs
    /// run in this process.
    pub fn local(app: AppState, files: files::Files) -> Self {
        let jobs = Jobs::new(
            app.store.clone(),
            files,
            jobs::JobConfig {
                in_process: true,
                ..jobs::JobConfig::default()
            },
        );
        Self {
            app,
            stream: StreamLimits::NONE,
            jobs,
        }
    }
}

/// The routes of this function, without the shared fallbacks and layers.
pub fn routes(state: ExportState) -> Router {
    Router::new()
        .route("/users/export", post(export))
        .merge(keyed(job_routes::routes(), &state.app.store))
        .with_state(state)
}

/// The function's complete router.
pub fn router(state: ExportState) -> Router {
    finish(routes(state))
}

type Pages = Pin<Box<dyn Stream<Item = Result<Vec<User>, ApiError>> + Send>>;
type Chunk = Result<Bytes, std::io::Error>;

async fn export(
    State(state): State<ExportState>,
    Account(account): Account,
    deadline: Option<Extension<Deadline>>,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Response> {
    let started = Instant::now();
    let deadline = deadline.map(|Extension(deadline)| deadline);
    let mut encoder = BodyEncoder::new(accepts_gzip(&headers));
    let request = ExportRequest::parse(&body).map_err(ApiError::validation)?;
    let csv = CsvRows::new(request.fields.clone());
    let mut pages: Pages = Box::pin(state.app.store.export_users(&account, &request));

    // Up to the first page, failures still answer JSON.
    let first = pages.try_next().await?;
    let rows = first.as_ref().map_or(0, Vec::len);
    let content_encoding = encoder.content_encoding();
    let body = first_chunk(&csv, first.as_deref(), &mut encoder)?;
    if first.is_none() {
        tracing::info!(rows, duration_ms = elapsed_ms(started), "export finished");
    }
    let budget = state.stream.max_bytes;
    if budget.is_some_and(|max| body.len() as u64 > max) {
        tracing::info!(
            rows,
            bytes = body.len(),
            "export refused: its first page passes the stream's budget"
        );
        return Err(ApiError::TooLargeToStream);
    }
    let (sender, receiver) = mpsc::channel::<Chunk>(CHANNEL_CHUNKS);
    let sent = body.len() as u64;
    // The channel is new and has room: the first chunk always fits.
    if sender.try_send(Ok(Bytes::from(body))).is_err() {
        return Err(ApiError::internal("export channel refused its first chunk"));
    }
    if first.is_some() {
        let sending = Sending {
            csv,
            encoder,
            sender,
            rows,
            started,
            deadline,
            budget,
            sent,
        };
        tokio::spawn(sending.rest(pages).in_current_span());
    }

    Ok(csv_response(receiver, content_encoding))
}

/// The body's first chunk, encoded: the header line and the rows of the
/// first page, or, when there is no page, the whole body (the encoding
/// finished).
fn first_chunk(
    csv: &CsvRows,
    first: Option<&[User]>,
    encoder: &mut BodyEncoder,
) -> ApiResult<Vec<u8>> {
    let mut chunk = csv.header()?;
    if let Some(page) = first {
        chunk.extend(csv.rows(page)?);
    }
    let mut body = encoder.chunk(chunk).map_err(encoding_error)?.to_vec();
    if first.is_none()
        && let Some(end) = std::mem::replace(encoder, BodyEncoder::Identity)
            .finish()
            .map_err(encoding_error)?
    {
        body.extend_from_slice(&end);
    }
    Ok(body)
}

/// The `200` whose body is what `receiver` is sent, with the CSV's headers.
fn csv_response(
    receiver: mpsc::Receiver<Chunk>,
    content_encoding: Option<&'static str>,
) -> Response {
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(receiver)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(CSV_CONTENT_TYPE),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(CSV_DISPOSITION),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(coding) = content_encoding {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
    }
    response
}

fn encoding_error(error: std::io::Error) -> ApiError {
    ApiError::internal_from("compress export chunk", error)
}

/// Why the sending stopped.
enum Ending {
    /// Every page was sent.
    Complete,
    /// The client went away; reading stopped.
    ClientGone,
    /// The deadline came before the last page: the body ends with an error.
    OutOfTime,
    /// The next chunk would pass the byte budget: the body ends with an error.
    OverBudget,
}

/// The sending of the pages after the first.
struct Sending {
    csv: CsvRows,
    encoder: BodyEncoder,
    sender: mpsc::Sender<Chunk>,
    rows: usize,
    started: Instant,
    deadline: Option<Deadline>,
    /// The byte budget, and the bytes sent so far.
    budget: Option<u64>,
    sent: u64,
}

impl Sending {
    /// Sends the pages after the first, one chunk each, as fast as the
    /// client takes them; a failure, or the deadline, ends the body with an
    /// error.
    async fn rest(mut self, mut pages: Pages) {
        let outcome = self.send_pages(&mut pages).await;
        let (rows, duration_ms) = (self.rows, elapsed_ms(self.started));
        let failure = match outcome {
            Ok(Ending::Complete) => {
                let encoder = std::mem::replace(&mut self.encoder, BodyEncoder::Identity);
                match encoder.finish() {
                    Ok(end) => {
                        if let Some(end) = end {
                            let _ = self.sender.send(Ok(end)).await;
                        }
                        tracing::info!(rows, duration_ms, "export finished");
                        return;
                    }
                    Err(error) => {
                        tracing::error!(rows, duration_ms, error = %error, "export failed to end its compression");
                        "the export failed mid-stream"
                    }
                }
            }
            Ok(Ending::ClientGone) => {
                tracing::info!(rows, duration_ms, "export stopped: the client went away");
                return;
            }
            Ok(Ending::OutOfTime) => {
                tracing::warn!(
                    rows,
                    duration_ms,
                    "export stopped at its deadline; the body ends early"
                );
                "the export ran out of time"
            }
            Ok(Ending::OverBudget) => {
                tracing::warn!(
                    rows,
                    duration_ms,
                    bytes = self.sent,
                    "export stopped at the stream's byte budget; the body ends early (export jobs carry any size)"
                );
                "the export is larger than a streamed answer may be"
            }
            Err(error) => {
                // `Debug` carries the detail the client never sees.
                tracing::error!(rows, duration_ms, error = ?error, "export failed mid-stream; the body ends early");
                "the export failed mid-stream"
            }
        };
        let _ = self.sender.send(Err(std::io::Error::other(failure))).await;
    }

    async fn send_pages(&mut self, pages: &mut Pages) -> ApiResult<Ending> {
        loop {
            let page = match self.deadline {
                None => pages.try_next().await?,
                Some(deadline) => {
                    let left = deadline.remaining().saturating_sub(DEADLINE_MARGIN);
                    if left.is_zero() {
                        return Ok(Ending::OutOfTime);
                    }
                    match tokio::time::timeout(left, pages.try_next()).await {
                        Ok(page) => page?,
                        Err(_) => return Ok(Ending::OutOfTime),
                    }
                }
            };
            let Some(page) = page else {
                return Ok(Ending::Complete);
            };
            let chunk = self
                .encoder
                .chunk(self.csv.rows(&page)?)
                .map_err(encoding_error)?;
            self.sent += chunk.len() as u64;
            if self.budget.is_some_and(|max| self.sent > max) {
                return Ok(Ending::OverBudget);
            }
            if self.sender.send(Ok(chunk)).await.is_err() {
                return Ok(Ending::ClientGone);
            }
            self.rows += page.len();
        }
    }
}

fn elapsed_ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}

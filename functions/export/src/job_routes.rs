//! The routes of export jobs (beyond the reference, like the conversations
//! pages): `POST /users/exports` takes the body of `POST /users/export` and
//! answers `202` with the job's id (and its `Location`); `GET
//! /users/exports/{id}` shows the job; `GET /users/exports/{id}/file` serves a
//! finished file where files live in a folder (the local server; in AWS the
//! job's `url` is a presigned S3 URL instead). A job belongs to its account:
//! another account's job is `404`, as if it did not exist.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use shared::envelope::Envelope;
use shared::export::ExportRequest;
use shared::http::{Account, OptionalJsonBody, PathId};
use shared::model::{ObjectId, Timestamp};
use shared::store::{ExportJob, ExportJobState};
use shared::{ApiError, ApiResult};
use tokio::io::AsyncReadExt;

use crate::ExportState;
use crate::files::{Download, FILE_CONTENT_TYPE, FILE_DISPOSITION};

pub(crate) fn routes() -> Router<ExportState> {
    Router::new()
        .route("/users/exports", post(create_job))
        .route("/users/exports/{id}", get(job_status))
        .route("/users/exports/{id}/file", get(job_file))
}

/// A job as `GET /users/exports/{id}` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: ObjectId,
    /// `pending`, `running`, `done` or `failed`.
    pub status: &'static str,
    /// Rows written so far; all of them once done.
    pub rows: u64,
    /// Bytes of the gzipped file so far.
    pub bytes: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// When the job and its file are removed.
    pub expires_at: Timestamp,
    /// Where to download the file (gzipped CSV), once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When `url` stops working (a presigned URL); absent for the local
    /// server's route, which takes the account's token instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_expires_at: Option<Timestamp>,
    /// Why a failed job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

async fn create_job(
    State(state): State<ExportState>,
    Account(account): Account,
    OptionalJsonBody(body): OptionalJsonBody,
) -> ApiResult<Response> {
    ExportRequest::parse(&body).map_err(ApiError::validation)?;
    let text = serde_json::to_string(&body)
        .map_err(|e| ApiError::internal_from("serialize export request", e))?;
    let job = state.app.store.create_export_job(&account, text).await?;
    tracing::info!(job = %job.id, "export job created");
    if state.jobs.config().in_process {
        state.jobs.run_in_background(account, job.id);
    }
    let mut envelope = Envelope::success(Some(job.id.to_string()));
    envelope.status.code = StatusCode::ACCEPTED.as_u16();
    let location = HeaderValue::from_str(&format!("/users/exports/{}", job.id))
        .map_err(|e| ApiError::internal_from("location header", e))?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(envelope),
    )
        .into_response())
}

async fn job_of(state: &ExportState, account: &Account, id: ObjectId) -> ApiResult<ExportJob> {
    state
        .app
        .store
        .export_job(&account.0, id)
        .await?
        .filter(|job| job.expires_at > Timestamp::now().unix_seconds())
        .ok_or_else(|| ApiError::not_found("export job"))
}

async fn job_status(
    State(state): State<ExportState>,
    account: Account,
    PathId(id): PathId,
    headers: HeaderMap,
) -> ApiResult<Json<JobView>> {
    let job = job_of(&state, &account, id).await?;
    let (mut url, mut url_expires_at) = (None, None);
    if let (ExportJobState::Done, Some(file)) = (job.state, &job.file) {
        match state.jobs.files().download(file).await? {
            Download::Presigned {
                url: link,
                expires_in,
            } => {
                url = Some(link);
                url_expires_at = Some(Timestamp::from_millis(
                    Timestamp::now().millis() + expires_in.as_millis() as i64,
                ));
            }
            Download::Served => {
                let path = format!("/users/exports/{id}/file");
                url = Some(
                    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
                        Some(host) => format!("http://{host}{path}"),
                        None => path,
                    },
                );
            }
        }
    }
    Ok(Json(JobView {
        id: job.id,
        status: job.state.as_str(),
        rows: job.rows,
        bytes: job.bytes,
        created_at: job.created(),
        updated_at: job.updated(),
        finished_at: job.finished(),
        expires_at: job.expires(),
        url,
        url_expires_at,
        error: job.error.clone(),
    }))
}

/// Bytes read from the file per body chunk.
const FILE_CHUNK: usize = 256 * 1024;

async fn job_file(
    State(state): State<ExportState>,
    account: Account,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let job = job_of(&state, &account, id).await?;
    let (ExportJobState::Done, Some(file)) = (job.state, &job.file) else {
        // The job is there; its file is not, yet (or, failed, never).
        return Err(ApiError::Conflict {
            message: format!(
                "the export job is {}: its file is there once it is done",
                job.state.as_str()
            ),
            id: None,
        });
    };
    let Some(path) = state.jobs.files().local_path(file) else {
        return Err(ApiError::NotFound(
            "export files are downloaded from the job's url".into(),
        ));
    };
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::internal(format!("open {}: {e}", path.display())))?;
    let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
        let mut chunk = Vec::with_capacity(FILE_CHUNK);
        let read = (&mut file)
            .take(FILE_CHUNK as u64)
            .read_to_end(&mut chunk)
            .await?;
        Ok::<_, std::io::Error>((read > 0).then(|| (bytes::Bytes::from(chunk), file)))
    });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(FILE_CONTENT_TYPE),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static(FILE_DISPOSITION),
            ),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

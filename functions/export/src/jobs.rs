//! Export jobs: exports of any size, written to a gzipped CSV file instead
//! of a streamed answer (`POST /users/exports`, `GET /users/exports/{id}`).
//!
//! A job is *run* in one or more runs, each within a deadline (in AWS an
//! invocation of the export-jobs function, up to 15 minutes; locally a
//! background task). A run:
//!
//! 1. takes the job's lease (`shared::store` `export_jobs`), so it is the only
//!    one working on it;
//! 2. reads the export from where the last run stopped
//!    ([`ExportPosition`]), compresses the rows into one gzip *member*, and
//!    uploads a part of the file's multipart upload each time
//!    [`JobConfig::part_bytes`] of it are ready;
//! 3. at the end of the users, uploads the rest as the last part, completes
//!    the upload and marks the job done; at its deadline instead, ends the
//!    gzip member, stores what is not in a part yet as a small *tail*
//!    object, and saves the position, the part count and the tail's key with
//!    the job. The next run starts its first part with that tail.
//!
//! The file is therefore a gzip member per run, one after the other, which
//! is a valid gzip file (RFC 1952 allows several members; `gunzip`, Python,
//! browsers and spreadsheets read it as one). A run that dies before saving
//! leaves the job as the previous run saved it: the next run repeats the
//! lost work and writes the same part numbers again, which replaces them.
//! Every run hands out at least one page, so a job always progresses.
//!
//! A `lastSeen` export reads a snapshot whose history lives one hour
//! (ghosts, see `store::list`): a job that would need longer fails with a
//! clear reason instead of missing users.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use shared::ApiError;
use shared::deadline::Deadline;
use shared::export::{CsvRows, ExportRequest};
use shared::filter::SortField;
use shared::model::{AccountId, ObjectId, Timestamp};
use shared::store::{
    ExportJob, ExportJobState, ExportPosition, ExportReader, GHOST_LIFETIME_SECONDS, Lease, Store,
};

use crate::files::Files;

/// What a run keeps in hand before its deadline: time to end the member,
/// store the tail and save the job.
pub const RUN_MARGIN: Duration = Duration::from_secs(10);
/// How often a run writes its row count for `GET /users/exports/{id}`.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// How long past its run's deadline a lease lasts (a crashed run's job is
/// taken up again after that).
pub const LEASE_SLACK: Duration = Duration::from_secs(30);

/// How jobs run.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Bytes of compressed CSV per uploaded part (at least the backend's
    /// minimum, 5 MiB on S3).
    pub part_bytes: usize,
    /// How long one run of the local server's worker works before it saves
    /// the job and starts the next run.
    pub run_time: Duration,
    /// Whether a new job starts running in this process at once (the local
    /// server); in AWS the table's stream starts the export-jobs function.
    pub in_process: bool,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self {
            part_bytes: 8 * 1024 * 1024,
            run_time: Duration::from_secs(60),
            in_process: false,
        }
    }
}

/// Export jobs: the store, where files go, and how runs go.
#[derive(Clone, Debug)]
pub struct Jobs {
    store: Store,
    files: Files,
    config: JobConfig,
}

/// How one run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The job is done or failed.
    Finished(ExportJobState),
    /// Saved at the deadline; another run goes on.
    Continues,
    /// Another worker holds the job.
    Busy,
    /// No such job.
    Gone,
}

/// What a sweep of the unfinished jobs did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobSweep {
    pub finished: usize,
    pub pending: usize,
    pub busy: usize,
}

/// The key of a job's file (account and job ids only: no client text).
pub fn file_key(account: &AccountId, id: ObjectId) -> String {
    format!("exports/{account}/{id}.csv.gz")
}

impl Jobs {
    pub fn new(store: Store, files: Files, mut config: JobConfig) -> Self {
        config.part_bytes = config.part_bytes.max(files.min_part_bytes());
        Self {
            store,
            files,
            config,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn files(&self) -> &Files {
        &self.files
    }

    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    /// Runs the job in this process, one run after another, until it is
    /// finished or another worker has it (local server). Failures are
    /// logged: the job stays for the background sweep.
    pub fn run_in_background(&self, account: AccountId, id: ObjectId) {
        let jobs = self.clone();
        tokio::spawn(async move {
            loop {
                let deadline = Deadline::after(jobs.config.run_time + RUN_MARGIN);
                match jobs.run(&account, id, deadline).await {
                    Ok(RunOutcome::Continues) => continue,
                    Ok(outcome) => {
                        tracing::info!(?outcome, "export job run ended");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(error = ?error, "export job run failed; the sweep retries it");
                        return;
                    }
                }
            }
        });
    }

    /// Runs every unfinished job in turn until `deadline`; a job left
    /// unfinished has its pointer touched, so that in AWS the stream starts
    /// another invocation for it.
    pub async fn sweep(&self, deadline: Deadline) -> Result<JobSweep, ApiError> {
        let mut sweep = JobSweep::default();
        for (account, id) in self.store.unfinished_export_jobs().await? {
            if deadline.is_within(RUN_MARGIN + Duration::from_secs(1)) {
                // No time for it in this invocation: touched, so that the
                // stream starts another one for it (a job's run does the
                // same when it stops at its deadline).
                sweep.pending += 1;
                if let Some(job) = self.store.export_job(&account, id).await? {
                    self.store.touch_export_pointer(&job).await?;
                }
                continue;
            }
            match self.run(&account, id, deadline).await {
                Ok(RunOutcome::Finished(_)) => sweep.finished += 1,
                Ok(RunOutcome::Continues) => sweep.pending += 1,
                Ok(RunOutcome::Busy) => sweep.busy += 1,
                Ok(RunOutcome::Gone) => {}
                Err(error) => {
                    tracing::warn!(error = ?error, "an export job run failed; retried later");
                    sweep.pending += 1;
                }
            }
        }
        Ok(sweep)
    }

    /// One run of the job `id` of `account`, within `deadline`.
    pub async fn run(
        &self,
        account: &AccountId,
        id: ObjectId,
        deadline: Deadline,
    ) -> Result<RunOutcome, ApiError> {
        let lease_end = Timestamp::from_millis(
            Timestamp::now().millis() + (deadline.remaining() + LEASE_SLACK).as_millis() as i64,
        );
        let mut job = match self.store.lease_export_job(account, id, lease_end).await? {
            Lease::Taken(job) => job,
            Lease::Held => return Ok(RunOutcome::Busy),
            Lease::Gone => return Ok(RunOutcome::Gone),
            Lease::Finished(job) => {
                self.store.drop_export_pointer(&job).await?;
                return Ok(RunOutcome::Finished(job.state));
            }
        };
        let token = job.lease.clone().unwrap_or_default();
        let run = Run {
            jobs: self,
            account,
            token: &token,
            deadline,
        };
        match run.work(&mut job).await {
            Ok(outcome) => Ok(outcome),
            // The database or the bucket is away for now: the job stays as
            // the last run saved it, its lease runs out, a later run retries.
            Err(error @ ApiError::Unavailable { .. }) => Err(error),
            Err(error) => {
                tracing::error!(error = ?error, job = %id, "export job failed");
                run.fail(&mut job, "the export failed; start a new one")
                    .await
            }
        }
    }
}

/// What an invocation of the export-jobs function keeps in hand before its
/// deadline, on top of [`RUN_MARGIN`].
pub const INVOCATION_MARGIN: Duration = Duration::from_secs(2);

/// The export-jobs function's answer to any event (the table's stream, the
/// schedule): every unfinished job, until each is finished or the
/// invocation's deadline is near. A failure is logged and answered as a
/// summary, not as an error: the jobs stay in the table for the next event.
pub async fn handle(
    jobs: &Jobs,
    event: lambda_runtime::LambdaEvent<Value>,
) -> Result<Value, lambda_runtime::Error> {
    let deadline =
        Deadline::at(Deadline::of_invocation(&event.context).instant() - INVOCATION_MARGIN);
    Ok(match jobs.sweep(deadline).await {
        Ok(sweep) => {
            tracing::info!(
                finished = sweep.finished,
                pending = sweep.pending,
                busy = sweep.busy,
                "export jobs sweep"
            );
            serde_json::json!({ "finished": sweep.finished, "pending": sweep.pending, "busy": sweep.busy })
        }
        Err(error) => {
            tracing::warn!(error = ?error, "export jobs sweep failed; the jobs stay for the next one");
            serde_json::json!({ "failed": error.to_string() })
        }
    })
}

/// One run's context.
struct Run<'a> {
    jobs: &'a Jobs,
    account: &'a AccountId,
    token: &'a str,
    deadline: Deadline,
}

/// Most parts a file may have: their tags stay in the job item (about 40
/// bytes each), and 2,000 parts of 8 MiB are 16 GB of gzipped CSV.
pub const MAX_PARTS: u32 = 2_000;

/// What a run has written so far.
struct Written {
    parts: u32,
    tags: Vec<String>,
    rows: u64,
    bytes: u64,
    /// Compressed bytes not in a part yet.
    pending: Vec<u8>,
}

/// The file a run writes to: its key, and the multipart upload under way.
struct Target {
    key: String,
    upload: String,
}

impl Run<'_> {
    /// One run of `job`: from where the last run stopped, page after page,
    /// until the job is done or the deadline is near (then the next run
    /// takes over).
    async fn work(&self, job: &mut ExportJob) -> Result<RunOutcome, ApiError> {
        let request = stored_request(job)?;
        if request.sort.field == SortField::LastSeen
            && Timestamp::now().millis() > job.as_of + GHOST_LIFETIME_SECONDS * 1000
        {
            return self
                .fail(
                    job,
                    "the export took longer than its lastSeen snapshot lasts (1 hour); start a new one, or sort by createdAt",
                )
                .await;
        }
        let files = &self.jobs.files;
        let key = file_key(self.account, job.id);
        let upload = match &job.upload {
            Some(upload) => upload.clone(),
            None => files.start(&key).await?,
        };
        let target = Target { key, upload };
        let position = match &job.position {
            Some(text) => ExportPosition::from_json(text)?,
            None => ExportPosition::Start,
        };
        let mut written = self.written_before(job).await?;
        let header = position == ExportPosition::Start;
        let as_of = Timestamp::from_millis(job.as_of);
        let mut reader = self
            .jobs
            .store
            .export_reader(self.account, &request, as_of, position);
        let csv = CsvRows::new(request.fields.clone());
        let Some(finished) = self
            .write_pages(job, &csv, header, &mut reader, &target, &mut written)
            .await?
        else {
            return Ok(RunOutcome::Busy);
        };
        job.upload = Some(target.upload.clone());
        let old_tail = job.tail.take();
        let outcome = if finished {
            self.complete(job, target, written).await?
        } else {
            self.hand_over(job, &target, written, &reader).await?
        };
        if let Some(old) = old_tail {
            // Only a leftover if this fails; the bucket's lifecycle takes it.
            if let Err(error) = files.delete(&old).await {
                tracing::warn!(error = ?error, "could not remove an export job's old tail");
            }
        }
        Ok(outcome)
    }

    /// What the job's earlier runs wrote: parts, rows, bytes, and the
    /// compressed tail not in a part yet.
    async fn written_before(&self, job: &ExportJob) -> Result<Written, ApiError> {
        let pending = match &job.tail {
            Some(tail) => self
                .jobs
                .files
                .get(tail)
                .await?
                .ok_or_else(|| ApiError::internal("an export job's tail is missing"))?
                .to_vec(),
            None => Vec::new(),
        };
        Ok(Written {
            parts: job.parts,
            tags: job.tags.iter().take(job.parts as usize).cloned().collect(),
            rows: job.resume_rows,
            bytes: job.bytes,
            pending,
        })
    }

    /// Writes pages of rows (one gzip member per run, the header first on
    /// the first run) until the rows end (`Some(true)`) or the deadline is
    /// near (`Some(false)`); `None` when another worker took the job.
    async fn write_pages(
        &self,
        job: &ExportJob,
        csv: &CsvRows,
        header: bool,
        reader: &mut ExportReader,
        target: &Target,
        written: &mut Written,
    ) -> Result<Option<bool>, ApiError> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        if header {
            encoder.write_all(&csv.header()?).map_err(compress_error)?;
        }
        let mut reported = Instant::now();
        let mut first = true;
        let finished = loop {
            if !first && self.deadline.is_within(RUN_MARGIN) {
                break false;
            }
            first = false;
            let Some(page) = reader.next_page().await? else {
                break true;
            };
            encoder
                .write_all(&csv.rows(&page)?)
                .map_err(compress_error)?;
            written.rows += page.len() as u64;
            if written.pending.len() + encoder.get_ref().len() >= self.jobs.config.part_bytes {
                written.pending.extend(std::mem::take(encoder.get_mut()));
                self.upload_part(target, written).await?;
            }
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                let mut progress = job.clone();
                progress.rows = written.rows;
                progress.updated_at = Timestamp::now().millis();
                if !self
                    .jobs
                    .store
                    .save_export_job(&progress, self.token)
                    .await?
                {
                    return Ok(None);
                }
            }
        };
        // The run's gzip member ends here, whatever comes next.
        written
            .pending
            .extend(encoder.finish().map_err(compress_error)?);
        Ok(Some(finished))
    }

    /// The rows have ended: the last part, the file completed, the job done.
    async fn complete(
        &self,
        job: &mut ExportJob,
        target: Target,
        mut written: Written,
    ) -> Result<RunOutcome, ApiError> {
        self.upload_part(&target, &mut written).await?;
        let files = &self.jobs.files;
        files
            .complete(&target.key, &target.upload, &written.tags)
            .await?;
        job.state = ExportJobState::Done;
        job.file = Some(target.key);
        job.upload = None;
        job.position = None;
        job.parts = written.parts;
        job.tags = Vec::new();
        job.rows = written.rows;
        job.bytes = written.bytes;
        let now = Timestamp::now().millis();
        job.updated_at = now;
        job.finished_at = Some(now);
        if !self.jobs.store.close_export_job(job, self.token).await? {
            return Ok(RunOutcome::Busy);
        }
        tracing::info!(
            rows = job.rows,
            bytes = job.bytes,
            runs = job.runs,
            "export job done"
        );
        Ok(RunOutcome::Finished(ExportJobState::Done))
    }

    /// The deadline is near: the tail and the position saved, the job given
    /// back for the next run.
    async fn hand_over(
        &self,
        job: &mut ExportJob,
        target: &Target,
        written: Written,
        reader: &ExportReader,
    ) -> Result<RunOutcome, ApiError> {
        let tail = format!("{}.run{}", target.key, job.runs);
        self.jobs
            .files
            .put(&tail, Bytes::from(written.pending))
            .await?;
        job.tail = Some(tail);
        job.position = Some(reader.position().to_json()?);
        job.parts = written.parts;
        job.tags = written.tags;
        job.rows = written.rows;
        job.resume_rows = written.rows;
        job.bytes = written.bytes;
        job.updated_at = Timestamp::now().millis();
        // Given back: the next run may start at once.
        job.lease_until = Some(job.updated_at);
        if !self.jobs.store.save_export_job(job, self.token).await? {
            return Ok(RunOutcome::Busy);
        }
        self.jobs.store.touch_export_pointer(job).await?;
        tracing::info!(
            rows = job.rows,
            parts = job.parts,
            "export job goes on in another run"
        );
        Ok(RunOutcome::Continues)
    }

    async fn upload_part(&self, target: &Target, written: &mut Written) -> Result<(), ApiError> {
        if written.parts >= MAX_PARTS {
            return Err(ApiError::internal(format!(
                "an export job's file passed {MAX_PARTS} parts"
            )));
        }
        let part = Bytes::from(std::mem::take(&mut written.pending));
        written.parts += 1;
        written.bytes += part.len() as u64;
        let tag = self
            .jobs
            .files
            .put_part(&target.key, &target.upload, written.parts, part)
            .await?;
        written.tags.push(tag);
        Ok(())
    }

    /// Marks the job failed with `reason` (shown to the client).
    async fn fail(&self, job: &mut ExportJob, reason: &str) -> Result<RunOutcome, ApiError> {
        job.state = ExportJobState::Failed;
        job.error = Some(reason.to_owned());
        let now = Timestamp::now().millis();
        job.updated_at = now;
        job.finished_at = Some(now);
        job.upload = None;
        job.position = None;
        job.tags = Vec::new();
        if !self.jobs.store.close_export_job(job, self.token).await? {
            return Ok(RunOutcome::Busy);
        }
        Ok(RunOutcome::Finished(ExportJobState::Failed))
    }
}

/// The export request a job was started with, as it was stored.
fn stored_request(job: &ExportJob) -> Result<ExportRequest, ApiError> {
    let body: Value = serde_json::from_str(&job.request)
        .map_err(|e| ApiError::internal_from("stored export request", e))?;
    ExportRequest::parse(&body)
        .map_err(|_| ApiError::internal("a stored export request no longer parses"))
}

fn compress_error(error: std::io::Error) -> ApiError {
    ApiError::internal_from("compress export rows", error)
}

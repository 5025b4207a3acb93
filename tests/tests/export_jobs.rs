//! Export jobs (`POST /users/exports`, `GET /users/exports/{id}`) and the
//! streamed export's byte budget, on the embedded engine or moto; the files
//! go to a folder, or to moto's S3 when `USERS_API_TEST_S3_ENDPOINT` is set
//! (scripts/test.sh does on the moto run).

use std::io::Read;
use std::time::Duration;

use axum::body::Body;
use flate2::read::MultiGzDecoder;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::deadline::Deadline;
use shared::model::{AccountId, ObjectId};
use shared::store::ExportJobState;
use tower::ServiceExt;
use users_api_tests::{
    Client, NewUser, TestApi, assert_error, error_fields, seed_users, test_export_state,
};

use export_function::files::Files;
use export_function::jobs::{JobConfig, Jobs, RunOutcome};
use export_function::{ExportState, StreamLimits};

/// `count` users of `account`, `user-00000` first, each with a name.
async fn seed(api: &TestApi, account: &str, count: usize) {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let users = (0..count)
        .map(|i| NewUser::new(format!("user-{i:05}")).with("default_name", format!("User {i}")))
        .collect();
    seed_users(&api.store, account, users).await;
}

/// Polls the job until it is finished (or a minute has passed).
async fn finished_job(client: &Client, id: &str) -> Value {
    for _ in 0..1200 {
        let answer = client.get(&format!("/users/exports/{id}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        if matches!(answer.body["status"].as_str(), Some("done" | "failed")) {
            return answer.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the export job {id} did not finish within a minute");
}

/// Starts a job; its id.
async fn start_job(client: &Client, body: Value) -> String {
    let answer = client.post("/users/exports", body).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text);
    assert_eq!(answer.body["status"]["code"], 202);
    let id = answer.body["id"].as_str().expect("a job id").to_owned();
    assert_eq!(
        answer.headers[header::LOCATION].to_str().unwrap(),
        format!("/users/exports/{id}")
    );
    id
}

/// The bytes behind a finished job's `url`: the local server's route (with
/// the token) for a folder, the presigned URL itself (no credentials) for S3.
async fn download(api: &TestApi, client: &Client, job: &Value) -> Vec<u8> {
    let url = job["url"].as_str().expect("a done job has a url");
    match &api.files {
        Files::Folder(_) => {
            assert!(job.get("urlExpiresAt").is_none());
            let path = &url[url.find("/users/").expect("the route")..];
            let (status, bytes) = get_bytes(api, client.request(Method::GET, path)).await;
            assert_eq!(status, StatusCode::OK);
            bytes
        }
        Files::S3(_) => {
            assert!(job["urlExpiresAt"].is_string());
            let (status, bytes) = http_get(url).await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
            bytes
        }
    }
}

/// The status and the raw bytes of `request` (a file is not JSON).
async fn get_bytes(api: &TestApi, request: http::request::Builder) -> (StatusCode, Vec<u8>) {
    let request = request.header(header::HOST, "localhost:3000");
    let response = api
        .app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, bytes.to_vec())
}

/// A plain HTTP/1.1 GET of an `http://` URL, as a browser following the
/// presigned link would send it: status and body.
async fn http_get(url: &str) -> (u16, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let mut body = answer[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[line_end + 2..line_end + 2 + size]);
        data = &data[line_end + 2 + size + 2..];
    }
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    MultiGzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a complete gzip file");
    text
}

/// A streamed export through `router`: status, and the body or the error
/// that ended it.
async fn stream_export(
    client: &Client,
    state: ExportState,
    body: Value,
) -> (StatusCode, Result<String, String>) {
    let router = users_api::app(state);
    let request = client
        .request(Method::POST, "/users/export")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => text.extend(frame.into_data().unwrap_or_default()),
            Err(error) => return (status, Err(error.to_string())),
        }
    }
    (status, Ok(String::from_utf8(text).unwrap()))
}

fn with_stream_budget(api: &TestApi, bytes: u64) -> ExportState {
    ExportState {
        stream: StreamLimits {
            max_bytes: Some(bytes),
        },
        ..test_export_state(&api.store, api.files.clone())
    }
}

#[tokio::test]
async fn a_stream_over_its_byte_budget_fails_visibly_and_a_job_exports_every_user() {
    // GIVEN an account of 600 users, and a stream budget that holds the
    // first page of rows (250 × 12 bytes) but not all of them
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    seed(&api, "acme", 600).await;
    let body = json!({"fields": ["userId"], "sort": {"field": "createdAt", "order": "asc"}});

    // WHEN it is streamed THEN the body ends with an error, not a CSV
    // that looks complete
    let (status, outcome) =
        stream_export(&acme, with_stream_budget(&api, 5_000), body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(outcome.is_err(), "a stream over its budget ended cleanly");

    // WHEN the budget cannot hold even the first page THEN it is refused
    // up front, pointing to export jobs
    let (status, outcome) =
        stream_export(&acme, with_stream_budget(&api, 1_000), body.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let envelope: Value = serde_json::from_str(&outcome.unwrap()).unwrap();
    assert_eq!(envelope["status"]["code"], 413);
    assert!(
        envelope["status"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /users/exports"),
        "{envelope}"
    );

    // WHEN the same export runs as a job THEN its file holds every user
    let id = start_job(&acme, body).await;
    let job = finished_job(&acme, &id).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["rows"], 600);
    assert!(job["bytes"].as_u64().unwrap() > 0);
    let text = gunzip(&download(&api, &acme, &job).await);
    let expected: String = std::iter::once("User ID\r\n".to_owned())
        .chain((0..600).map(|i| format!("user-{i:05}\r\n")))
        .collect();
    assert_eq!(text, expected);
}

#[tokio::test]
async fn a_job_file_matches_the_streamed_export_row_for_row() {
    // GIVEN users whose cells need quoting, guarding and UTF-8
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    for (i, name) in [
        "Zoë, \"the\" first",
        "=cmd|' /C calc'!A0",
        "line\nbreak",
        "żółw 🐢",
    ]
    .iter()
    .enumerate()
    {
        acme.create_user(
            NewUser::new(format!("u{i}"))
                .with("default_name", *name)
                .with("default_email", format!("u{i}@example.com"))
                .with("plan", "pro"),
        )
        .await;
    }
    for body in [
        json!({}),
        json!({"fields": ["default_email", "lastSeen", "userId"], "sort": {"field": "lastSeen", "order": "asc"}}),
    ] {
        // WHEN the same body is streamed and run as a job
        let (status, streamed) = stream_export(
            &acme,
            test_export_state(&api.store, api.files.clone()),
            body.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let id = start_job(&acme, body).await;
        let job = finished_job(&acme, &id).await;
        assert_eq!(job["rows"], 4);

        // THEN the file, unzipped, is the streamed CSV byte for byte
        assert_eq!(
            gunzip(&download(&api, &acme, &job).await),
            streamed.unwrap()
        );
    }
}

#[tokio::test]
async fn another_account_cannot_see_or_fetch_a_job() {
    let api = TestApi::new().await;
    let owner = api.client("acme").await;
    let other = api.client("globex").await;
    seed(&api, "acme", 3).await;
    let id = start_job(&owner, json!({})).await;
    let job = finished_job(&owner, &id).await;
    assert_eq!(job["status"], "done");

    assert_error(&other.get(&format!("/users/exports/{id}")).await, 404);
    let (status, _) = get_bytes(
        &api,
        other.request(Method::GET, &format!("/users/exports/{id}/file")),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get_bytes(&api, Request::get(format!("/users/exports/{id}/file"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // And the owner's view of another account's export jobs is just as empty.
    let theirs = start_job(&other, json!({})).await;
    assert_error(&owner.get(&format!("/users/exports/{theirs}")).await, 404);
}

#[tokio::test]
async fn a_job_request_is_validated_like_the_export() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let answer = acme
        .post(
            "/users/exports",
            json!({"fields": ["nope"], "sort": {"order": "up"}}),
        )
        .await;
    assert_error(&answer, 400);
    let fields = error_fields(&answer);
    assert!(fields.iter().any(|f| f.starts_with("fields")), "{fields:?}");
    assert!(fields.iter().any(|f| f.starts_with("sort")), "{fields:?}");
    assert_error(&acme.get("/users/exports/nope").await, 400);
    assert_error(
        &acme
            .get(&format!("/users/exports/{}", ObjectId::new()))
            .await,
        404,
    );
}

#[tokio::test]
async fn a_job_goes_on_across_runs_and_its_file_is_whole() {
    // GIVEN 700 users and a worker whose runs each end after one page
    // (a deadline already passed: every run still hands out one page)
    let api = TestApi::new().await;
    seed(&api, "acme", 700).await;
    let account = AccountId::parse("acme").unwrap();
    let jobs = Jobs::new(
        api.store.clone(),
        api.files.clone(),
        JobConfig {
            part_bytes: 1_000,
            ..JobConfig::default()
        },
    );
    let request = json!({"fields": ["userId", "default_name"], "sort": {"order": "asc"}});
    let job = api
        .store
        .create_export_job(&account, request.to_string())
        .await
        .unwrap();

    // WHEN runs follow one another until it is finished
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 20, "the job made no progress");
        match jobs
            .run(&account, job.id, Deadline::after(Duration::ZERO))
            .await
            .unwrap()
        {
            RunOutcome::Continues => {
                let saved = saved(&api, &account, job.id).await;
                assert_eq!(saved.state, ExportJobState::Running);
                assert!(saved.position.is_some() && saved.tail.is_some());
            }
            RunOutcome::Finished(state) => {
                assert_eq!(state, ExportJobState::Done);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // THEN it took several runs, and the file (one gzip member per run)
    // holds every user once, in order
    assert!(runs >= 3, "{runs} runs");
    let done = saved(&api, &account, job.id).await;
    assert_eq!(done.rows, 700);
    assert!(done.tail.is_none() && done.upload.is_none());
    if matches!(api.files, Files::Folder(_)) {
        assert!(done.parts > 1, "{} parts", done.parts);
    }
    let acme = api.client("acme").await;
    let view = acme.get(&format!("/users/exports/{}", job.id)).await;
    let text = gunzip(&download(&api, &acme, &view.body).await);
    let expected: String = std::iter::once("User ID,Name\r\n".to_owned())
        .chain((0..700).map(|i| format!("user-{i:05},User {i}\r\n")))
        .collect();
    assert_eq!(text, expected);

    // AND a worker that finds it finished only drops its pointer.
    assert_eq!(
        jobs.run(&account, job.id, Deadline::after(Duration::from_secs(5)))
            .await
            .unwrap(),
        RunOutcome::Finished(ExportJobState::Done)
    );
    assert_eq!(sweep_now(&jobs).await.pending, 0);
}

/// An account of 10 users, a worker with the default configuration, and a
/// job (`{}`) written but not run.
async fn ten_users_and_a_job() -> (TestApi, AccountId, Jobs, shared::store::ExportJob) {
    let api = TestApi::new().await;
    seed(&api, "acme", 10).await;
    let account = AccountId::parse("acme").unwrap();
    let jobs = Jobs::new(api.store.clone(), api.files.clone(), JobConfig::default());
    let job = api
        .store
        .create_export_job(&account, "{}".to_owned())
        .await
        .unwrap();
    (api, account, jobs, job)
}

/// The job as stored now.
async fn saved(api: &TestApi, account: &AccountId, id: ObjectId) -> shared::store::ExportJob {
    api.store
        .export_job(account, id)
        .await
        .unwrap()
        .expect("the job")
}

/// One sweep of the unfinished jobs, with 30 s to work.
async fn sweep_now(jobs: &Jobs) -> export_function::jobs::JobSweep {
    jobs.sweep(Deadline::after(Duration::from_secs(30)))
        .await
        .unwrap()
}

/// The job as another worker's lease until `until` leaves it.
async fn taken(
    api: &TestApi,
    account: &AccountId,
    id: ObjectId,
    until: shared::model::Timestamp,
) -> shared::store::ExportJob {
    match api
        .store
        .lease_export_job(account, id, until)
        .await
        .unwrap()
    {
        shared::store::Lease::Taken(job) => job,
        other => panic!("the first lease is taken, not {other:?}"),
    }
}

#[tokio::test]
async fn a_job_held_by_another_worker_is_left_alone() {
    let (api, account, jobs, job) = ten_users_and_a_job().await;
    // Another worker's lease, for a minute.
    let until =
        shared::model::Timestamp::from_millis(shared::model::Timestamp::now().millis() + 60_000);
    taken(&api, &account, job.id, until).await;
    assert_eq!(
        jobs.run(&account, job.id, Deadline::after(Duration::from_secs(5)))
            .await
            .unwrap(),
        RunOutcome::Busy
    );
    let sweep = sweep_now(&jobs).await;
    assert_eq!((sweep.busy, sweep.finished), (1, 0));
    let unchanged = saved(&api, &account, job.id).await;
    assert_eq!(unchanged.rows, 0);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_taken_over_once_its_lease_runs_out() {
    // GIVEN a job whose worker took the lease and died (the lease is over)
    let (api, account, jobs, job) = ten_users_and_a_job().await;
    let over = shared::model::Timestamp::from_millis(shared::model::Timestamp::now().millis() - 1);
    let dead = taken(&api, &account, job.id, over).await;
    // WHEN the sweep comes by THEN another run takes it over and finishes it
    let sweep = sweep_now(&jobs).await;
    assert_eq!((sweep.finished, sweep.busy), (1, 0));
    let done = saved(&api, &account, job.id).await;
    assert_eq!(
        (done.state, done.rows, done.runs),
        (ExportJobState::Done, 10, 2)
    );
    // AND the dead worker's token can no longer change the job
    assert!(
        !api.store
            .save_export_job(&dead, dead.lease.as_deref().unwrap())
            .await
            .unwrap()
    );
}

/// How often the job's pointer was touched (`None`: no pointer).
async fn pointer_passes(api: &TestApi, job: &shared::store::ExportJob) -> Option<u64> {
    use aws_sdk_dynamodb::types::AttributeValue;
    for shard in 0..4 {
        let found = api
            .store
            .client()
            .get_item()
            .table_name(api.store.table())
            .key("pk", AttributeValue::S(format!("XJOB#{shard}")))
            .key("sk", AttributeValue::S(job.pk.clone()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        if let Some(item) = found.item {
            return Some(match item.get("passes") {
                Some(AttributeValue::N(n)) => n.parse().unwrap(),
                _ => 0,
            });
        }
    }
    None
}

#[tokio::test]
async fn a_sweep_out_of_time_touches_the_jobs_it_leaves_so_the_stream_wakes_another() {
    // GIVEN a job nobody runs
    let (api, account, jobs, job) = ten_users_and_a_job().await;
    assert_eq!(pointer_passes(&api, &job).await, Some(0));
    // WHEN a sweep has no time left for it
    let sweep = jobs.sweep(Deadline::after(Duration::ZERO)).await.unwrap();
    // THEN it is left pending, untouched but for its pointer
    assert_eq!((sweep.pending, sweep.finished), (1, 0));
    assert_eq!(pointer_passes(&api, &job).await, Some(1));
    assert_eq!(
        saved(&api, &account, job.id).await.state,
        ExportJobState::Pending
    );
    // AND a sweep with time finishes it and removes the pointer
    assert_eq!(sweep_now(&jobs).await.finished, 1);
    assert_eq!(pointer_passes(&api, &job).await, None);
}

/// A fixture of `tests/events/export-jobs`.
fn event_fixture(name: &str) -> Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("events/export-jobs")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_export_jobs_function_runs_the_unfinished_jobs_on_each_event() {
    use lambda_http::lambda_runtime::LambdaEvent;
    for name in ["stream-pointer-insert", "schedule"] {
        // GIVEN a job written by the export function (which, in AWS, runs
        // nothing itself)
        let api = TestApi::new().await;
        seed(&api, "acme", 300).await;
        let account = AccountId::parse("acme").unwrap();
        let job = api
            .store
            .create_export_job(&account, json!({"fields": ["userId"]}).to_string())
            .await
            .unwrap();
        let jobs = Jobs::new(api.store.clone(), api.files.clone(), JobConfig::default());
        // WHEN the function gets the event, with a minute left
        let mut context = lambda_http::Context::default();
        context.deadline = (std::time::SystemTime::now() + Duration::from_secs(60))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let summary =
            export_function::jobs::handle(&jobs, LambdaEvent::new(event_fixture(name), context))
                .await
                .unwrap();
        // THEN the job is done
        assert_eq!(
            summary,
            json!({"finished": 1, "pending": 0, "busy": 0}),
            "{name}"
        );
        let done = saved(&api, &account, job.id).await;
        assert_eq!(
            (done.state, done.rows),
            (ExportJobState::Done, 300),
            "{name}"
        );
    }
}

#[tokio::test]
async fn the_file_of_a_job_not_done_is_409_and_its_status_says_why() {
    // GIVEN a job no worker has taken up yet
    let (api, _account, _jobs, job) = ten_users_and_a_job().await;
    let acme = api.client("acme").await;
    // WHEN its file is asked for
    let file = acme.get(&format!("/users/exports/{}/file", job.id)).await;
    // THEN the job is there but its file is not: 409, not 404
    assert_error(&file, 409);
    assert!(
        file.body["status"]["message"]
            .as_str()
            .unwrap()
            .contains("pending"),
        "{}",
        file.text
    );
    let status = acme.get(&format!("/users/exports/{}", job.id)).await;
    assert_eq!(status.body["status"], "pending");
}

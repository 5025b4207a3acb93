//! `POST /users/export`: the CSV (headers, field selection, sort, filters,
//! `users`, the injection guard), tenant isolation, the request rules, and
//! the streaming itself: rows leave before the store is read to the end,
//! reading waits for the client, and a failure mid-stream ends the body
//! without a byte of JSON.
//!
//! Small accounts are created through the API. The large account of the
//! streaming tests is written straight into the table (profiles only, what
//! the export reads), since thousands of API creates would only slow the
//! suite down.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::deadline::Deadline;
use shared::http::with_account;
use shared::model::{AccountId, Attributes, ObjectId, Timestamp, User};
use shared::store::items::{ProfileItem, to_item};
use shared::store::{EXPORT_PAGE, PAGES_AHEAD, READ_AHEAD_SLICES, Store};
use tower::ServiceExt;
use users_api_tests::{
    Answer, Client, NewUser, TestApi, assert_error, error_fields, test_export_state,
};

const ALL_HEADERS: &str = "Name,Email,First Seen,Last Seen,Integration,Source,User ID,Avatar,Language,Timezone,Gender,IP,City,Region,Country,Referrer,Username";

async fn export(client: &Client, body: Value) -> Answer {
    client.post("/users/export", body).await
}

/// The CSV lines of a successful export, each checked to end with CRLF.
fn lines(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        answer.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"users.csv\""
    );
    csv_lines(&answer.text)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The lines of a CSV text, each checked to end with CRLF.
fn csv_lines(text: &str) -> Vec<&str> {
    let body = text
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("ends with CRLF: {text:?}"));
    body.split("\r\n").collect()
}

/// The rows of a CSV text after its header line (each ends with CRLF).
fn rows_after_header(text: &str) -> Vec<&str> {
    csv_lines(text).split_off(1)
}

/// The rows of an export of `userId` alone.
fn user_ids(answer: &Answer) -> Vec<String> {
    let lines = lines(answer);
    assert_eq!(lines[0], "User ID");
    lines[1..].to_vec()
}

/// Creates users in order, `userId` = `u{i}`; returns their ids.
async fn seed(client: &Client, attributes: &[Value]) -> Vec<String> {
    let users = attributes
        .iter()
        .enumerate()
        .map(|(i, a)| NewUser::new(format!("u{i}")).with_attributes(a.clone()))
        .collect();
    client.create_users(users).await
}

#[tokio::test]
async fn all_seventeen_columns_in_the_reference_order_newest_first() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = seed(
        &acme,
        &[
            json!({"default_name": "Ann", "default_email": "ann@example.com", "default_country": "PL", "default_source": "messenger", "plan": "pro"}),
            json!({"default_email": "bob@example.com", "default_url": "https://example.com", "default_username": "bob"}),
        ],
    )
    .await;
    let answer = export(&acme, json!({})).await;
    let lines = lines(&answer);
    let ann = acme.get(&format!("/users/{}", ids[0])).await.body;
    let bob = acme.get(&format!("/users/{}", ids[1])).await.body;
    let dates = |user: &Value| {
        format!(
            "{},{}",
            user["createdAt"].as_str().unwrap(),
            user["lastSeen"].as_str().unwrap()
        )
    };
    assert!(
        dates(&ann).contains(' ') && dates(&ann).ends_with('Z'),
        "the object date format"
    );
    // Bob was created after Ann (in the same millisecond at worst: then the id decides).
    let bob_row = format!(
        ",bob@example.com,{},,https://example.com,u1{}bob",
        dates(&bob),
        ",".repeat(10)
    );
    let ann_row = format!(
        "Ann,ann@example.com,{},messenger,,u0{}PL,,",
        dates(&ann),
        ",".repeat(8)
    );
    assert_eq!(lines, [ALL_HEADERS.to_owned(), bob_row, ann_row]);
}

#[tokio::test]
async fn an_empty_body_is_an_export_of_everyone() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    seed(&acme, &[json!({"a": "1"}), json!({"a": "2"})]).await;
    // As the reference's curl example: a JSON content type and no body.
    let request = acme
        .request(Method::POST, "/users/export")
        .header("content-type", "application/json")
        .body(Body::empty())
        .unwrap();
    let answer = api.send(request).await;
    assert_eq!(lines(&answer).len(), 3);
    let bare = acme
        .request(Method::POST, "/users/export")
        .body(Body::empty())
        .unwrap();
    assert_eq!(lines(&api.send(bare).await).len(), 3);
}

#[tokio::test]
async fn selected_fields_in_the_requested_order() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    seed(
        &acme,
        &[json!({"default_name": "Ann", "default_country": "PL"})],
    )
    .await;
    let answer = export(
        &acme,
        json!({"fields": ["default_country", "userId", "default_name", "default_city"]}),
    )
    .await;
    assert_eq!(lines(&answer), ["Country,User ID,Name,City", "PL,u0,Ann,"]);
    let answer = export(&acme, json!({"fields": ["default_city"]})).await;
    assert_eq!(
        lines(&answer),
        ["City", "\"\""],
        "a lone empty cell is quoted, so the row is not blank"
    );
}

#[tokio::test]
async fn rows_follow_the_requested_sort() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = acme.create_users_in_turn(3).await;
    let fields = json!(["userId"]);
    assert_eq!(
        user_ids(&export(&acme, json!({"fields": fields})).await),
        ["u2", "u1", "u0"]
    );
    let asc = json!({"fields": fields, "sort": {"field": "createdAt", "order": "asc"}});
    assert_eq!(user_ids(&export(&acme, asc).await), ["u0", "u1", "u2"]);
    // Activity moves u0 to the front of the last-seen order.
    let answer = acme
        .post(
            &format!("/users/{}/conversations", ids[0]),
            json!({"firstMessage": "hi"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let seen = json!({"fields": fields, "sort": {"field": "lastSeen"}});
    assert_eq!(user_ids(&export(&acme, seen).await), ["u0", "u2", "u1"]);
    let seen_asc = json!({"fields": fields, "sort": {"field": "lastSeen", "order": "asc"}});
    assert_eq!(user_ids(&export(&acme, seen_asc).await), ["u1", "u2", "u0"]);
}

#[tokio::test]
async fn filters_and_match_select_like_the_list() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let segment = acme.create_segment("Leads").await;
    let ids = seed(
        &acme,
        &[
            json!({"default_country": "PL", "default_email": "a@x.com"}),
            json!({"default_country": "DE"}),
            json!({"default_country": "PL", "plan": "pro"}),
            json!({"plan": "pro"}),
        ],
    )
    .await;
    let answer = acme
        .post(&format!("/users/{}/segments", ids[1]), json!([segment]))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let run = |body: Value| {
        let acme = &acme;
        async move {
            let mut body = body;
            body["fields"] = json!(["userId"]);
            body["sort"] = json!({"order": "asc"});
            user_ids(&export(acme, body).await)
        }
    };
    let pl = json!([{"field": "default_country", "operator": "eq", "value": "PL"}]);
    assert_eq!(run(json!({"filters": pl})).await, ["u0", "u2"]);
    let both = json!([{"field": "default_country", "operator": "eq", "value": "PL"}, {"field": "plan", "operator": "exists"}]);
    assert_eq!(run(json!({"filters": both})).await, ["u2"]);
    assert_eq!(run(json!({"filters": both, "match": "all"})).await, ["u2"]);
    assert_eq!(
        run(json!({"filters": both, "match": "any"})).await,
        ["u0", "u2", "u3"]
    );
    assert_eq!(
        run(json!({"match": "any"})).await,
        ["u0", "u1", "u2", "u3"],
        "match without filters selects everyone"
    );
    // Filters an index answers.
    assert_eq!(
        run(json!({"filters": [{"field": "userId", "operator": "eq", "value": "u3"}]})).await,
        ["u3"]
    );
    assert_eq!(
        run(json!({"filters": [{"field": "default_email", "operator": "eq", "value": "a@x.com"}]}))
            .await,
        ["u0"]
    );
    assert_eq!(
        run(json!({"filters": [{"field": "segments", "operator": "eq", "value": segment}]})).await,
        ["u1"]
    );
    assert_eq!(
        run(json!({"filters": [{"field": "segments", "operator": "ne", "value": segment}]})).await,
        ["u0", "u2", "u3"]
    );
}

#[tokio::test]
async fn listed_users_come_in_the_requested_sort_and_unknown_ids_are_skipped() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let ids = acme.create_users_in_turn(4).await;
    let unknown = ObjectId::new().to_string();
    let listed = json!([ids[0], unknown, ids[3], ids[1], ids[0]]);
    let answer = export(&acme, json!({"users": listed, "fields": ["userId"]})).await;
    assert_eq!(
        user_ids(&answer),
        ["u3", "u1", "u0"],
        "newest first, once each, the unknown id skipped"
    );
    let asc = json!({"users": listed, "fields": ["userId"], "sort": {"field": "createdAt", "order": "asc"}});
    assert_eq!(user_ids(&export(&acme, asc).await), ["u0", "u1", "u3"]);
    let none = json!({"users": [unknown], "fields": ["userId"]});
    assert!(user_ids(&export(&acme, none).await).is_empty());
}

#[tokio::test]
async fn no_match_is_200_with_the_header_line_only() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    assert_eq!(lines(&export(&acme, json!({})).await), [ALL_HEADERS]);
    seed(&acme, &[json!({"a": "1"})]).await;
    let nobody =
        json!({"filters": [{"field": "a", "operator": "eq", "value": "2"}], "fields": ["userId"]});
    assert_eq!(answer_text(&export(&acme, nobody).await), "User ID\r\n");
}

fn answer_text(answer: &Answer) -> &str {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    &answer.text
}

#[tokio::test]
async fn cells_that_spreadsheets_would_run_are_neutralised() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    seed(
        &acme,
        &[json!({
            "default_name": "=HYPERLINK(\"http://evil\",\"x\")",
            "default_city": "+48 123",
            "default_region": "-2+3",
            "default_country": "@SUM(A1)",
            "default_language": "\tx",
            "default_timezone": "\rx",
            "default_referrer": "a=b",
        })],
    )
    .await;
    let fields = json!([
        "default_name",
        "default_city",
        "default_region",
        "default_country",
        "default_language",
        "default_timezone",
        "default_referrer"
    ]);
    let answer = export(&acme, json!({"fields": fields})).await;
    assert_eq!(
        answer_text(&answer),
        "Name,City,Region,Country,Language,Timezone,Referrer\r\n\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\",'+48 123,'-2+3,'@SUM(A1),'\tx,\"'\rx\",a=b\r\n"
    );
    let user_id = acme.create_user(NewUser::new("=1+1").with("a", "1")).await;
    let answer = export(&acme, json!({"users": [user_id], "fields": ["userId"]})).await;
    assert_eq!(user_ids(&answer), ["'=1+1"]);
}

#[tokio::test]
async fn an_export_shows_only_the_callers_account() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let other = api.client("other").await;
    let acme_ids = seed(&acme, &[json!({"default_name": "acme-user"})]).await;
    let other_ids = seed(
        &other,
        &[
            json!({"default_name": "other-user"}),
            json!({"default_name": "other-2"}),
        ],
    )
    .await;
    let answer = export(&acme, json!({"fields": ["default_name"]})).await;
    assert_eq!(lines(&answer), ["Name", "acme-user"]);
    let listed =
        json!({"users": [acme_ids[0], other_ids[0], other_ids[1]], "fields": ["default_name"]});
    assert_eq!(lines(&export(&acme, listed).await), ["Name", "acme-user"]);
    let by_user_id = json!({"filters": [{"field": "userId", "operator": "eq", "value": "u1"}], "fields": ["default_name"]});
    assert_eq!(lines(&export(&acme, by_user_id.clone()).await), ["Name"]);
    assert_eq!(
        lines(&export(&other, by_user_id).await),
        ["Name", "other-2"]
    );
}

#[tokio::test]
async fn bad_requests_answer_the_json_envelope() {
    let api = TestApi::new().await;
    let acme = api.client("acme").await;
    let id = ObjectId::new().to_string();
    for (body, fields) in [
        (
            json!({"users": [id], "filters": [{"field": "a", "operator": "exists"}]}),
            vec!["users"],
        ),
        (json!({"users": [id], "match": "any"}), vec!["users"]),
        (json!({"users": []}), vec!["users"]),
        (json!({"users": ["nope", id]}), vec!["users.0"]),
        (json!({"fields": []}), vec!["fields"]),
        (json!({"fields": ["userId", "userId"]}), vec!["fields.1"]),
        (json!({"fields": ["banned"]}), vec!["fields.0"]),
        (json!({"sort": {"field": "name"}}), vec!["sort.field"]),
        (json!({"match": "some"}), vec!["match"]),
        (
            json!({"filters": [{"field": "banned", "operator": "gt", "value": true}]}),
            vec!["filters.0.operator"],
        ),
        (json!({"limit": 5}), vec!["limit"]),
        (json!([]), vec!["body"]),
    ] {
        let answer = export(&acme, body.clone()).await;
        assert_error(&answer, 400);
        assert_eq!(error_fields(&answer), fields, "{body}");
        assert!(
            answer.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
    let all: Vec<&str> = shared::export::ExportField::ALL
        .iter()
        .map(|f| f.name())
        .collect();
    assert_error(&export(&acme, json!({"fields": all})).await, 400);
    for (content_type, body, status) in [
        ("application/json", Body::from("{"), 400),
        ("text/plain", Body::from("fields=userId"), 415),
        (
            "application/json",
            Body::from(vec![b' '; 2 * 1024 * 1024]),
            413,
        ),
    ] {
        let request = acme
            .request(Method::POST, "/users/export")
            .header("content-type", content_type)
            .body(body)
            .unwrap();
        assert_error(&acme.send(request).await, status);
    }
    assert_error(
        &api.call(Method::POST, "/users/export", None, Some(json!({})))
            .await,
        401,
    );
    assert_error(&acme.get("/users/export").await, 405);
}

// ---------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------

/// Writes `n` profiles of `account` straight into the table, created a
/// millisecond apart; returns their ids oldest first.
async fn seed_directly(store: &Store, account: &AccountId, n: usize) -> Vec<ObjectId> {
    let base = Timestamp::now().millis() - n as i64 - 1_000;
    let users: Vec<User> = (0..n)
        .map(|i| {
            let at = Timestamp::from_millis(base + i as i64);
            User {
                id: ObjectId::at_seconds(at.unix_seconds()),
                user_id: format!("bulk-{i:05}"),
                banned: false,
                attributes: Attributes([("default_name".to_owned(), format!("User {i}"))].into()),
                session_attributes: Default::default(),
                conversations: 0,
                segments: BTreeSet::new(),
                created_at: at,
                last_seen: at,
            }
        })
        .collect();
    for chunk in users.chunks(25) {
        let mut writes: Vec<WriteRequest> = chunk
            .iter()
            .map(|user| {
                let item = to_item(&ProfileItem::new(account, user, store.index_shards())).unwrap();
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                    .build()
            })
            .collect();
        while !writes.is_empty() {
            let output = store
                .client()
                .batch_write_item()
                .request_items(store.table(), writes)
                .send()
                .await
                .expect("batch write");
            writes = output
                .unprocessed_items
                .and_then(|mut u| u.remove(store.table()))
                .unwrap_or_default();
        }
    }
    users.into_iter().map(|u| u.id).collect()
}

/// An export request straight to the export function's router, as API
/// Gateway hands it over after the authorizer.
fn export_request(account: &AccountId, body: Value) -> Request<Body> {
    let mut request = Request::post("/users/export")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    request.extensions_mut().insert(with_account(account));
    request
}

/// The answer of the export function's router to `request` (its body
/// unread: it streams).
async fn export_directly(api: &TestApi, request: Request<Body>) -> Response {
    export_function::router(test_export_state(&api.store, api.files.clone()))
        .oneshot(request)
        .await
        .unwrap()
}

/// The next data frame of a body: `Some(Ok)` data, `Some(Err)` the body
/// failed, `None` the end.
async fn next_chunk(body: &mut Body) -> Option<Result<Bytes, axum::Error>> {
    loop {
        match body.frame().await? {
            Ok(frame) => match frame.into_data() {
                Ok(data) => return Some(Ok(data)),
                Err(_) => continue,
            },
            Err(error) => return Some(Err(error)),
        }
    }
}

/// Users a large account holds: more store pages than an export reads ahead.
const LARGE: usize = 20 * EXPORT_PAGE;

#[tokio::test]
async fn the_first_rows_leave_before_the_store_is_read_to_the_end() {
    let api = TestApi::new().await;
    let account = AccountId::parse("big").unwrap();
    let ids = seed_directly(&api.store, &account, LARGE).await;
    let read_before = api.store.items_read();

    let body = json!({"fields": ["userId"], "sort": {"order": "asc"}});
    let response = export_directly(&api, export_request(&account, body)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = next_chunk(&mut body)
        .await
        .expect("a first chunk")
        .expect("data");
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert!(
        first.starts_with("User ID\r\nbulk-00000\r\n"),
        "{first:.40}"
    );
    let read = api.store.items_read() - read_before;
    assert!(
        read < LARGE as u64,
        "the first chunk came after reading {read} of {LARGE} users"
    );

    // Nobody takes the rows: the reading stops a few pages ahead (the
    // chunks waiting to be sent, the page being sent, and the pages each
    // range read ahead holds ready or is reading).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ahead = api.store.items_read() - read_before;
    // Each user read is two items: its index entry and its profile.
    let bound = 2
        * ((export_function::CHANNEL_CHUNKS + 3 + READ_AHEAD_SLICES * (PAGES_AHEAD + 1))
            * EXPORT_PAGE) as u64;
    assert!(bound < 2 * LARGE as u64);
    assert!(
        ahead <= bound,
        "read {ahead} users ahead of a client that took one chunk (bound {bound})"
    );

    // The rest arrives chunk by chunk, every user once, in order.
    let mut text = first;
    let mut chunks = 1;
    while let Some(chunk) = next_chunk(&mut body).await {
        text.push_str(std::str::from_utf8(&chunk.expect("data")).unwrap());
        chunks += 1;
    }
    assert!(chunks >= LARGE / EXPORT_PAGE, "{chunks} chunks");
    let rows = rows_after_header(&text);
    let expected: Vec<String> = (0..LARGE).map(|i| format!("bulk-{i:05}")).collect();
    assert_eq!(rows, expected);
    assert_eq!(ids.len(), LARGE);
}

#[tokio::test]
async fn a_failure_mid_stream_ends_the_body_early_without_json() {
    let api = TestApi::new().await;
    let account = AccountId::parse("big").unwrap();
    seed_directly(&api.store, &account, LARGE).await;
    let response = export_directly(&api, export_request(&account, json!({}))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut text =
        String::from_utf8(next_chunk(&mut body).await.unwrap().unwrap().to_vec()).unwrap();

    // The database goes away under the export.
    api.store.delete_table().await.expect("table deleted");
    let mut failed = false;
    while let Some(chunk) = next_chunk(&mut body).await {
        match chunk {
            Ok(data) => text.push_str(std::str::from_utf8(&data).unwrap()),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed,
        "the body ends with an error, so the client can tell the file is incomplete"
    );
    assert!(
        next_chunk(&mut body).await.is_none(),
        "nothing follows the error"
    );
    let rows = text.lines().count() - 1;
    assert!(rows < LARGE, "{rows} rows");
    assert!(text.ends_with("\r\n"), "whole rows only");
    assert!(
        !text.contains('{') && !text.contains("status"),
        "no JSON in the CSV"
    );
}

#[tokio::test]
async fn a_failure_before_the_first_byte_answers_the_json_envelope() {
    let api = TestApi::new().await;
    let account = AccountId::parse("acme").unwrap();
    api.store.delete_table().await.expect("table deleted");
    let response = export_directly(&api, export_request(&account, json!({}))).await;
    let status = response.status();
    assert!(status.is_server_error(), "{status}");
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let envelope: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(envelope["status"]["code"], status.as_u16());
    assert_eq!(envelope["status"]["type"], "error");
    assert!(
        !String::from_utf8_lossy(&bytes).contains("ResourceNotFound"),
        "no SDK text reaches the client"
    );
}

#[tokio::test]
async fn activity_during_an_export_by_last_seen_neither_repeats_nor_drops_anyone() {
    let api = TestApi::new().await;
    let account = AccountId::parse("big").unwrap();
    let big = api.client("big").await;
    let ids = seed_directly(&api.store, &account, LARGE).await;
    let body = json!({"fields": ["userId"], "sort": {"field": "lastSeen", "order": "asc"}});
    let response = export_directly(&api, export_request(&account, body)).await;
    let mut body = response.into_body();
    let mut text =
        String::from_utf8(next_chunk(&mut body).await.unwrap().unwrap().to_vec()).unwrap();
    assert!(text.contains("bulk-00000\r\n"));

    // The first user, already exported, and one far ahead become the most
    // recently seen: both would move to the end of the order.
    for i in [0, 2 * LARGE / 3] {
        let uri = format!("/users/{}/conversations", ids[i]);
        let answer = big.post(&uri, json!({"firstMessage": "hi"})).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    while let Some(chunk) = next_chunk(&mut body).await {
        text.push_str(std::str::from_utf8(&chunk.expect("data")).unwrap());
    }
    let rows = rows_after_header(&text);
    let expected: Vec<String> = (0..LARGE).map(|i| format!("bulk-{i:05}")).collect();
    assert_eq!(
        rows, expected,
        "each user once, where it was when the export began"
    );
}

#[tokio::test]
async fn an_export_that_reaches_its_deadline_ends_as_a_failed_transfer() {
    let api = TestApi::new().await;
    let account = AccountId::parse("big").unwrap();
    seed_directly(&api.store, &account, LARGE).await;
    let read_all = |deadline: Deadline| {
        let mut request = export_request(&account, json!({"fields": ["userId"]}));
        request.extensions_mut().insert(deadline);
        let api = &api;
        async move {
            let response = export_directly(api, request).await;
            assert_eq!(response.status(), StatusCode::OK);
            let mut body = response.into_body();
            let mut text = String::new();
            while let Some(chunk) = next_chunk(&mut body).await {
                match chunk {
                    Ok(data) => text.push_str(std::str::from_utf8(&data).unwrap()),
                    Err(_) => return (text, true),
                }
            }
            (text, false)
        }
    };
    // GIVEN time enough: the whole export.
    let (text, failed) = read_all(Deadline::after(Duration::from_secs(120))).await;
    assert!(!failed);
    assert_eq!(text.lines().count(), 1 + LARGE);
    // WHEN the deadline is near once the first rows are sent
    let (text, failed) = read_all(Deadline::after(export_function::DEADLINE_MARGIN / 2)).await;
    // THEN the transfer fails visibly instead of ending like a complete file
    assert!(failed, "the body must end with an error");
    let rows = text.lines().count() - 1;
    assert!(rows < LARGE, "{rows} rows");
    assert!(text.starts_with("User ID\r\n"));
}

/// The whole body of an export, and whether it ended with an error.
async fn read_body(response: axum::response::Response) -> (Vec<u8>, bool) {
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = next_chunk(&mut body).await {
        match chunk {
            Ok(data) => bytes.extend_from_slice(&data),
            Err(_) => return (bytes, true),
        }
    }
    (bytes, false)
}

fn gunzip(bytes: &[u8]) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes).read_to_string(&mut text)?;
    Ok(text)
}

#[tokio::test]
async fn gzip_and_plain_streams_decode_to_the_same_rows() {
    let api = TestApi::new().await;
    let account = AccountId::parse("big").unwrap();
    seed_directly(&api.store, &account, LARGE).await;
    let export_with = |accept: Option<&'static str>, deadline: Option<Deadline>| {
        let mut request = export_request(&account, json!({"sort": {"order": "asc"}}));
        if let Some(accept) = accept {
            request
                .headers_mut()
                .insert(header::ACCEPT_ENCODING, accept.parse().unwrap());
        }
        if let Some(deadline) = deadline {
            request.extensions_mut().insert(deadline);
        }
        let api = &api;
        async move { export_directly(api, request).await }
    };
    // GIVEN the same export, plain and gzip
    let plain = export_with(None, None).await;
    assert_eq!(plain.headers().get(header::CONTENT_ENCODING), None);
    assert_eq!(plain.headers()[header::VARY], "accept-encoding");
    let (plain, failed) = read_body(plain).await;
    assert!(!failed);
    let gzip = export_with(Some("br, gzip"), None).await;
    assert_eq!(gzip.status(), StatusCode::OK);
    assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
    assert_eq!(
        gzip.headers()[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let (compressed, failed) = read_body(gzip).await;
    assert!(!failed);
    // THEN they decode to the same rows, and gzip is smaller
    let plain = String::from_utf8(plain).unwrap();
    assert_eq!(plain.lines().count(), 1 + LARGE);
    assert_eq!(gunzip(&compressed).unwrap(), plain);
    assert!(
        compressed.len() * 3 < plain.len(),
        "{} vs {}",
        compressed.len(),
        plain.len()
    );
    // A refused gzip is plain.
    let refused = export_with(Some("gzip;q=0"), None).await;
    assert_eq!(refused.headers().get(header::CONTENT_ENCODING), None);
    // A gzip stream stopped by its deadline fails as a transfer and as gzip.
    let late = export_with(
        Some("gzip"),
        Some(Deadline::after(export_function::DEADLINE_MARGIN / 2)),
    )
    .await;
    let (cut, failed) = read_body(late).await;
    assert!(failed, "the body must end with an error");
    assert!(gunzip(&cut).is_err(), "an incomplete gzip stream");
}

#[tokio::test]
async fn a_gzip_export_of_nobody_is_the_header_line() {
    let api = TestApi::new().await;
    let account = AccountId::parse("empty").unwrap();
    let mut request = export_request(&account, json!({"fields": ["userId", "default_email"]}));
    request
        .headers_mut()
        .insert(header::ACCEPT_ENCODING, "gzip".parse().unwrap());
    let response = export_directly(&api, request).await;
    assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
    let (compressed, failed) = read_body(response).await;
    assert!(!failed);
    assert_eq!(gunzip(&compressed).unwrap(), "User ID,Email\r\n");
}

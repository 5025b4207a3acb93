//! The test harness: a real DynamoDB API endpoint and the real routers.
//!
//! With `USERS_API_TEST_ENDPOINT` set (the test script points it at moto's
//! server) every test makes its own uniquely named table there; otherwise
//! every test starts its own in-memory embedded engine. Either way requests
//! go through the same routers and the same store as in production, and
//! every answer is checked against the published contract ([`contract`]).
//! A test calls as an account through a [`Client`] (`api.client("acme")`),
//! which carries the account's token, and describes the users it makes with
//! [`NewUser`], whether it creates them through the API or loads thousands
//! straight into the table.

pub mod contract;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use export_function::ExportState;
use export_function::files::{Files, FolderFiles, S3Files};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use shared::engine::{EmbeddedEngine, local_client};
use shared::http::AppState;
use shared::model::AccountId;
use shared::store::Store;
use tower::ServiceExt;

/// The variable naming an external DynamoDB endpoint for the tests; when it
/// is unset, the standard `AWS_ENDPOINT_URL` is used, and when both are, an
/// embedded engine.
pub const ENDPOINT_ENV: &str = "USERS_API_TEST_ENDPOINT";

/// The external endpoint the tests run against, if any.
pub fn external_endpoint() -> Option<String> {
    [ENDPOINT_ENV, "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|e| !e.is_empty()))
}

/// The variable naming an S3 endpoint (moto's) for export jobs' files;
/// unset, each test's jobs write to a folder of their own.
pub const S3_ENDPOINT_ENV: &str = "USERS_API_TEST_S3_ENDPOINT";

/// Where a test's export jobs put their files: a new bucket on the S3
/// endpoint of [`S3_ENDPOINT_ENV`] when it is set, else a new folder.
pub async fn test_files() -> Files {
    let name = format!("test-{}", uuid_simple()).to_ascii_lowercase();
    match std::env::var(S3_ENDPOINT_ENV)
        .ok()
        .filter(|e| !e.is_empty())
    {
        Some(endpoint) => {
            let bucket = S3Files::local(&endpoint, name.replace('_', "-"));
            bucket.create_bucket().await.expect("bucket is created");
            Files::S3(bucket)
        }
        None => Files::Folder(FolderFiles::new(std::env::temp_dir().join(name))),
    }
}

/// The export function's state for tests: no stream cap (as the local
/// server), files in `files`, jobs run in process.
pub fn test_export_state(store: &Store, files: Files) -> ExportState {
    ExportState::local(AppState::new(store.clone()), files)
}

/// A store on a fresh table of its own.
#[derive(Clone)]
pub struct TestStore {
    pub store: Store,
    _engine: Option<Arc<EmbeddedEngine>>,
}

impl TestStore {
    pub async fn new() -> Self {
        let table = format!("test-{}", uuid_simple());
        let (store, engine) = match external_endpoint() {
            Some(endpoint) => (Store::new(local_client(&endpoint), table), None),
            None => {
                let engine = EmbeddedEngine::start(None)
                    .await
                    .expect("embedded engine starts");
                (
                    Store::new(local_client(engine.endpoint()), table),
                    Some(Arc::new(engine)),
                )
            }
        };
        store.ensure_table().await.expect("table is created");
        Self {
            store,
            _engine: engine,
        }
    }

    /// A new token for `account` (created if new).
    pub async fn token(&self, account: &str) -> String {
        new_token(&self.store, account).await
    }

    /// The endpoint of the engine the table lives on (for another process).
    pub fn endpoint(&self) -> String {
        match &self._engine {
            Some(engine) => engine.endpoint().to_owned(),
            None => external_endpoint().expect("an external endpoint"),
        }
    }
}

/// A new token for `account` (created if new) in `store`'s table.
async fn new_token(store: &Store, account: &str) -> String {
    store
        .create_token(&AccountId::parse(account).expect("valid account"))
        .await
        .expect("token is created")
}

fn uuid_simple() -> String {
    // Test tables only need to be unique; the clock and the process id make them so.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// An answer: status, headers, and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// Reads a whole response.
    pub async fn from_response(response: axum::response::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }
}

/// The local server's whole app (every function behind the auth layer) on a fresh table.
pub struct TestApi {
    pub app: Router,
    pub store: Store,
    /// Where its export jobs put their files.
    pub files: Files,
    _store: TestStore,
}

impl TestApi {
    pub async fn new() -> Self {
        let test_store = TestStore::new().await;
        let store = test_store.store.clone();
        let files = test_files().await;
        Self {
            app: users_api::app(test_export_state(&store, files.clone())),
            files,
            store,
            _store: test_store,
        }
    }

    /// A caller for `account` (created if new) with a new token of its own.
    pub async fn client(&self, account: &str) -> Client {
        Client {
            app: self.app.clone(),
            store: self.store.clone(),
            account: account.to_owned(),
            token: new_token(&self.store, account).await,
        }
    }

    /// The endpoint of the engine its table lives on.
    pub fn endpoint(&self) -> String {
        self._store.endpoint()
    }

    /// The same API on the same table, with another clean-up configuration
    /// (e.g. none inline, to leave a delete's clean-up pending).
    pub fn with_cleanup(&self, cleanup: shared::store::CleanupConfig) -> TestApi {
        self.on_store(self.store.clone().with_cleanup(cleanup))
    }

    /// The same API on the same table, writing and reading each account's
    /// sort indexes in `shards` shards.
    pub fn with_index_shards(&self, shards: u16) -> TestApi {
        self.on_store(self.store.clone().with_index_shards(shards))
    }

    /// The same API with each account held to `limits`, as the local server
    /// holds it.
    pub fn with_account_limits(&self, limits: shared::http::AccountLimits) -> TestApi {
        let mut api = self.on_store(self.store.clone());
        api.app = users_api::app_with_limits(
            test_export_state(&self.store, self.files.clone()),
            Some(limits),
        );
        api
    }

    /// The API on `store` (a variant of this one's, or another table on the
    /// same engine), with this one's export files.
    pub fn on_store(&self, store: Store) -> TestApi {
        Self {
            app: users_api::app(test_export_state(&store, self.files.clone())),
            files: self.files.clone(),
            store,
            _store: self._store.clone(),
        }
    }

    /// Sends a request as no account, or with the raw `Authorization` value
    /// `authorization` (e.g. a wrong token); `body` is sent as JSON.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = authorization {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        send(&self.app, json_request(request, body)).await
    }

    /// Sends a prepared request; the answer must keep the published
    /// contract (`contract::check`).
    pub async fn send(&self, request: Request<Body>) -> Answer {
        send(&self.app, request).await
    }
}

/// `request` with `body` as its JSON body (and its content type), or empty.
fn json_request(mut request: http::request::Builder, body: Option<Value>) -> Request<Body> {
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(serde_json::to_vec(&body).expect("JSON"))
        }
        None => Body::empty(),
    };
    request.body(body).expect("request")
}

/// Sends `request` through `app`; the answer must keep the published
/// contract (`contract::check`).
async fn send(app: &Router, request: Request<Body>) -> Answer {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router answers");
    let answer = Answer::from_response(response).await;
    contract::check(&method, &path, &answer);
    answer
}

/// One account's caller of a [`TestApi`]: every request it sends carries the
/// account's token, and what it seeds goes into the account.
#[derive(Clone)]
pub struct Client {
    app: Router,
    store: Store,
    account: String,
    token: String,
}

impl Client {
    /// The account's token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The store of the API it calls.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The same account calling `api` (a variant of its own API, e.g. one
    /// with another clean-up configuration).
    pub fn on(&self, api: &TestApi) -> Client {
        Client {
            app: api.app.clone(),
            store: api.store.clone(),
            ..self.clone()
        }
    }

    /// A request to `uri` that carries the account's token, for a test that
    /// sets its own headers and body.
    pub fn request(&self, method: Method, uri: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token))
    }

    /// Sends a prepared request (see [`Client::request`]).
    pub async fn send(&self, request: Request<Body>) -> Answer {
        send(&self.app, request).await
    }

    /// Sends a request; `body` is sent as JSON.
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        let request = json_request(self.request(method, uri), body);
        self.send(request).await
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, None).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> Answer {
        self.call(Method::POST, uri, Some(body)).await
    }

    pub async fn put(&self, uri: &str, body: Value) -> Answer {
        self.call(Method::PUT, uri, Some(body)).await
    }

    pub async fn delete(&self, uri: &str) -> Answer {
        self.call(Method::DELETE, uri, None).await
    }

    /// Creates one user with `POST /users` and returns its id.
    pub async fn create_user(&self, user: NewUser) -> String {
        let answer = self.post("/users", user.json()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.body[0]["id"].as_str().expect("an id").to_owned()
    }

    /// Creates `users` in order, one bulk `POST /users` per 100; returns
    /// their ids in creation order.
    pub async fn create_users(&self, users: Vec<NewUser>) -> Vec<String> {
        let mut ids = Vec::with_capacity(users.len());
        for chunk in users.chunks(100) {
            let bodies = chunk.iter().map(NewUser::json).collect();
            let answer = self.post("/users", Value::Array(bodies)).await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
            ids.extend(ids_in(&answer.body));
        }
        ids
    }

    /// Creates users `u0`, `u1`, … (attribute `a` = `1`) one request at a
    /// time, a few milliseconds apart so that no two share a creation time;
    /// returns their ids in creation order.
    pub async fn create_users_in_turn(&self, count: usize) -> Vec<String> {
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let user = NewUser::new(format!("u{i}")).with("a", "1");
            ids.push(self.create_user(user).await);
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        ids
    }

    /// Records a conversation of `user` (`POST /users/{id}/conversations`);
    /// returns its id.
    pub async fn record_conversation(&self, user: &str, first_message: &str) -> String {
        let uri = format!("/users/{user}/conversations");
        let answer = self
            .post(&uri, serde_json::json!({"firstMessage": first_message}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.body["id"].as_str().expect("an id").to_owned()
    }

    /// Creates a segment and returns its id.
    pub async fn create_segment(&self, name: &str) -> String {
        let answer = self
            .post("/segments", serde_json::json!({ "name": name }))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.body["id"].as_str().expect("an id").to_owned()
    }

    /// The account's segments as `GET /segments` shows them: (name, users),
    /// oldest first.
    pub async fn segment_counts(&self) -> Vec<(String, u64)> {
        let answer = self.get("/segments").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer
            .body
            .as_array()
            .expect("an array")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().expect("a name").to_owned(),
                    s["users"].as_u64().expect("a count"),
                )
            })
            .collect()
    }

    /// Loads `users` straight into the account (see [`seed_users`]).
    pub async fn seed_users(&self, users: Vec<NewUser>) -> Vec<String> {
        seed_users(&self.store, &self.account, users).await
    }

    /// Loads conversations of `user` straight into the table (see
    /// [`seed_conversations`]).
    pub async fn seed_conversations(
        &self,
        user: &str,
        count: usize,
        first_message: &str,
        keyed: ConversationKeys,
    ) -> Vec<String> {
        seed_conversations(
            &self.store,
            &self.account,
            user,
            count,
            first_message,
            keyed,
        )
        .await
    }
}

/// A user a test makes: through the API ([`Client::create_user`],
/// [`Client::create_users`]) or straight into the table ([`seed_users`]).
/// The one way the tests and the measuring examples describe users.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub user_id: Option<String>,
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Segment ids.
    pub segments: Vec<String>,
}

impl NewUser {
    /// A user with `userId` `user_id` and no attributes yet.
    pub fn new(user_id: impl Into<String>) -> Self {
        NewUser {
            user_id: Some(user_id.into()),
            ..NewUser::default()
        }
    }

    /// A user without a `userId` (the API makes one from the e-mail address).
    pub fn without_user_id() -> Self {
        NewUser::default()
    }

    /// With the attribute `name` set to `value`.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attributes.insert(name.to_owned(), value.into());
        self
    }

    /// With every attribute of the JSON object `attributes` (strings).
    pub fn with_attributes(mut self, attributes: impl Into<Value>) -> Self {
        let attributes: std::collections::BTreeMap<String, String> =
            serde_json::from_value(attributes.into()).expect("an object of strings");
        self.attributes.extend(attributes);
        self
    }

    /// In the segment `segment` (an id).
    pub fn in_segment(mut self, segment: &str) -> Self {
        self.segments.push(segment.to_owned());
        self
    }

    /// Its `POST /users` body.
    pub fn json(&self) -> Value {
        let mut body = serde_json::json!({ "attributes": self.attributes });
        if let Some(user_id) = &self.user_id {
            body["userId"] = Value::from(user_id.as_str());
        }
        if !self.segments.is_empty() {
            body["segments"] = Value::from(self.segments.clone());
        }
        body
    }
}

/// Asserts the error envelope: status, code, type and a message.
pub fn assert_error(answer: &Answer, status: u16) {
    assert_eq!(answer.status.as_u16(), status, "{}", answer.text);
    assert_eq!(answer.body["status"]["code"], status, "{}", answer.text);
    assert_eq!(answer.body["status"]["type"], "error", "{}", answer.text);
    assert!(
        answer.body["status"]["message"].is_string(),
        "{}",
        answer.text
    );
    assert!(answer.body["timestamp"].is_string(), "{}", answer.text);
}

/// The fields an error envelope names.
pub fn error_fields(answer: &Answer) -> Vec<String> {
    answer.body["status"]["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Loads users straight into the table with `BatchWriteItem`, in creation
/// order, and returns their ids: the same items `POST /users` writes
/// (profile, `userId` claim, memberships), without a transaction per user.
/// For tests that need large accounts (thousands of users) to exercise
/// listing; creation itself is tested through the API. Segment counters move
/// as `POST /users` moves them.
pub async fn seed_users(store: &Store, account: &str, users: Vec<NewUser>) -> Vec<String> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use shared::model::{Attributes, ObjectId, Timestamp, User};
    use shared::store::items::{ClaimItem, MembershipItem, ProfileItem, to_item};
    use shared::store::keys;

    let account = AccountId::parse(account).expect("valid account");
    let mut ids = Vec::with_capacity(users.len());
    let mut requests = Vec::new();
    let mut members: std::collections::BTreeMap<ObjectId, i64> = Default::default();
    for seed in users {
        let segments: Vec<ObjectId> = seed
            .segments
            .iter()
            .map(|id| id.parse().expect("a segment id"))
            .collect();
        for segment in &segments {
            *members.entry(*segment).or_default() += 1;
        }
        let now = Timestamp::now();
        let user = User {
            id: ObjectId::new(),
            user_id: seed.user_id.expect("a seeded user has a userId"),
            banned: false,
            attributes: Attributes(seed.attributes),
            session_attributes: Default::default(),
            conversations: 0,
            segments: segments.into_iter().collect(),
            created_at: now,
            last_seen: now,
        };
        ids.push(user.id.to_string());
        let claim = ClaimItem {
            pk: keys::user_id_claim_pk(&account, &user.user_id),
            sk: keys::CLAIM_SK.into(),
            id: user.id,
        };
        let mut items = vec![
            to_item(&ProfileItem::new(&account, &user, store.index_shards())).unwrap(),
            to_item(&claim).unwrap(),
        ];
        for segment in &user.segments {
            items.push(
                to_item(&MembershipItem::new(
                    &account,
                    user.id,
                    user.created_at,
                    *segment,
                ))
                .unwrap(),
            );
        }
        requests.extend(items.into_iter().map(|item| {
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build()
        }));
    }
    write_all(store, requests).await;
    for (segment, count) in members {
        store
            .client()
            .update_item()
            .table_name(store.table())
            .set_key(Some(shared::store::items::key(
                keys::segment_pk(&account, segment),
                keys::SEGMENT_SK,
            )))
            .update_expression("ADD #users :n")
            .expression_attribute_names("#users", "users")
            .expression_attribute_values(":n", shared::store::items::n(count))
            .send()
            .await
            .expect("segment counter moves");
    }
    ids
}

/// Writes `requests` with `BatchWriteItem`, 25 a call, until none is left.
async fn write_all(store: &Store, requests: Vec<aws_sdk_dynamodb::types::WriteRequest>) {
    for chunk in requests.chunks(25) {
        let mut pending = chunk.to_vec();
        for _ in 0..50 {
            if pending.is_empty() {
                break;
            }
            let output = store
                .client()
                .batch_write_item()
                .request_items(store.table(), pending)
                .send()
                .await
                .expect("batch write");
            pending = output
                .unprocessed_items
                .and_then(|mut u| u.remove(store.table()))
                .unwrap_or_default();
        }
        assert!(pending.is_empty(), "batch write left items unprocessed");
    }
}

/// How seeded conversations are keyed (see `shared::store::conversations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKeys {
    /// As `POST /users/{id}/conversations` keys them now.
    Current,
    /// As a version from before the current keys wrote them (`C#{id}`,
    /// counted in `convs` only).
    Legacy,
}

/// Loads `count` conversations of user `user` straight into the table (the
/// items `POST /users/{id}/conversations` writes, each with `first_message`,
/// keyed as `keyed` says) and moves the user's conversation counts; returns
/// their ids, oldest first.
pub async fn seed_conversations(
    store: &Store,
    account: &str,
    user: &str,
    count: usize,
    first_message: &str,
    keyed: ConversationKeys,
) -> Vec<String> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    use shared::model::{ObjectId, Timestamp};
    use shared::store::items::{ConversationItem, key, n, to_item};
    use shared::store::keys;

    let legacy = keyed == ConversationKeys::Legacy;

    let account = AccountId::parse(account).expect("valid account");
    let user: ObjectId = user.parse().expect("a user id");
    let mut ids = Vec::with_capacity(count);
    let requests = (0..count)
        .map(|_| {
            let id = ObjectId::new();
            ids.push(id.to_string());
            let item = ConversationItem {
                pk: keys::user_pk(&account, user),
                sk: if legacy {
                    keys::legacy_conversation_sk(id)
                } else {
                    keys::conversation_sk(id)
                },
                id,
                date: Timestamp::now().millis(),
                first_message: Some(first_message.to_owned()),
            };
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(to_item(&item).unwrap()))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect();
    write_all(store, requests).await;
    store
        .client()
        .update_item()
        .table_name(store.table())
        .set_key(Some(key(keys::user_pk(&account, user), keys::PROFILE_SK)))
        .update_expression(if legacy {
            "ADD convs :n"
        } else {
            "ADD convs :n, pconvs :n"
        })
        .expression_attribute_values(":n", n(count))
        .send()
        .await
        .expect("conversation count moves");
    ids
}

/// How many items have the (index) partition key `pk`: a cheap measure of
/// a clean-up's progress, where [`items_mentioning`] scans the whole table.
pub async fn items_in_partition(
    store: &Store,
    pk: &str,
    index: Option<shared::store::keys::Index>,
) -> usize {
    let partition = index.map_or(shared::store::keys::PK, |index| index.pk);
    let mut pages = store
        .client()
        .query()
        .table_name(store.table())
        .set_index_name(index.map(|index| index.name.to_owned()))
        .key_condition_expression("#p = :p")
        .expression_attribute_names("#p", partition)
        .expression_attribute_values(":p", shared::store::items::s(pk))
        .select(aws_sdk_dynamodb::types::Select::Count)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += page.expect("count query").count.max(0) as usize;
    }
    count
}

/// How many items of the whole table mention `needle` anywhere (a key, an
/// attribute name or value, a set element): a full `Scan`, for tests that
/// prove nothing of an object is left.
pub async fn items_mentioning(store: &Store, needle: &str) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue;
    fn mentions(value: &AttributeValue, needle: &str) -> bool {
        match value {
            AttributeValue::S(s) | AttributeValue::N(s) => s.contains(needle),
            AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.iter().any(|s| s.contains(needle)),
            AttributeValue::L(v) => v.iter().any(|x| mentions(x, needle)),
            AttributeValue::M(m) => m
                .iter()
                .any(|(k, x)| k.contains(needle) || mentions(x, needle)),
            _ => false,
        }
    }
    let mut items = store
        .client()
        .scan()
        .table_name(store.table())
        .into_paginator()
        .items()
        .send();
    let mut found = 0;
    while let Some(item) = items.next().await {
        let item = item.expect("scan");
        if item
            .iter()
            .any(|(name, value)| name.contains(needle) || mentions(value, needle))
        {
            found += 1;
        }
    }
    found
}

/// The ids of a `GET /users` answer's `data`, in order.
pub fn ids_of(answer: &Value) -> Vec<String> {
    ids_in(&answer["data"])
}

/// The `id` of each object of the array `list`.
pub fn ids_in(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("an array")
        .iter()
        .map(|object| object["id"].as_str().expect("an id").to_owned())
        .collect()
}

/// A log sink a test can read back: give clones to a `tracing_subscriber`
/// writer, then read [`LogCapture::text`].
#[derive(Clone, Default)]
pub struct LogCapture(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the measuring examples (`call_costs`, `hot_accounts`) share: their
/// knobs, their account of users, and how they print figures.
pub mod bench {
    use std::time::Duration;

    use super::NewUser;

    /// The number in the environment variable `name`, else `default`.
    pub fn env_number(name: &str, default: usize) -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// The `p` quantile of `sorted` (nearest rank).
    pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
        let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[rank.min(sorted.len() - 1)]
    }

    /// Milliseconds, to the microsecond.
    pub fn ms(d: Duration) -> String {
        format!("{:.3}", d.as_secs_f64() * 1000.0)
    }

    /// The engine's name: the `named_by` variable's value, else the engine
    /// the tests use.
    pub fn engine_name(named_by: &str) -> String {
        if let Ok(name) = std::env::var(named_by) {
            return name;
        }
        match super::external_endpoint() {
            Some(endpoint) => format!("the engine at {endpoint}"),
            None => "the embedded engine (dynoxide)".to_owned(),
        }
    }

    /// `users` users with an e-mail address, a name and one of four plans;
    /// every tenth in `segment` when given.
    pub fn account_of(users: usize, segment: Option<&str>) -> Vec<NewUser> {
        let plans = ["free", "pro", "team", "enterprise"];
        (0..users)
            .map(|i| {
                let user = NewUser::new(format!("user-{i:07}"))
                    .with("default_email", format!("user{i}@example.com"))
                    .with("default_name", format!("User {i}"))
                    .with("plan", plans[i % plans.len()]);
                match segment {
                    Some(segment) if i % 10 == 0 => user.in_segment(segment),
                    _ => user,
                }
            })
            .collect()
    }
}

//! Failure drills: the database goes away in the middle of a stream of
//! writes. While it is away every call answers `503` with `Retry-After` in
//! the error envelope, and `/health` says so; when it is back the service
//! answers again by itself, every write that was answered `200` is there,
//! and nothing is half-written. The engine (embedded, moto or DynamoDB
//! Local) is reached through a TCP relay that the test cuts and restores,
//! which is what a client sees of an engine stopped and started again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::engine::local_client;
use shared::store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use users_api_tests::{Answer, Client, NewUser, TestApi, ids_in};

/// A TCP relay in front of the engine, on a fixed local port.
struct Relay {
    addr: SocketAddr,
    engine: String,
    accepting: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(engine_endpoint: &str) -> Relay {
        let engine = engine_endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let mut relay = Relay {
            addr: listener.local_addr().unwrap(),
            engine,
            accepting: None,
            connections: Arc::default(),
        };
        relay.serve(listener);
        relay
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let engine = self.engine.clone();
        let connections = self.connections.clone();
        self.accepting = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let engine = engine.clone();
                let relayed = tokio::spawn(async move {
                    if let Ok(mut upstream) = TcpStream::connect(&engine).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                connections.lock().unwrap().push(relayed);
            }
        }));
    }

    /// The engine goes away: the port refuses connections and every open
    /// one is cut.
    fn cut(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// The engine is back, on the same port.
    async fn restore(&mut self) {
        let started = Instant::now();
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(error) if started.elapsed() < Duration::from_secs(10) => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("rebind relay on {}: {error}", self.addr),
            }
        };
        self.serve(listener);
    }
}

fn assert_unavailable(what: &str, answer: &Answer) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{what}: {}",
        answer.text
    );
    assert!(
        answer.headers.get("retry-after").is_some(),
        "{what}: Retry-After"
    );
    if what != "GET /health" {
        assert_eq!(
            answer.body["status"]["code"], 503,
            "{what}: {}",
            answer.text
        );
        assert_eq!(answer.body["status"]["type"], "error", "{what}");
    }
}

/// What the stream of writes was told: each user it was answered `200`
/// for, with the number of conversations answered `200`.
type Answered = Arc<Mutex<BTreeMap<String, usize>>>;

/// Creates users (one in three in `segment`) and records conversations for
/// them, until `stop`, noting each write answered `200`.
async fn write_stream(
    acme: Client,
    segment: String,
    writer: usize,
    answered: Answered,
    stop: Arc<AtomicBool>,
) {
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut user = NewUser::new(format!("w{writer}-{n}")).with("default_name", "Writer");
        if n % 3 == 0 {
            user = user.in_segment(&segment);
        }
        let created = acme.post("/users", user.json()).await;
        if created.status != StatusCode::OK {
            continue;
        }
        let id = created.body[0]["id"].as_str().unwrap().to_owned();
        answered.lock().unwrap().insert(id.clone(), 0);
        for _ in 0..2 {
            let recorded = acme
                .post(
                    &format!("/users/{id}/conversations"),
                    json!({"firstMessage": "hi"}),
                )
                .await;
            if recorded.status == StatusCode::OK {
                *answered.lock().unwrap().get_mut(&id).unwrap() += 1;
            }
        }
    }
}

/// Every user of the account, in `createdAt` order, paged.
async fn every_user(client: &Client, filter: &str) -> Vec<Value> {
    let mut users = Vec::new();
    let mut after = String::new();
    loop {
        let page = client.get(&format!("/users?limit=40{filter}{after}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        users.extend(page.body["data"].as_array().unwrap().iter().cloned());
        match page.body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return users,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_going_away_mid_stream_answers_503_and_the_service_recovers_by_itself() {
    // GIVEN the API on an engine behind a relay, a user and a segment
    let direct = TestApi::new().await;
    let mut relay = Relay::start(&direct.endpoint()).await;
    let store = Store::new(
        local_client(&relay.endpoint()),
        direct.store.table().to_owned(),
    );
    let api = direct.on_store(store);
    let acme = direct.client("acme").await.on(&api);
    let segment = acme.create_segment("Writers").await;
    let before = acme
        .create_user(NewUser::new("before").with("x", "1"))
        .await;

    // WHEN the engine goes away while two writers create users and record
    // their conversations
    let answered: Answered = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let (acme, segment) = (acme.clone(), segment.clone());
            let (answered, stop) = (answered.clone(), stop.clone());
            tokio::spawn(write_stream(acme, segment, writer, answered, stop))
        })
        .collect();
    let started = Instant::now();
    while answered.lock().unwrap().len() < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the writers never wrote"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    relay.cut();

    // THEN every call answers 503 with Retry-After, /health included
    let user_path = format!("/users/{before}");
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/health".into(), None),
        (Method::GET, "/users".into(), None),
        (Method::GET, user_path.clone(), None),
        (Method::GET, format!("{user_path}/conversations"), None),
        (
            Method::POST,
            "/users".into(),
            Some(json!({"userId": "during", "attributes": {"x": "1"}})),
        ),
        (
            Method::POST,
            "/users".into(),
            Some(
                json!([{"userId": "during-1", "attributes": {"x": "1"}}, {"userId": "during-2", "attributes": {"x": "1"}}]),
            ),
        ),
        (
            Method::PUT,
            user_path.clone(),
            Some(json!({"attributes": {"x": "2"}})),
        ),
        (
            Method::PUT,
            format!("{user_path}/ban"),
            Some(json!({"banned": true})),
        ),
        (
            Method::POST,
            format!("{user_path}/conversations"),
            Some(json!({"firstMessage": "hi"})),
        ),
        (
            Method::POST,
            format!("{user_path}/segments"),
            Some(json!([segment])),
        ),
        (Method::DELETE, user_path.clone(), None),
        (Method::GET, "/segments".into(), None),
        (
            Method::POST,
            "/segments".into(),
            Some(json!({"name": "during"})),
        ),
        (
            Method::PUT,
            format!("/segments/{segment}"),
            Some(json!({"name": "renamed"})),
        ),
        (Method::POST, "/users/export".into(), Some(json!({}))),
        (Method::POST, "/users/exports".into(), Some(json!({}))),
    ];
    let answers = futures_util::future::join_all(calls.iter().map(async |(method, uri, body)| {
        if uri == "/health" {
            api.call(method.clone(), uri, None, body.clone()).await
        } else {
            acme.call(method.clone(), uri, body.clone()).await
        }
    }))
    .await;
    for ((method, uri, _), answer) in calls.iter().zip(&answers) {
        assert_unavailable(&format!("{method} {uri}"), answer);
    }

    // WHEN the engine is back
    relay.restore().await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }

    // THEN the service answers again by itself
    let started = Instant::now();
    loop {
        let health = api.call(Method::GET, "/health", None, None).await;
        if health.status == StatusCode::OK {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never recovered: {}",
            health.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // AND every write answered 200 is there, and nothing is half-written
    let users = every_user(&acme, "").await;
    let listed: BTreeMap<String, &Value> = users
        .iter()
        .map(|user| (user["id"].as_str().unwrap().to_owned(), user))
        .collect();
    let answered = answered.lock().unwrap().clone();
    for (id, conversations) in &answered {
        let user = listed
            .get(id)
            .unwrap_or_else(|| panic!("user {id} answered 200 is missing"));
        let count = user["conversations"].as_u64().unwrap() as usize;
        // A recording cut off after it committed may have lost its answer.
        assert!(
            (*conversations..=conversations + 1).contains(&count),
            "{id}: {count} conversations, {conversations} answered 200"
        );
        let details = acme.get(&format!("/users/{id}")).await;
        assert_eq!(details.status, StatusCode::OK, "{}", details.text);
        assert_eq!(
            details.body["conversations"].as_array().unwrap().len(),
            count,
            "{id}: the count is the conversations stored"
        );
    }
    let members = every_user(
        &acme,
        &format!("&filters[0][field]=segments&filters[0][operator]=eq&filters[0][value]={segment}"),
    )
    .await;
    let segments = acme.get("/segments").await.body;
    assert_eq!(
        segments[0]["name"], "Writers",
        "the rename during the outage did not happen"
    );
    assert_eq!(
        segments[0]["users"].as_u64().unwrap() as usize,
        members.len(),
        "the segment counts the members it has: {:?}",
        ids_in(&json!({"data": members}))
    );
    // A user answered 503 was stored whole or not at all: its userId is
    // either listed or free.
    let user_ids: Vec<&str> = users
        .iter()
        .map(|u| u["userId"].as_str().unwrap())
        .collect();
    for user_id in ["during", "during-1", "during-2"] {
        assert!(!user_ids.contains(&user_id), "{user_id} was answered 503");
        let created = acme
            .post("/users", NewUser::new(user_id).with("x", "1").json())
            .await;
        assert_eq!(
            created.status,
            StatusCode::OK,
            "{user_id} is free: {}",
            created.text
        );
    }
    let details = acme.get(&user_path).await.body;
    assert_eq!(details["attributes"]["x"], "1");
    assert_eq!(details["banned"], false);
}

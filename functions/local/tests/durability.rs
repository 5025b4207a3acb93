//! A process that dies in the middle of a stream of writes: the local server,
//! on its own embedded engine and data directory (what `cargo run` starts),
//! is killed with SIGKILL while four clients create users, record their
//! conversations and update them. After a restart on the same directory,
//! every write that was answered `200` is there.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Server, request, try_request};

/// What one user was answered: created, then how many conversations and
/// whether the update were answered `200`.
#[derive(Debug, Default, Clone)]
struct Answered {
    conversations: usize,
    updated: bool,
}

fn serve(data_dir: &std::path::Path) -> Server {
    Server::start(|command| {
        command
            .arg("--data-dir")
            .arg(data_dir)
            .env("USERS_API_CLEANUP_INTERVAL_MS", "0");
    })
}

/// Writes until the server dies: create a user, record two conversations,
/// update an attribute; notes each `200`.
fn write_until_the_server_dies(
    addr: String,
    token: String,
    writer: usize,
    answered: Arc<Mutex<BTreeMap<String, Answered>>>,
    dead: Arc<AtomicBool>,
) {
    for n in 0.. {
        let body = format!(r#"{{"userId":"w{writer}-{n}","attributes":{{"step":"created"}}}}"#);
        let Some((200, created)) = try_request(&addr, "POST", "/users", &token, Some(&body)) else {
            if dead.load(Ordering::Relaxed) {
                return;
            }
            continue;
        };
        let id = created.split("\"id\":\"").nth(1).unwrap()[..24].to_owned();
        answered
            .lock()
            .unwrap()
            .insert(id.clone(), Answered::default());
        let conversations = format!("/users/{id}/conversations");
        for _ in 0..2 {
            if dead.load(Ordering::Relaxed) {
                return;
            }
            if let Some((200, _)) = try_request(
                &addr,
                "POST",
                &conversations,
                &token,
                Some(r#"{"firstMessage":"hi"}"#),
            ) {
                answered.lock().unwrap().get_mut(&id).unwrap().conversations += 1;
            }
        }
        if dead.load(Ordering::Relaxed) {
            return;
        }
        let update = r#"{"attributes":{"step":"updated"}}"#;
        if let Some((200, _)) =
            try_request(&addr, "PUT", &format!("/users/{id}"), &token, Some(update))
        {
            answered.lock().unwrap().get_mut(&id).unwrap().updated = true;
        }
        if dead.load(Ordering::Relaxed) {
            return;
        }
    }
}

#[test]
fn every_write_answered_200_survives_a_sigkill_of_the_server() {
    // GIVEN the local server on a fresh data directory, and four writers
    let data = std::env::temp_dir().join(format!("users-api-durability-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut server = serve(&data);
    let token = server.dev_token();
    let answered: Arc<Mutex<BTreeMap<String, Answered>>> = Arc::default();
    let dead = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (addr, token) = (server.addr.clone(), token.clone());
            let (answered, dead) = (answered.clone(), dead.clone());
            std::thread::spawn(move || {
                write_until_the_server_dies(addr, token, writer, answered, dead)
            })
        })
        .collect();

    // WHEN the server is killed with SIGKILL in the middle of their writes
    let started = Instant::now();
    while answered.lock().unwrap().len() < 60 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the writers never wrote"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    dead.store(true, Ordering::Relaxed);
    server.kill();
    for writer in writers {
        writer.join().unwrap();
    }

    // THEN after a restart on the same directory every write answered 200 is there
    let server = serve(&data);
    let answered = answered.lock().unwrap().clone();
    for (id, answered) in &answered {
        let (status, details) = request(&server.addr, "GET", &format!("/users/{id}"), &token, None);
        assert_eq!(status, 200, "user {id} was answered 200: {details}");
        let details: serde_json::Value = serde_json::from_str(&details).unwrap();
        let stored = details["conversationsCount"].as_u64().unwrap() as usize;
        // One recording may have committed and died before its answer.
        assert!(
            (answered.conversations..=answered.conversations + 1).contains(&stored),
            "{id}: {stored} conversations stored, {} answered 200",
            answered.conversations
        );
        if answered.updated {
            assert_eq!(details["attributes"]["step"], "updated", "{id}");
        }
    }
    let _ = std::fs::remove_dir_all(&data);
}

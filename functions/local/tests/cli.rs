//! The `users-api` binary as a newcomer uses it: `serve` on a data directory,
//! `token create` while the server runs, and data that survives a restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_users-api");

/// A running `users-api serve`, stopped when dropped.
struct Server {
    child: Child,
    addr: String,
    first_lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(data_dir: &Path) -> Server {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .args(["serve", "--addr", &addr, "--data-dir"])
        .arg(data_dir)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("TABLE_NAME")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("users-api starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut first_lines = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let listening = line.starts_with("Users API listening");
        first_lines.push(line);
        if listening {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        addr,
        first_lines,
    }
}

/// One HTTP/1.1 request; returns the status and the body.
fn request(addr: &str, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("connect {addr}: {e}"),
        }
    };
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn create_token(data_dir: &Path, account: &str) -> String {
    let output = Command::new(BIN)
        .args(["token", "create", "--account", account, "--data-dir"])
        .arg(data_dir)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("TABLE_NAME")
        .output()
        .expect("users-api token create runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout.lines().last().unwrap().trim().to_owned()
}

#[test]
fn serve_prints_a_dev_token_once_and_data_survives_a_restart() {
    let data = std::env::temp_dir().join(format!("users-api-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);

    let server = serve(&data);
    let token = server
        .first_lines
        .iter()
        .find(|l| l.starts_with("uat_"))
        .expect("a dev token is printed")
        .clone();
    let (status, body) = request(
        &server.addr,
        "POST",
        "/users",
        &token,
        Some(r#"{"userId":"u1","attributes":{"default_name":"Joe"}}"#),
    );
    assert_eq!(status, 200, "{body}");

    // A token made by the CLI while the server runs on the same data directory works at once.
    let acme = create_token(&data, "acme");
    assert!(acme.starts_with("uat_"));
    let (status, body) = request(&server.addr, "GET", "/users", &acme, None);
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#""count":0"#),
        "another account sees nothing: {body}"
    );
    drop(server);

    let server = serve(&data);
    assert!(
        !server.first_lines.iter().any(|l| l.starts_with("uat_")),
        "the dev token is printed only once"
    );
    let (status, body) = request(&server.addr, "GET", "/users", &token, None);
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""userId":"u1""#),
        "data survived the restart: {body}"
    );
    let (status, _) = request(&server.addr, "GET", "/users", &acme, None);
    assert_eq!(status, 200, "tokens survive too");

    // Revoked tokens stop working; the CLI works without a server as well.
    drop(server);
    let revoked = Command::new(BIN)
        .args(["token", "revoke", &acme, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let server = serve(&data);
    let (status, _) = request(&server.addr, "GET", "/users", &acme, None);
    assert_eq!(status, 401);
    drop(server);
    let _ = std::fs::remove_dir_all(&data);
}

//! The `users-api` binary driven as a user drives it: a server process on a
//! free port, and plain HTTP/1.1 requests to it.

#![allow(dead_code)] // each test file uses its part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_users-api");

/// A running `users-api serve`, killed (SIGKILL) when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
    /// What it printed up to "listening".
    pub first_lines: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// `users-api serve` on a free port, with what `configure` adds (a data
    /// directory, an endpoint, environment); returns once it listens.
    pub fn start(configure: impl FnOnce(&mut Command)) -> Server {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--addr", &addr])
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("TABLE_NAME")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        configure(&mut command);
        let mut child = command.spawn().expect("users-api starts");
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
        assert!(
            first_lines
                .iter()
                .any(|l| l.starts_with("Users API listening")),
            "the server did not start: {first_lines:?}"
        );
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            first_lines,
        }
    }

    /// The developer token a first start on a fresh data directory prints.
    pub fn dev_token(&self) -> String {
        self.first_lines
            .iter()
            .find(|l| l.starts_with("uat_"))
            .expect("a dev token is printed")
            .clone()
    }

    /// SIGKILL: the process dies wherever it is.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request; the status and the body, or `None` when the
/// connection ended without an answer or none could be made for 10 s (the
/// server died).
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return None,
        }
    };
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.get(9..12)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// One HTTP/1.1 request to a live server; the status and the body.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String) {
    try_request(addr, method, path, token, body)
        .unwrap_or_else(|| panic!("{method} {path}: no answer from {addr}"))
}

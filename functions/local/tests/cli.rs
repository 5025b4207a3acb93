//! The `users-api` binary as a newcomer uses it: `serve` on a data directory,
//! `token create` while the server runs, and data that survives a restart.

use std::path::Path;
use std::process::Command;

mod support;

use support::{BIN, Server, request};

fn serve(data_dir: &Path) -> Server {
    Server::start(|command| {
        command.arg("--data-dir").arg(data_dir);
    })
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

#[test]
fn account_usage_key_prints_what_the_authorizer_answers() {
    let output = Command::new(BIN)
        .args(["account", "usage-key", "acme"])
        .output()
        .expect("users-api account usage-key runs");
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let acme = shared::model::AccountId::parse("acme").unwrap();
    assert_eq!(printed.trim(), shared::http::usage_identifier_key(&acme));
    let refused = Command::new(BIN)
        .args(["account", "usage-key", "not an account"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a malformed account is refused");
}

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
    let token = server.dev_token();
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

/// Runs `users-api ARGS --data-dir DATA` (the embedded engine on DATA);
/// returns success, stdout and stderr.
fn admin(data: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("TABLE_NAME")
        .output()
        .expect("users-api runs");
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The counts of `account` in `users-api stats`: users, segments, tokens.
fn stats_of(data: &Path, account: &str) -> Vec<u64> {
    let (ok, table, errors) = admin(data, &["stats"]);
    assert!(ok, "{errors}");
    let row = table
        .lines()
        .find(|line| line.split_whitespace().next() == Some(account))
        .unwrap_or_else(|| panic!("no {account} in\n{table}"));
    row.split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn import_reports_bad_rows_by_line_resumes_and_round_trips_through_export() {
    let data = std::env::temp_dir().join(format!("users-api-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let file = data.join("users.csv");
    std::fs::write(
        &file,
        "User ID,Email,Name,First Seen\n\
         u1,ann@example.com,Ann,2019-01-23 13:32:30.163Z\n\
         ,bob@example.com,Bob,\n\
         u3,not an address,Cy,\n\
         u4,,'=SUM(A1),2020-02-02 02:02:02.002Z\n\
         u1,,Ann again,\n",
    )
    .unwrap();

    // GIVEN a file with two bad rows WHEN it is imported
    let (ok, out, errors) = admin(&data, &["import", file.to_str().unwrap()]);
    // THEN the good rows are stored and each bad one is named by its line
    assert!(!ok, "refused rows make the command fail");
    assert!(out.contains("imported 3 users"), "{out}");
    assert!(
        errors.contains("line 4: Email: must be an e-mail address"),
        "{errors}"
    );
    assert!(
        errors.contains("line 6: User ID: the same as line 2's"),
        "{errors}"
    );
    assert_eq!(stats_of(&data, "dev"), [3, 0, 0]);

    // AND running it again does nothing twice
    let (_, out, _) = admin(&data, &["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 0 users"), "{out}");
    assert!(out.contains("5 rows done by an earlier run"), "{out}");
    // AND a run that died after its first row (its progress says 1) goes on
    // without a second Bob, whose userId was generated
    let progress = file.with_extension("csv.progress");
    let saved = std::fs::read_to_string(&progress).unwrap();
    std::fs::write(&progress, saved.replace("\"done\": 5", "\"done\": 1")).unwrap();
    let (_, out, _) = admin(&data, &["import", file.to_str().unwrap()]);
    assert!(out.contains("imported 2 users"), "{out}");
    assert_eq!(stats_of(&data, "dev"), [3, 0, 0], "nothing twice");

    // WHEN the account is exported and the CSV imported into another
    let (ok, csv, errors) = admin(
        &data,
        &[
            "export",
            "--request",
            r#"{"sort":{"field":"createdAt","order":"asc"}}"#,
        ],
    );
    assert!(ok, "{errors}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[1].starts_with("Ann,ann@example.com,2019-01-23 13:32:30.163Z,"),
        "{csv}"
    );
    assert!(
        lines[2].starts_with("'=SUM(A1),,2020-02-02 02:02:02.002Z,"),
        "{csv}"
    );
    let copy = data.join("copy.csv");
    std::fs::write(&copy, &csv).unwrap();
    let (ok, out, errors) = admin(
        &data,
        &["import", copy.to_str().unwrap(), "--account", "copy"],
    );
    assert!(ok, "{out}{errors}");
    // THEN the copy exports the same rows
    let (_, copied, _) = admin(
        &data,
        &[
            "export",
            "--account",
            "copy",
            "--request",
            r#"{"sort":{"field":"createdAt","order":"asc"}}"#,
        ],
    );
    assert_eq!(copied, csv);
    assert_eq!(stats_of(&data, "copy"), [3, 0, 0]);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_first_start_on_a_fresh_directory_warns_of_nothing() {
    // The table does not exist yet: expected, so nothing is logged about it.
    let data = std::env::temp_dir().join(format!("users-api-fresh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (ok, table, errors) = admin(&data, &["stats"]);
    assert!(ok, "{errors}");
    assert!(errors.is_empty(), "{errors}");
    assert!(table.starts_with("account"), "{table}");
    let _ = std::fs::remove_dir_all(&data);
}

//! `users-api`: the local server (`serve`, the default) and admin commands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use export_function::ExportState;
use export_function::files::Files;
use shared::http::{AccountLimits, AppState, init_logging, usage_identifier_key};
use shared::model::AccountId;
use shared::store::Store;
use users_api::{
    Backend, EXPORTS_FOLDER, admin, announce, app_with_limits, clean_up_in_background, connect,
    export_jobs_in_background,
};

#[derive(Parser)]
#[command(
    name = "users-api",
    about = "The Users API, locally: server and admin commands"
)]
struct Cli {
    /// Directory of the embedded engine's database file.
    #[arg(
        long,
        env = "USERS_API_DATA_DIR",
        default_value = "data",
        global = true
    )]
    data_dir: PathBuf,
    /// Use this DynamoDB endpoint instead of the embedded engine (moto, LocalStack, AWS).
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    dynamodb_endpoint: Option<String>,
    /// The table name.
    #[arg(long, env = "TABLE_NAME", default_value = shared::store::DEFAULT_TABLE, global = true)]
    table: String,
    /// How often the server finishes pending clean-ups of deleted users and
    /// segments, in milliseconds (the first sweep runs at start-up), and
    /// (at most every 5 s) takes up export jobs no task runs (a crash
    /// interrupted them); 0 turns both off (another process does them, or a
    /// test). Export files go to the S3 bucket EXPORT_BUCKET names, else to
    /// `exports/` in the data directory.
    #[arg(
        long,
        env = "USERS_API_CLEANUP_INTERVAL_MS",
        default_value_t = 1000,
        global = true
    )]
    cleanup_interval_ms: u64,
    /// Address the server listens on.
    #[arg(
        long,
        env = "USERS_API_ADDR",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    addr: SocketAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Manage developer access tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Load users from a CSV file in the export's format (its headers, in any
    /// order; `User ID` or `Email` needed). Refused rows are reported with
    /// their line numbers and the others stored; a run that stopped goes on
    /// where it stopped when started again (`<file>.progress`).
    Import {
        file: PathBuf,
        #[arg(long, default_value = "dev")]
        account: String,
    },
    /// Write an account's users as CSV to stdout (what `POST /users/export`
    /// streams).
    Export {
        #[arg(long, default_value = "dev")]
        account: String,
        /// The export's JSON body: sort, match, filters, users, fields.
        #[arg(long, default_value = "{}")]
        request: String,
    },
    /// Users, segments and tokens per account (reads the whole table once).
    Stats,
    /// What an account needs outside the table.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Print the value of the account's API key in the API's usage plan
    /// (what `scripts/provision_account.sh` creates in API Gateway).
    UsageKey { account: String },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token for an account (created if new); prints it on the last line.
    Create {
        #[arg(long)]
        account: String,
    },
    /// Revoke a token.
    Revoke { token: String },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_logging();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("users-api: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(mut cli: Cli) -> Result<(), String> {
    match cli.command.take().unwrap_or(Command::Serve) {
        Command::Serve => serve(&cli).await,
        Command::Token { command } => {
            let (store, _backend) = open(&cli, true).await?;
            token_command(&store, command).await
        }
        Command::Import { file, account } => {
            let account = AccountId::parse(&account).map_err(|e| e.to_string())?;
            let (store, _backend) = open(&cli, true).await?;
            store
                .ensure_account(&account)
                .await
                .map_err(|e| describe(&e))?;
            let report = admin::import(&store, &account, &file, &mut std::io::stderr()).await?;
            println!(
                "imported {} users into '{account}'; {} rows refused (listed above); {} rows done by an earlier run",
                report.imported, report.refused, report.done_before
            );
            if report.refused > 0 {
                return Err(format!("{} rows were refused", report.refused));
            }
            Ok(())
        }
        Command::Export { account, request } => {
            let account = AccountId::parse(&account).map_err(|e| e.to_string())?;
            let (store, _backend) = open(&cli, true).await?;
            let files = Files::from_env(&cli.data_dir.join(EXPORTS_FOLDER)).await;
            admin::export(&store, files, &account, &request, &mut tokio::io::stdout()).await
        }
        Command::Stats => {
            let (store, _backend) = open(&cli, true).await?;
            let stats = store.account_stats().await.map_err(|e| describe(&e))?;
            print!("{}", admin::stats_table(&stats));
            Ok(())
        }
        Command::Account {
            command: AccountCommand::UsageKey { account },
        } => {
            let account = AccountId::parse(&account).map_err(|e| e.to_string())?;
            println!("{}", usage_identifier_key(&account));
            Ok(())
        }
    }
}

/// The store the command works on (see [`connect`]), its table made sure of.
async fn open(cli: &Cli, reuse_running: bool) -> Result<(Store, Backend), String> {
    let endpoint = cli.dynamodb_endpoint.as_deref().filter(|e| !e.is_empty());
    let (store, backend) = connect(endpoint, &cli.data_dir, &cli.table, reuse_running)
        .await
        .map_err(|e| describe(&e))?;
    store.ensure_table().await.map_err(|e| describe(&e))?;
    Ok((store, backend))
}

async fn serve(cli: &Cli) -> Result<(), String> {
    let (store, backend) = open(cli, false).await?;
    let addr = cli.addr;
    let _announcement = match &backend {
        Backend::Embedded(engine) => {
            Some(announce(&cli.data_dir, engine).map_err(|e| e.to_string())?)
        }
        Backend::Remote => None,
    };
    let dev = AccountId::parse("dev").expect("a valid account name");
    if store.ensure_account(&dev).await.map_err(|e| describe(&e))? {
        let token = store.create_token(&dev).await.map_err(|e| describe(&e))?;
        println!("Created account 'dev'. Its developer access token (shown once):");
        println!("{token}");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("listen on {addr}: {e}"))?;
    let _cleanup = (cli.cleanup_interval_ms > 0).then(|| {
        clean_up_in_background(
            store.clone(),
            std::time::Duration::from_millis(cli.cleanup_interval_ms),
        )
    });
    // Export files go to EXPORT_BUCKET when it is set (S3, moto,
    // LocalStack), else to a folder of the data directory.
    let files = Files::from_env(&cli.data_dir.join(EXPORTS_FOLDER)).await;
    let state = ExportState::local(AppState::new(store), files);
    let _export_jobs = (cli.cleanup_interval_ms > 0).then(|| {
        export_jobs_in_background(
            state.jobs.clone(),
            std::time::Duration::from_millis(cli.cleanup_interval_ms.max(5000)),
        )
    });
    println!("Users API listening on http://{addr}");
    axum::serve(listener, app_with_limits(state, AccountLimits::from_env()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn token_command(store: &Store, command: TokenCommand) -> Result<(), String> {
    match command {
        TokenCommand::Create { account } => {
            let account = AccountId::parse(&account).map_err(|e| e.to_string())?;
            let token = store
                .create_token(&account)
                .await
                .map_err(|e| describe(&e))?;
            println!("Token for account '{account}' (shown once):");
            println!("{token}");
            Ok(())
        }
        TokenCommand::Revoke { token } => {
            if store.revoke_token(&token).await.map_err(|e| describe(&e))? {
                println!("revoked");
                Ok(())
            } else {
                Err("no such token".into())
            }
        }
    }
}

/// The failure with its detail: this is an operator's console, not an API answer.
fn describe(error: &shared::ApiError) -> String {
    match error {
        shared::ApiError::Internal { detail, .. } | shared::ApiError::Unavailable { detail } => {
            detail.clone()
        }
        other => other.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

//! The embedded DynamoDB-compatible engine (dynoxide, on SQLite), served on a
//! loopback port inside this process, and clients for it. The local server
//! runs on it with a database file; the tests run on it in memory.

use std::path::Path;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use tokio::sync::oneshot;

use crate::error::ApiError;

/// An engine serving on a loopback port until dropped.
pub struct EmbeddedEngine {
    endpoint: String,
    stop: Option<oneshot::Sender<()>>,
}

impl EmbeddedEngine {
    /// Starts an engine on the database file at `path`, or in memory for `None`.
    pub async fn start(path: Option<&Path>) -> Result<Self, ApiError> {
        let database = match path {
            Some(path) => dynoxide::Database::new(&path.to_string_lossy()),
            None => dynoxide::Database::memory(),
        }
        .map_err(|e| ApiError::internal_from("open embedded database", e))?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| ApiError::internal_from("bind embedded engine", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| ApiError::internal_from("embedded engine address", e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(error) =
                dynoxide::server::serve_with_shutdown(listener, database, shutdown).await
            {
                tracing::error!(error = %error, "embedded engine stopped");
            }
        });
        Ok(Self {
            endpoint: format!("http://{address}"),
            stop: Some(stop),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for EmbeddedEngine {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A client for a local engine at `endpoint`: fixed region and dummy
/// credentials, so it works on a machine with no AWS configuration at all.
pub fn local_client(endpoint: &str) -> Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "embedded"))
        .endpoint_url(endpoint)
        .http_client(crate::aws::https_client(Some(endpoint)))
        .build();
    Client::from_conf(config)
}

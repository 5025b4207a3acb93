//! The export-jobs Lambda: builds the store and the bucket's client once,
//! then answers every event (the table's stream, the schedule) with
//! [`export_function::jobs::handle`].

use export_function::jobs::{JobConfig, Jobs};
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::http::init_logging;
use shared::store::Store;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let store = Store::for_lambda().await;
    let files =
        export_function::files::Files::from_env(export_function::LAMBDA_FOLDER.as_ref()).await;
    let jobs = Jobs::new(store, files, JobConfig::default());
    let jobs = &jobs;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        export_function::jobs::handle(jobs, event)
    }))
    .await
}

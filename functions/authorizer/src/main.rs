//! The authorizer Lambda: builds the store once, then answers API Gateway's
//! authorizer events with [`authorizer_function::handle`].

use authorizer_function::AuthorizerEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use shared::http::init_logging;
use shared::store::Store;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let store = Store::for_lambda().await;
    let store = &store;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<AuthorizerEvent>| {
        authorizer_function::handle(store, event.payload)
    }))
    .await
}

//! The floor of a cold start: `lambda_http` with nothing of ours (no SDK,
//! no logging set-up, no state), answering every event `200 ok`. Built with
//! the workspace's release profile, it is what `scripts/bench.sh` compares
//! each function's init and first answer with.

use lambda_http::{Body, Error, Request, Response, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(|_request: Request| async {
        Ok::<_, Error>(Response::new(Body::from("ok")))
    }))
    .await
}

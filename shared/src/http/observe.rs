//! Request ids and access logs. Every response carries `x-request-id` (the
//! caller's, when it sent a sane one); every request is logged as one JSON
//! line with the id, method, route template, status and duration — never a
//! header, a query value or a body, so tokens and attribute values stay out.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::error::Failures;

/// The request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn sane_request_id(value: &HeaderValue) -> Option<&str> {
    let text = value.to_str().ok()?;
    let ok = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then_some(text)
}

/// The request id: the caller's, the Lambda request's, or a new one.
fn request_id(request: &Request) -> String {
    if let Some(id) = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(sane_request_id)
    {
        return id.to_owned();
    }
    if let Some(lambda_http::request::RequestContext::ApiGatewayV1(ctx)) =
        request
            .extensions()
            .get::<lambda_http::request::RequestContext>()
        && let Some(id) = &ctx.request_id
    {
        return id.clone();
    }
    uuid::Uuid::new_v4().to_string()
}

/// The middleware: names the request, times it, logs it, tags the response.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let failures = response.extensions_mut().remove::<Failures>();
    span.in_scope(|| match failures {
        None => tracing::info!(status, duration_ms, "request"),
        Some(Failures(details)) => {
            let error = details.join("; ");
            if status == 500 {
                tracing::error!(status, duration_ms, error, "request")
            } else {
                tracing::warn!(status, duration_ms, error, "request")
            }
        }
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Dependencies that log request and response bodies (attribute values,
/// token hashes) at debug and trace level. They are capped whatever
/// `RUST_LOG` says, so no setting can put user data in the logs.
const CAPPED_TARGETS: [&str; 12] = [
    "dynoxide",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http_client",
    "aws_smithy_http",
    "aws_sdk_dynamodb",
    "aws_config",
    "hyper",
    "hyper_util",
    "lambda_runtime",
    "lambda_runtime_api_client",
    "lambda_http",
];

/// The log filter: `rust_log` (the `RUST_LOG` syntax; default `info`), with
/// the body-logging dependencies capped at `warn`, and the embedded engine
/// at `error`: it logs each 4xx it answers as a warning, and the store
/// expects those (a failed condition, the first start's "table not found").
pub fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::EnvFilter {
    let base = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let mut filter = tracing_subscriber::EnvFilter::try_new(base)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for target in CAPPED_TARGETS {
        let level = if target == "dynoxide" {
            "error"
        } else {
            "warn"
        };
        if let Ok(directive) = format!("{target}={level}").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Log lines on stderr, filtered by [`log_filter`] of `RUST_LOG`: JSON (one
/// object a line, what CloudWatch and log tools read), or, on a terminal
/// outside Lambda (a developer's `cargo run`, the admin commands), plain
/// readable lines.
pub fn init_logging() {
    use std::io::IsTerminal;
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = log_filter(rust_log.as_deref());
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    if !in_lambda && std::io::stderr().is_terminal() {
        let _ = tracing_subscriber::fmt()
            .compact()
            .with_env_filter(filter)
            .with_target(false)
            .with_writer(std::io::stderr)
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn no_setting_lets_dependencies_log_bodies_or_the_engine_warn_of_expected_answers() {
        for setting in [
            None,
            Some("trace"),
            Some("dynoxide=trace,aws_smithy_runtime=debug"),
        ] {
            let directives = log_filter(setting).to_string();
            assert!(directives.contains("dynoxide=error"), "{directives}");
            assert!(
                directives.contains("aws_smithy_runtime=warn"),
                "{directives}"
            );
            assert!(directives.contains("hyper=warn"), "{directives}");
        }
    }
}

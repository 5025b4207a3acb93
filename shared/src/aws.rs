//! The AWS SDK configuration every client of ours starts from, and the one
//! HTTPS client they all use: rustls on ring (the SDK's default client is
//! rustls on aws-lc-rs, which doubles the TLS share of each binary).
//!
//! A function's cold start pays for what its `main` does before it asks for
//! work. The SDK's default HTTPS client trusts the system's root
//! certificates, and reading them is one file per certificate (146 files on
//! Debian, the larger part of a function's init). Every AWS endpoint we call
//! (DynamoDB, S3) presents a chain that ends in one of Amazon Trust
//! Services' roots, so against AWS the client trusts exactly those, compiled
//! in ([`AMAZON_ROOTS`]). An `https://` endpoint of the user's choosing
//! (`AWS_ENDPOINT_URL*`: LocalStack, a proxy) may be signed by anyone, so
//! with one (or with [`NATIVE_ROOTS_ENV`] set) the system's roots are trusted
//! as before; a local `http://` engine uses no TLS at all.

use aws_config::ConfigLoader;
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

/// Amazon Root CA 1–4 and Starfield Services Root CA G2, as PEM.
pub const AMAZON_ROOTS: &str = include_str!("amazon_roots.pem");
/// Set (to anything) to trust the system's root certificates against AWS too.
pub const NATIVE_ROOTS_ENV: &str = "USERS_API_NATIVE_ROOTS";

/// Whether a TLS endpoint other than AWS's is configured (`endpoint`, or an
/// `AWS_ENDPOINT_URL*` variable).
fn other_tls_endpoint(endpoint: Option<&str>) -> bool {
    let https = |url: &str| url.trim().to_ascii_lowercase().starts_with("https://");
    endpoint.is_some_and(https)
        || std::env::vars()
            .any(|(name, value)| name.starts_with("AWS_ENDPOINT_URL") && https(&value))
}

/// `aws_config::defaults` with the latest behaviour, `endpoint` when given,
/// and [`https_client`] for `endpoint`.
pub fn config_loader(endpoint: Option<&str>) -> ConfigLoader {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client(endpoint));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader
}

/// The HTTPS client for `endpoint` (or the `AWS_ENDPOINT_URL*` ones): against
/// AWS's endpoints it trusts Amazon's roots; against an `https://` endpoint of
/// the user's, or with [`NATIVE_ROOTS_ENV`] set, the system's.
pub fn https_client(endpoint: Option<&str>) -> SharedHttpClient {
    let amazon_only = !other_tls_endpoint(endpoint) && std::env::var_os(NATIVE_ROOTS_ENV).is_none();
    let context = if amazon_only {
        let trust = TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AMAZON_ROOTS.as_bytes());
        TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .inspect_err(|error| {
                tracing::warn!(error = %error, "Amazon's roots refused; trusting the system's");
            })
            .ok()
    } else {
        None
    };
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(context.unwrap_or_default())
        .build_https()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amazon_roots_are_five_certificates() {
        assert_eq!(
            AMAZON_ROOTS.matches("-----BEGIN CERTIFICATE-----").count(),
            5
        );
        assert!(
            TlsContext::builder()
                .with_trust_store(
                    TrustStore::empty()
                        .with_native_roots(false)
                        .with_pem_certificate(AMAZON_ROOTS.as_bytes())
                )
                .build()
                .is_ok()
        );
    }

    #[test]
    fn only_an_https_endpoint_of_the_users_needs_the_systems_roots() {
        assert!(other_tls_endpoint(Some(
            "https://localhost.localstack.cloud:4566"
        )));
        assert!(other_tls_endpoint(Some("HTTPS://proxy.example")));
        // A local engine speaks plain HTTP: no certificate is ever checked.
        assert!(!other_tls_endpoint(Some("http://127.0.0.1:8000")) || has_https_env());
    }

    fn has_https_env() -> bool {
        other_tls_endpoint(None)
    }
}

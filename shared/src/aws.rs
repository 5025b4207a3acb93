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
//!
//! The configuration itself ([`sdk_config`]): in Lambda the environment
//! holds all of it (the region, the function role's credentials, the
//! endpoint override if any), so there it is read from the environment
//! directly, without `aws_config`'s provider chains (profile files, the
//! container and instance metadata providers, service-specific settings):
//! about 0.7 ms of every cold start. Anywhere else (a laptop with profiles or
//! SSO, an instance role, a service-specific `AWS_ENDPOINT_URL_*`) the
//! standard chain of `aws_config` decides, as before.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider, SharedHttpClient};
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

/// The SDK configuration: the latest behaviour, `endpoint` when given (else
/// `AWS_ENDPOINT_URL`), [`https_client`] for it, and `timeouts` when given.
/// In Lambda read straight from the environment ([`lambda_config`]),
/// elsewhere from `aws_config`'s standard chain.
pub async fn sdk_config(endpoint: Option<&str>, timeouts: Option<TimeoutConfig>) -> SdkConfig {
    if let Some(config) = lambda_config(endpoint, timeouts.clone(), |name| std::env::var(name).ok())
    {
        return config;
    }
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).http_client(https_client(endpoint));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    if let Some(timeouts) = timeouts {
        loader = loader.timeout_config(timeouts);
    }
    loader.load().await
}

/// Variables that only `aws_config`'s chain interprets: with one set, the
/// environment alone does not say the whole configuration.
const CHAIN_VARIABLES: [&str; 6] = [
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_S3",
    "AWS_USE_FIPS_ENDPOINT",
];

/// The configuration a Lambda function's environment gives (`var` reads it):
/// `None` outside Lambda (no `AWS_LAMBDA_RUNTIME_API`), without a region or
/// static credentials, or with a variable only the standard chain reads.
pub fn lambda_config(
    endpoint: Option<&str>,
    timeouts: Option<TimeoutConfig>,
    var: impl Fn(&str) -> Option<String>,
) -> Option<SdkConfig> {
    let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    var("AWS_LAMBDA_RUNTIME_API")?;
    if CHAIN_VARIABLES.iter().any(|name| var(name).is_some()) {
        return None;
    }
    let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION"))?;
    let credentials = Credentials::new(
        var("AWS_ACCESS_KEY_ID")?,
        var("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN"),
        None,
        "LambdaEnvironment",
    );
    let endpoint = endpoint
        .map(str::to_owned)
        .or_else(|| var("AWS_ENDPOINT_URL"));
    let mut config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .http_client(https_client(endpoint.as_deref()))
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts.unwrap_or_else(|| TimeoutConfig::builder().build()));
    config.set_endpoint_url(endpoint);
    Some(config.build())
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

    fn lambda_environment(extra: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let mut vars: std::collections::HashMap<String, String> = [
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        vars.retain(|_, value| value != "<unset>");
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn in_lambda_the_environment_is_the_configuration() {
        let config = lambda_config(None, None, lambda_environment(&[])).expect("a configuration");
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(config.endpoint_url(), None);
        assert!(config.credentials_provider().is_some());
        let local = lambda_config(
            None,
            None,
            lambda_environment(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:8000")]),
        )
        .unwrap();
        assert_eq!(local.endpoint_url(), Some("http://127.0.0.1:8000"));
        let given = lambda_config(Some("http://engine:1"), None, lambda_environment(&[])).unwrap();
        assert_eq!(given.endpoint_url(), Some("http://engine:1"));
    }

    #[test]
    fn outside_lambda_or_with_chain_settings_the_standard_chain_decides() {
        for unusual in [
            ("AWS_LAMBDA_RUNTIME_API", "<unset>"),
            ("AWS_REGION", "<unset>"),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_PROFILE", "dev"),
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://elsewhere"),
        ] {
            assert!(
                lambda_config(None, None, lambda_environment(&[unusual])).is_none(),
                "{unusual:?}"
            );
        }
    }
}

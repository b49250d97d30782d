//! The SDK client, built once per cold start from checked settings.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};

use crate::adapters::tls::AMAZON_TRUST_SERVICES;
use crate::config::AwsSettings;

/// The SDK client, built once per cold start from checked settings. Retries:
/// the SDK's standard mode (3 attempts, exponential backoff with jitter,
/// throttling-aware token bucket); each attempt and the whole call are
/// bounded, because the SDK has no timeout by default and a hung endpoint
/// would otherwise hold the invocation until Lambda kills it.
pub fn client(settings: &AwsSettings) -> Client {
    let credentials = Credentials::new(
        &settings.access_key_id,
        &settings.secret_access_key,
        settings.session_token.clone(),
        None,
        "environment",
    );
    let mut config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(http_client())
        .region(Region::new(settings.region.clone()))
        .credentials_provider(credentials)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(settings.attempt_timeout)
                .operation_attempt_timeout(settings.attempt_timeout)
                .operation_timeout(settings.operation_timeout)
                .build(),
        );
    if let Some(endpoint) = &settings.endpoint_url {
        config = config.endpoint_url(endpoint);
    }
    // Active tracing: each call a subsegment of the invocation's segment.
    if let Some(daemon) = crate::adapters::xray::daemon() {
        config = config.interceptor(crate::adapters::xray::DynamoDbTracing::new(daemon));
    }
    Client::from_conf(config.build())
}

/// The SDK's own rustls client, trusting only Amazon's roots. The default
/// one reads and parses the whole system trust store (~150 files) while the
/// client is built: measured at 20-35 ms of every cold start, more than
/// everything else in it together.
fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_TRUST_SERVICES);
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
    match TlsContext::builder().with_trust_store(trust).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        Err(error) => {
            // Not expected (the roots are compiled in); fall back to the
            // system's roots rather than fail the cold start.
            tracing::warn!(%error, "using the system trust store");
            builder.build_https()
        }
    }
}

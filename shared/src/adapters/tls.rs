//! The roots of trust for every HTTPS call the functions make: DynamoDB's
//! endpoints and Cognito's JWKS both chain to Amazon Trust Services (Amazon
//! Root CA 1-4 and the Starfield Services G2 cross-sign). Compiled in:
//! parsing the system trust store (~150 files) cost 20-35 ms of every cold
//! start, more than everything else in it together.

pub const AMAZON_TRUST_SERVICES: &[u8] = include_bytes!("../../certs/amazon-trust-services.pem");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_trust_store_loads() {
        let pem = std::str::from_utf8(AMAZON_TRUST_SERVICES).expect("PEM is text");
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        let trust = aws_smithy_http_client::tls::TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AMAZON_TRUST_SERVICES);
        let context = aws_smithy_http_client::tls::TlsContext::builder()
            .with_trust_store(trust)
            .build();
        assert!(context.is_ok(), "{context:?}");
    }
}

//! The DynamoDB client's configuration chain (`shared::store::dynamo::loader`,
//! aws-config's standard chain) on a given environment and files, offline:
//! a fake HTTP client answers the credential services (SSO, STS, the
//! container endpoint) and DynamoDB, and records every request, so each
//! test sees where the first DynamoDB call went and which credentials
//! signed it. The fake replaces the Amazon-roots client the same way
//! `loader` installs it: the credential providers use the loader's client
//! (no other one is compiled in: aws-config has no `default-https-client`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::config::Credentials;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_types::os_shim_internal::{Env, Fs};
use shared::config::AwsSettings;
use shared::store::dynamo::{client_from, loader};

/// One request the fake saw: its URI and `Authorization` header.
#[derive(Debug, Clone)]
struct Seen {
    uri: String,
    authorization: String,
}

/// Answers by host, as the real services would for the tests' profiles.
#[derive(Debug, Clone, Default)]
struct FakeAws {
    seen: Arc<Mutex<Vec<Seen>>>,
}

const FAR_FUTURE: &str = "2099-01-01T00:00:00Z";

impl FakeAws {
    fn answer(&self, request: &HttpRequest) -> HttpResponse {
        let uri = request.uri().to_owned();
        let authorization = request
            .headers()
            .get("authorization")
            .unwrap_or_default()
            .to_owned();
        self.seen.lock().expect("lock").push(Seen {
            uri: uri.clone(),
            authorization,
        });
        let body = if uri.starts_with("https://portal.sso.") {
            // SSO GetRoleCredentials (expiration in epoch milliseconds).
            r#"{"roleCredentials":{"accessKeyId":"AKIDSSO","secretAccessKey":"s","sessionToken":"t","expiration":4070908800000}}"#.to_owned()
        } else if uri.starts_with("https://sts.") {
            format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>AKIDWEBIDENTITY</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken><Expiration>{FAR_FUTURE}</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
            )
        } else if uri.starts_with("http://169.254.170.2/") {
            format!(
                r#"{{"AccessKeyId":"AKIDCONTAINER","SecretAccessKey":"s","Token":"t","Expiration":"{FAR_FUTURE}"}}"#
            )
        } else {
            // DynamoDB GetItem: no such item.
            "{}".to_owned()
        };
        let mut response = HttpResponse::new(200.try_into().expect("status"), SdkBody::from(body));
        if uri.contains("dynamodb") || uri.starts_with("http://127.0.0.1") {
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.0");
        }
        response
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl HttpConnector for FakeAws {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::ready(Ok(self.answer(&request)))
    }
}

impl HttpClient for FakeAws {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// What `Config::from_env` gives when only the chain knows the rest.
fn settings(region: Option<&str>) -> AwsSettings {
    AwsSettings {
        region: region.map(str::to_owned),
        endpoint_url: None,
        credentials: None,
        operation_timeout: Duration::from_secs(5),
        attempt_timeout: Duration::from_millis(1500),
    }
}

/// Builds the client as `dynamo::client` does, on `env` and `files`
/// instead of the process's, makes one GetItem, and returns every request
/// sent (credential services first, DynamoDB last).
async fn first_call(
    settings: &AwsSettings,
    env: &[(&str, &str)],
    files: &[(&str, &str)],
) -> Vec<Seen> {
    let fake = FakeAws::default();
    let config = loader(settings)
        .http_client(fake.clone())
        .env(Env::from_slice(env))
        .fs(Fs::from_slice(files))
        .load()
        .await;
    let client = client_from(&config, settings);
    client
        .get_item()
        .table_name("tasks")
        .key("PK", AttributeValue::S("USER#alice".into()))
        .key("SK", AttributeValue::S("TASK#1".into()))
        .send()
        .await
        .expect("GetItem");
    fake.seen()
}

/// The last request: DynamoDB's.
fn dynamodb_call(seen: &[Seen]) -> &Seen {
    seen.last().expect("a DynamoDB call")
}

fn signed_by(call: &Seen, key_id: &str, region: &str) {
    assert!(
        call.authorization
            .contains(&format!("Credential={key_id}/")),
        "{call:?}"
    );
    assert!(
        call.authorization
            .contains(&format!("/{region}/dynamodb/aws4_request")),
        "{call:?}"
    );
}

const HOME: (&str, &str) = ("HOME", "/home/dev");

#[tokio::test]
async fn lambda_environment_credentials_and_nothing_else() {
    // What Lambda hands a function: region and the role's session in the
    // environment. The chain stops at the environment: no IMDS, no
    // container endpoint, no profile.
    let seen = first_call(
        &settings(Some("eu-west-1")),
        &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "ASIALAMBDA"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
        ],
        &[],
    )
    .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "https://dynamodb.eu-west-1.amazonaws.com/");
    signed_by(&seen[0], "ASIALAMBDA", "eu-west-1");
}

#[tokio::test]
async fn a_named_profile_gives_region_and_credentials() {
    // `make dev DYNAMODB=aws AWS_PROFILE=me`: no endpoint, no region
    // variable, no keys in the environment: all from the profile.
    let seen = first_call(
        &settings(None),
        &[HOME, ("AWS_PROFILE", "me")],
        &[
            (
                "/home/dev/.aws/config",
                "[default]\nregion = us-east-1\n\n[profile me]\nregion = eu-west-3\n",
            ),
            (
                "/home/dev/.aws/credentials",
                "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s\n\n[me]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n",
            ),
        ],
    )
    .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "https://dynamodb.eu-west-3.amazonaws.com/");
    signed_by(&seen[0], "AKIDPROFILE", "eu-west-3");
}

#[tokio::test]
async fn an_sso_profile_uses_the_cached_sso_login() {
    // After `aws sso login --profile me`: the token is in ~/.aws/sso/cache
    // under the SHA-1 of the session's name ("dev").
    let seen = first_call(
        &settings(None),
        &[HOME, ("AWS_PROFILE", "me")],
        &[
            (
                "/home/dev/.aws/config",
                "[profile me]\nsso_session = dev\nsso_account_id = 123456789012\nsso_role_name = Developer\nregion = eu-west-3\n\n[sso-session dev]\nsso_region = eu-west-3\nsso_start_url = https://d-1234567890.awsapps.com/start\n",
            ),
            (
                "/home/dev/.aws/sso/cache/34c6fceca75e456f25e7e99531e2425c6c1de443.json",
                &format!(
                    r#"{{"accessToken":"token","expiresAt":"{FAR_FUTURE}","region":"eu-west-3","startUrl":"https://d-1234567890.awsapps.com/start"}}"#
                ),
            ),
        ],
    )
    .await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0]
            .uri
            .starts_with("https://portal.sso.eu-west-3.amazonaws.com/federation/credentials"),
        "{seen:?}"
    );
    signed_by(dynamodb_call(&seen), "AKIDSSO", "eu-west-3");
}

#[tokio::test]
async fn a_credential_process_profile_runs_its_command() {
    let seen = first_call(
        &settings(Some("eu-west-1")),
        &[HOME, ("AWS_PROFILE", "me")],
        &[(
            "/home/dev/.aws/config",
            r#"[profile me]
credential_process = echo '{"Version":1,"AccessKeyId":"AKIDPROCESS","SecretAccessKey":"s"}'
"#,
        )],
    )
    .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    signed_by(dynamodb_call(&seen), "AKIDPROCESS", "eu-west-1");
}

#[tokio::test]
async fn container_credentials() {
    // ECS tasks (and Lambda-style container credential endpoints).
    let seen = first_call(
        &settings(Some("eu-west-1")),
        &[
            HOME,
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/abc",
            ),
        ],
        &[],
    )
    .await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].uri, "http://169.254.170.2/v2/credentials/abc");
    signed_by(dynamodb_call(&seen), "AKIDCONTAINER", "eu-west-1");
}

#[tokio::test]
async fn web_identity() {
    // EKS service accounts, GitHub Actions OIDC.
    let seen = first_call(
        &settings(Some("eu-west-1")),
        &[
            HOME,
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/tasks"),
            ("AWS_ROLE_SESSION_NAME", "ci"),
        ],
        &[("/var/run/token", "a.jwt.token")],
    )
    .await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].uri.starts_with("https://sts."), "{seen:?}");
    signed_by(dynamodb_call(&seen), "AKIDWEBIDENTITY", "eu-west-1");
}

#[tokio::test]
async fn the_local_endpoint_and_fixed_credentials_win() {
    // devstack and the tests: whatever profile the developer has, the
    // local DynamoDB with its dummy credentials.
    let local = AwsSettings {
        endpoint_url: Some("http://127.0.0.1:8000".into()),
        credentials: Some(Credentials::new("local", "local", None, None, "test")),
        ..settings(Some("us-east-1"))
    };
    let seen = first_call(
        &local,
        &[HOME, ("AWS_PROFILE", "me")],
        &[(
            "/home/dev/.aws/credentials",
            "[me]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n",
        )],
    )
    .await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "http://127.0.0.1:8000/");
    signed_by(&seen[0], "local", "us-east-1");
}

#[tokio::test]
async fn the_default_local_environment_reaches_the_local_dynamodb() {
    // `make dev`'s environment (scripts/lib.sh export_local_env) read as a
    // function reads it: endpoint from the variable, dummy keys through
    // the chain's environment provider.
    let vars = [
        ("TABLE_NAME", "tasks"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
    ];
    let config = shared::config::Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("config");
    let seen = first_call(&config.aws, &vars, &[]).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "http://127.0.0.1:8000/");
    signed_by(&seen[0], "local", "us-east-1");
}

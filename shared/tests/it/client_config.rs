//! Where the DynamoDB client (`shared::adapters::dynamo::client`) sends its
//! calls and which credentials sign them, for the settings a function
//! reads: the local DynamoDB of `make dev`, and a real table with the
//! developer's own keys (`make dev DYNAMODB=aws`, which exports them into
//! the environment). Offline: a fake HTTP client takes the client's place
//! and records each request.

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use shared::adapters::dynamo::client;
use shared::config::Config;

/// One request: its URI and `Authorization` header.
#[derive(Debug, Clone)]
struct Seen {
    uri: String,
    authorization: String,
}

/// Answers every call as DynamoDB answers a GetItem for a missing item.
#[derive(Debug, Clone, Default)]
struct FakeDynamo {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpConnector for FakeDynamo {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        self.seen.lock().expect("lock").push(Seen {
            uri: request.uri().to_owned(),
            authorization: request
                .headers()
                .get("authorization")
                .unwrap_or_default()
                .to_owned(),
        });
        let mut response = HttpResponse::new(200.try_into().expect("status"), SdkBody::from("{}"));
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for FakeDynamo {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// The client a function builds from `vars`, its HTTP client swapped for
/// the fake; one GetItem; the request it sent.
async fn first_call(vars: &[(&str, &str)]) -> Seen {
    let config = Config::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("config");
    let fake = FakeDynamo::default();
    let built = client(&config.aws);
    let client = aws_sdk_dynamodb::Client::from_conf(
        built
            .config()
            .to_builder()
            .http_client(fake.clone())
            .build(),
    );
    client
        .get_item()
        .table_name(&config.table_name)
        .key("PK", AttributeValue::S("USER#alice".into()))
        .key("SK", AttributeValue::S("TASK#1".into()))
        .send()
        .await
        .expect("GetItem");
    let seen = fake.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    seen[0].clone()
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

#[tokio::test]
async fn make_devs_default_environment_reaches_the_local_dynamodb() {
    // scripts/lib.sh export_local_env, DYNAMODB=local.
    let call = first_call(&[
        ("TABLE_NAME", "tasks"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
    ])
    .await;
    assert_eq!(call.uri, "http://127.0.0.1:8000/");
    signed_by(&call, "local", "us-east-1");
}

#[tokio::test]
async fn the_real_table_setting_reaches_aws_with_the_developers_session() {
    // DYNAMODB=aws: a profile's temporary keys and region, no endpoint.
    let call = first_call(&[
        ("TABLE_NAME", "task-api-TasksTable-1A2B3C"),
        ("AWS_REGION", "eu-west-3"),
        ("AWS_ACCESS_KEY_ID", "ASIADEVELOPER"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
        ("AWS_SESSION_TOKEN", "t"),
        ("AWS_PROFILE", "me"),
    ])
    .await;
    assert_eq!(call.uri, "https://dynamodb.eu-west-3.amazonaws.com/");
    signed_by(&call, "ASIADEVELOPER", "eu-west-3");
}

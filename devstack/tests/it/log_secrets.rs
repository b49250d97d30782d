//! No secret in any log, at any level (issue 26): a function started as
//! Lambda starts it (`shared::runtime::start`, in a process of its own,
//! polling a local Runtime API), at `LOG_LEVEL=trace`, in local token mode
//! (its token check fetching the issuer's discovery document and keys)
//! against dynoxide, serves a create whose event carries a bearer token,
//! a feed ticket in the query and a task title in the body. lambda_runtime
//! logs the raw event at `trace` and the AWS SDK the DynamoDB requests at
//! `debug`/`trace`: the per-target filter (`shared::runtime::log_filter`)
//! must keep all three strings out of everything the process prints, in
//! both of its formats (Powertools JSON, as deployed; plain text, which
//! also prints span fields).

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use devstack::LocalDynamo;
use devstack::issuer::{Issuer, SigningKey, TokenKind};
use devstack::runtime_api::RuntimeApi;
use serde_json::Value;

const TABLE: &str = "tasks";
const AUDIENCE: &str = "task-api-local";
/// Set in the child process: it then serves instead of returning.
const CHILD: &str = "TASK_API_LOG_SECRETS_CHILD";
/// Unmistakable strings, so that a hit is a leak and nothing else.
const TICKET: &str = "tkt-9f3c1d77e2b84a51b0c6secretticket";
const TITLE: &str = "Quarterly payroll for Mallory (secret title 7d1e)";

/// The function process: `create_task` exactly as its `main.rs` starts it.
/// Ignored on its own; [`a_function_at_trace_level_logs_no_secret`] runs
/// it in a child process with the environment Lambda would give it.
#[test]
#[ignore = "the child process of a_function_at_trace_level_logs_no_secret"]
fn function_process() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let code = shared::runtime::start(shared::handlers::create_task::handle);
    panic!("the function stopped: {code:?}");
}

#[tokio::test]
async fn a_function_at_trace_level_logs_no_secret() {
    let dynamo = LocalDynamo::in_memory(TABLE)
        .await
        .expect("dynoxide starts");
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let issuer_url = format!("http://{}", listener.local_addr().expect("addr"));
    let issuer = Arc::new(Issuer::new(
        &issuer_url,
        AUDIENCE,
        SigningKey::generate().expect("key"),
    ));
    tokio::spawn(Arc::clone(&issuer).serve(listener));
    let token = issuer.token("alice", TokenKind::Valid).expect("token");

    for format in ["JSON", "Text"] {
        let output = run_function(&dynamo, &issuer_url, &token, format).await;
        for (secret, what) in [
            (token.as_str(), "the bearer token"),
            (TICKET, "the feed ticket"),
            (TITLE, "the task title"),
        ] {
            assert!(
                !output.contains(secret),
                "{format} logs at trace level print {what}:\n{output}"
            );
        }
        // Something was captured: this project's own debug lines (its
        // token check fetching the keys) and the request line.
        for line in ["JWKS fetched", "request"] {
            assert!(
                output.contains(line),
                "{format}: no {line:?} line in the output:\n{output}"
            );
        }
    }
}

/// Starts the function process at `LOG_LEVEL=trace`, hands it the event
/// and returns everything it printed (stdout and stderr).
async fn run_function(dynamo: &LocalDynamo, issuer: &str, token: &str, format: &str) -> String {
    let api = RuntimeApi::start().await.expect("runtime API");
    let exe = std::env::current_exe().expect("the test binary");
    let mut child = Command::new(exe)
        .args([
            "log_secrets::function_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .envs([
            (CHILD, "1"),
            ("AWS_LAMBDA_RUNTIME_API", &api.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME", "create_task"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_FORMAT", format),
            ("LOG_LEVEL", "trace"),
            ("TABLE_NAME", TABLE),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "local"),
            ("AWS_SECRET_ACCESS_KEY", "local"),
            ("AWS_ENDPOINT_URL_DYNAMODB", &dynamo.endpoint),
            ("JWT_ISSUER", issuer),
            ("JWT_AUDIENCE", AUDIENCE),
            ("JWT_SCOPES", devstack::issuer::SCOPE),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the function process starts");
    // Read as it is written: a full pipe would stop the function.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );

    let answer = tokio::time::timeout(
        Duration::from_secs(30),
        api.invoke("log-secrets-1", &event(token).to_string()),
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let output = format!(
        "{}{}",
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default()
    );
    let answer = answer
        .unwrap_or_else(|_| panic!("no answer within 30 s:\n{output}"))
        .unwrap_or_else(|| panic!("the runtime API stopped:\n{output}"));
    let body = answer
        .outcome
        .unwrap_or_else(|error| panic!("invocation error {error:?}:\n{output}"));
    let response: Value = serde_json::from_slice(&body).expect("a JSON response");
    assert_eq!(response["statusCode"], 201, "{response}\n{output}");
    output
}

/// The sample create event with the three secrets in it.
fn event(token: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/create_task.json");
    let text = std::fs::read_to_string(path).expect("the sample event");
    let mut event: Value = serde_json::from_str(&text).expect("JSON");
    event["headers"]["authorization"] = format!("Bearer {token}").into();
    event["rawQueryString"] = format!("ticket={TICKET}").into();
    event["queryStringParameters"] = serde_json::json!({ "ticket": TICKET });
    event["body"] = serde_json::json!({ "title": TITLE }).to_string().into();
    event
}

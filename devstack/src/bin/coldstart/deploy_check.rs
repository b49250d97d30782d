//! `coldstart --deploy-check FUNCTIONS_JSON [--wrapper CMD] [function...]`:
//! the deploy artifacts proven before they ship (`make deploy-check`).
//!
//! Each function of the template (`functions.json`, written by
//! `scripts/sam_translate.py` from the template after SAM's transform) is
//! started from its `.aws-sam/build/<Id>/bootstrap` as Lambda starts it,
//! through `--wrapper` (`qemu-aarch64-static -L /usr/aarch64-linux-gnu` for
//! the arm64 binaries on an x86_64 machine), with the environment the
//! template gives it (no `IDENTITY_MODE`) plus a local DynamoDB endpoint
//! and dummy credentials. Each gets its sample event (`events/<f>.json`)
//! and its answer is checked: status and shape, the audit's batch result,
//! the streamed bodies. The two streamed functions are called as their
//! Function URLs call them: no authorizer, a bearer token signed by a key
//! whose JWKS is served here on loopback (the template's `JwtIssuer`
//! parameter set to it). One deviation from the template, so the check
//! does not wait four minutes: the live feed's `EVENTS_LIFETIME_SECONDS`
//! is 2.

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use devstack::LocalDynamo;
use devstack::runtime_api::RuntimeApi;
use serde_json::{Value, json};

const JWKS: &str = include_str!("../../../../shared/tests/fixtures/token/jwks-a.json");
const SIGNING_KEY: &[u8] = include_bytes!("../../../../shared/tests/fixtures/token/rsa-a.der");
const KEY_ID: &str = "key-a";
/// The caller of every sample event.
const CALLER: &str = "alice";
/// The task id the sample events name, replaced by a task that exists.
const SAMPLE_TASK_ID: &str = "0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d";
/// Every function this check knows (`check` has an arm for each), in run
/// order: the delete last, the task it deletes is the others' task. A
/// function of the template missing here is refused before anything
/// starts, so even a run of two (`make deploy-check-ci`) notices it.
const ORDER: &[&str] = &[
    "health",
    "me",
    "docs",
    "fallback",
    "create_task",
    "create_ticket",
    "list_tasks",
    "get_task",
    "replace_task",
    "update_task",
    "task_history",
    "export_tasks",
    "task_events",
    "audit",
    "delete_task",
];

struct Target {
    function: String,
    bootstrap: String,
    memory: u64,
    log_format: String,
    log_level: String,
    streamed: bool,
    environment: Vec<(String, String)>,
    jwt_audience: String,
}

fn targets(path: &str) -> Result<Vec<Target>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let list: Vec<Value> = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let s = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    Ok(list
        .iter()
        .map(|f| Target {
            function: s(f, "function"),
            bootstrap: s(f, "bootstrap"),
            memory: f["memory"].as_u64().unwrap_or(128),
            log_format: s(f, "log_format"),
            log_level: s(f, "log_level"),
            streamed: f["streamed"].as_bool().unwrap_or(false),
            environment: f["environment"]
                .as_object()
                .map(|env| {
                    env.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            jwt_audience: s(f, "jwt_audience"),
        })
        .collect())
}

/// A JWKS on loopback at `/.well-known/jwks.json` (where Cognito serves
/// it), named by the issuer's discovery document, as the functions find it.
async fn jwks_server() -> Result<(u16, tokio::task::JoinHandle<()>), String> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let discovery = json!({
        "issuer": format!("http://127.0.0.1:{port}"),
        "jwks_uri": format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
    })
    .to_string();
    let app = axum::Router::new()
        .route(
            "/.well-known/jwks.json",
            get(|| async { ([("content-type", "application/json")], JWKS) }),
        )
        .route(
            "/.well-known/openid-configuration",
            get(|| async { ([("content-type", "application/json")], discovery) }),
        );
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, server))
}

/// A Cognito-shaped access token for `CALLER`.
fn bearer(issuer: &str, audience: &str) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KEY_ID.into());
    let claims = json!({
        "sub": CALLER, "iss": issuer, "client_id": audience,
        "token_use": "access", "iat": now, "exp": now + 900,
        // What the template's JwtScope requires by default.
        "scope": "aws.cognito.signin.user.admin",
    });
    let key = jsonwebtoken::EncodingKey::from_rsa_der(SIGNING_KEY);
    jsonwebtoken::encode(&header, &claims, &key)
        .map(|token| format!("Bearer {token}"))
        .map_err(|e| e.to_string())
}

/// A task of `CALLER`'s for the events that name one.
async fn seed_task(dynamo: &LocalDynamo) -> Result<String, String> {
    use shared::domain::task::{Task, TaskCreate, now};
    use shared::ports::{CreateRules, TaskStore};
    let owner = shared::domain::caller::Caller::new(CALLER).ok_or("caller")?;
    let task = Task::new(
        TaskCreate {
            title: "deploy check".into(),
            ..TaskCreate::default()
        },
        now(),
    );
    let id = task.id.to_string();
    let rules = CreateRules {
        max_tasks: u32::MAX,
        idempotency: None,
    };
    dynamo
        .store()
        .create(&owner, task, rules)
        .await
        .map_err(|e| format!("seeding a task: {e}"))?;
    Ok(id)
}

/// The sample event, as this function receives it deployed.
fn event_for(target: &Target, task_id: &str, authorization: &str) -> Result<Value, String> {
    let path = format!("events/{}.json", target.function);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut event: Value =
        serde_json::from_str(&text.replace(SAMPLE_TASK_ID, task_id)).map_err(|e| e.to_string())?;
    if target.streamed {
        // Through its Function URL: no authorizer, the caller's token.
        if let Some(context) = event["requestContext"].as_object_mut() {
            context.remove("authorizer");
        }
        event["headers"]["authorization"] = authorization.into();
    }
    Ok(event)
}

struct Answer {
    status: u64,
    headers: Value,
    body: Vec<u8>,
}

/// A buffered (API Gateway) or streamed (prelude, 8 NULs, body) response.
fn answer(bytes: &[u8]) -> Result<Answer, String> {
    if let Some((prelude, body)) = super::split_stream(bytes) {
        let prelude: Value = serde_json::from_slice(prelude).map_err(|e| e.to_string())?;
        return Ok(Answer {
            status: prelude["statusCode"].as_u64().unwrap_or(0),
            headers: prelude["headers"].clone(),
            body: body.to_vec(),
        });
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let text = v["body"].as_str().unwrap_or_default();
    let body = if v["isBase64Encoded"].as_bool() == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| e.to_string())?
    } else {
        text.as_bytes().to_vec()
    };
    Ok(Answer {
        status: v["statusCode"].as_u64().unwrap_or(0),
        headers: v["headers"].clone(),
        body,
    })
}

fn json_body(a: &Answer) -> Result<Value, String> {
    serde_json::from_slice(&a.body).map_err(|e| format!("body is not JSON: {e}"))
}

fn expect_status(a: &Answer, want: u64) -> Result<(), String> {
    if a.status == want {
        Ok(())
    } else {
        Err(format!(
            "status {} (want {want}): {}",
            a.status,
            String::from_utf8_lossy(&a.body)
        ))
    }
}

/// A Task as the contract shows it: `id`, the declared fields, the times,
/// nothing else.
fn expect_task(v: &Value) -> Result<(), String> {
    let mut keys: Vec<&str> = v
        .as_object()
        .ok_or("a task is an object")?
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want: Vec<&str> = ["id", "created_at", "updated_at"]
        .into_iter()
        .chain(shared::domain::task::FIELDS.iter().map(|field| field.name))
        .collect();
    want.sort_unstable();
    if keys != want {
        return Err(format!("task fields {keys:?}, want {want:?}"));
    }
    Ok(())
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers[name].as_str().unwrap_or_default()
}

/// The check of each function's answer to its sample event.
fn check(function: &str, a: &Answer, task_id: &str) -> Result<(), String> {
    match function {
        "health" => {
            expect_status(a, 200)?;
            (json_body(a)? == json!({"status": "ok"}))
                .then_some(())
                .ok_or("body is not {\"status\":\"ok\"}".into())
        }
        "me" => {
            expect_status(a, 200)?;
            (json_body(a)? == json!({"user_id": CALLER}))
                .then_some(())
                .ok_or(format!("body is not the caller {CALLER}"))
        }
        "docs" => {
            expect_status(a, 200)?;
            (json_body(a)?["openapi"] == "3.1.0")
                .then_some(())
                .ok_or("not an OpenAPI 3.1 document".into())
        }
        "fallback" => {
            if ![404, 405].contains(&a.status) || json_body(a)?["detail"].as_str().is_none() {
                return Err(format!("status {}, want 404/405 with a detail", a.status));
            }
            Ok(())
        }
        "create_task" => {
            expect_status(a, 201)?;
            expect_task(&json_body(a)?)?;
            if header(a, "location").is_empty() || header(a, "etag").is_empty() {
                return Err("no Location or ETag".into());
            }
            Ok(())
        }
        "get_task" | "replace_task" | "update_task" => {
            expect_status(a, 200)?;
            let task = json_body(a)?;
            expect_task(&task)?;
            if task["id"] != task_id {
                return Err(format!("task {}, want {task_id}", task["id"]));
            }
            Ok(())
        }
        "list_tasks" => {
            expect_status(a, 200)?;
            let page = json_body(a)?;
            let items = page["items"].as_array().ok_or("no items")?;
            items.iter().try_for_each(expect_task)?;
            if items.is_empty() || page.get("next_cursor").is_none() {
                return Err("an empty page or no next_cursor".into());
            }
            Ok(())
        }
        "create_ticket" => {
            expect_status(a, 201)?;
            let body = json_body(a)?;
            let ticket = body["ticket"].as_str().unwrap_or_default();
            let url = body["url"].as_str().unwrap_or_default();
            // Deployed, the feed's path on the feed function's own URL
            // (EVENTS_URL, a bare origin).
            if ticket.len() < 32
                || !url.starts_with("http")
                || !url.ends_with(&format!("{}?ticket={ticket}", shared::config::FEED_PATH))
            {
                return Err(format!("ticket {ticket:?} with url {url:?}"));
            }
            let expires_at = body["expires_at"].as_str().unwrap_or_default();
            let expires_at = chrono::DateTime::parse_from_rfc3339(expires_at)
                .map_err(|e| format!("expires_at {expires_at:?}: {e}"))?;
            let left = expires_at.signed_duration_since(chrono::Utc::now());
            let lifetime = shared::http::identity::TICKET_LIFETIME_SECONDS;
            if !(lifetime - 120..=lifetime).contains(&left.num_seconds()) {
                return Err(format!("the ticket expires in {left}, want {lifetime} s"));
            }
            Ok(())
        }
        "task_history" => {
            expect_status(a, 200)?;
            json_body(a)?
                .as_object()
                .map(|_| ())
                .ok_or("history is not an object".into())
        }
        "delete_task" => {
            expect_status(a, 204)?;
            a.body
                .is_empty()
                .then_some(())
                .ok_or("a 204 with a body".into())
        }
        "export_tasks" => {
            expect_status(a, 200)?;
            let csv = String::from_utf8_lossy(&a.body);
            let lines = csv.lines().count();
            if !csv.starts_with("id,") || lines < 2 || !csv.contains(task_id) {
                return Err(format!("streamed CSV with {lines} lines: {csv:.200}"));
            }
            Ok(())
        }
        "task_events" => {
            expect_status(a, 200)?;
            let stream = String::from_utf8_lossy(&a.body);
            if !header(a, "content-type").starts_with("text/event-stream")
                || !stream.contains("retry:")
            {
                return Err(format!(
                    "not an event stream ending in retry: {stream:.200}"
                ));
            }
            Ok(())
        }
        other => Err(format!("no check for {other}")),
    }
}

/// The audit function's batch result: every record stored.
fn check_batch(bytes: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    match v["batchItemFailures"].as_array() {
        Some(failures) if failures.is_empty() => Ok(()),
        _ => Err(format!("batch result {v}")),
    }
}

/// The docs function's precompressed files: gzip as stored when accepted,
/// decompressed otherwise.
async fn check_docs_assets(api: &RuntimeApi, event: &Value) -> Result<(), String> {
    for gzip in [true, false] {
        let mut e = event.clone();
        e["rawPath"] = "/docs/swagger-ui-bundle.js".into();
        e["requestContext"]["http"]["path"] = "/docs/swagger-ui-bundle.js".into();
        if gzip {
            e["headers"]["accept-encoding"] = "gzip, deflate, br".into();
        }
        let invocation = api
            .invoke(&format!("docs-asset-{gzip}"), &e.to_string())
            .await
            .ok_or("runtime API closed")?;
        let bytes = invocation
            .outcome
            .map_err(|e| String::from_utf8_lossy(&e).into_owned())?;
        let a = answer(&bytes)?;
        expect_status(&a, 200)?;
        let gzipped = header(&a, "content-encoding") == "gzip";
        let magic = a.body.starts_with(&[0x1f, 0x8b]);
        if gzip != gzipped || gzip != magic || (!gzip && a.body.len() < 1_000_000) {
            return Err(format!(
                "/docs/swagger-ui-bundle.js accept gzip {gzip}: content-encoding {gzipped}, {} bytes",
                a.body.len()
            ));
        }
    }
    Ok(())
}

pub async fn run(path: &str, wrapper: &[String], only: &[String]) -> Result<(), String> {
    let mut targets = targets(path)?;
    let unknown: Vec<&str> = targets
        .iter()
        .map(|t| t.function.as_str())
        .filter(|f| !ORDER.contains(f))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "no check for {unknown:?} (deploy_check.rs: ORDER and check)"
        ));
    }
    targets.sort_by_key(|t| ORDER.iter().position(|f| *f == t.function));
    if !only.is_empty() {
        targets.retain(|t| only.contains(&t.function));
        if targets.len() != only.len() {
            return Err(format!("not all of {only:?} are in {path}"));
        }
    }
    let dynamo = LocalDynamo::in_memory("tasks").await?;
    let (jwks_port, jwks) = jwks_server().await?;
    let task_id = seed_task(&dynamo).await?;
    let issuer = format!("http://127.0.0.1:{jwks_port}");

    println!(
        "{:<14} {:>8} {:>9} {:>8} {:>7}  result",
        "function", "init ms", "first ms", "status", "RSS MB"
    );
    let mut failed = Vec::new();
    for target in &targets {
        let outcome = check_one(target, wrapper, &dynamo, &issuer, jwks_port, &task_id).await;
        match outcome {
            Ok(line) => println!("{line}  ok"),
            Err((line, error)) => {
                println!("{line}  FAIL: {error}");
                failed.push(target.function.clone());
            }
        }
    }
    // One function behind the authorizer is enough: they all start alike
    // (shared::runtime::start, start_without_storage).
    if let Some(target) = targets
        .iter()
        .find(|t| ["get_task", "me"].contains(&t.function.as_str()))
    {
        match check_refuses_token_mode(target, wrapper, &dynamo, &issuer, jwks_port).await {
            Ok(()) => println!(
                "{}: refused to start with JWT_ISSUER set (no token check in a deploy build)  ok",
                target.function
            ),
            Err(error) => {
                println!("{}: FAIL: {error}", target.function);
                failed.push(format!("{} (JWT_ISSUER)", target.function));
            }
        }
    }
    jwks.abort();
    dynamo.stop().await?;
    if failed.is_empty() {
        println!(
            "{} of {} functions answered as deployed",
            targets.len(),
            targets.len()
        );
        Ok(())
    } else {
        Err(format!("failed: {}", failed.join(", ")))
    }
}

/// The command Lambda would run for `target`: its bootstrap (through
/// `wrapper`), the environment Lambda sets for a provided.al2023 function
/// and the template's, with the local DynamoDB.
fn lambda_command(
    target: &Target,
    wrapper: &[String],
    runtime_api: std::net::SocketAddr,
    dynamo: &LocalDynamo,
    jwks_port: u16,
) -> (String, tokio::process::Command) {
    let name = &target.function;
    let (program, args) = match wrapper.split_first() {
        Some((program, args)) => (
            program.clone(),
            [args, std::slice::from_ref(&target.bootstrap)].concat(),
        ),
        None => (target.bootstrap.clone(), Vec::new()),
    };
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // What Lambda sets for a provided.al2023 function.
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", target.memory.to_string())
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "deploy-check")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_FORMAT", &target.log_format)
        .env("AWS_LAMBDA_LOG_LEVEL", &target.log_level)
        .env("_HANDLER", "bootstrap")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_SESSION_TOKEN", "local")
        // The one local override: DynamoDB is the embedded one.
        .env("AWS_ENDPOINT_URL_DYNAMODB", &dynamo.endpoint);
    for (key, value) in &target.environment {
        let value = value.replace("{jwks_port}", &jwks_port.to_string());
        let value = if key == "EVENTS_LIFETIME_SECONDS" {
            "2".to_owned()
        } else {
            value
        };
        command.env(key, value);
    }
    (program, command)
}

/// A function deployed behind the JWT authorizer is built without the
/// token check (shared's `local-authorizer` feature is off in a deploy
/// build): given `JWT_ISSUER` anyway, it must refuse to start (exit
/// before asking for an event, naming the variable) rather than serve
/// callers nobody verified.
async fn check_refuses_token_mode(
    target: &Target,
    wrapper: &[String],
    dynamo: &LocalDynamo,
    issuer: &str,
    jwks_port: u16,
) -> Result<(), String> {
    let api = RuntimeApi::start().await.map_err(|e| e.to_string())?;
    let (program, mut command) = lambda_command(target, wrapper, api.addr, dynamo, jwks_port);
    command
        .env("JWT_ISSUER", issuer)
        .env("JWT_AUDIENCE", "deploy-check")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| format!("{program} {}: {e}", target.bootstrap))?;
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| "still running 60 s after start with JWT_ISSUER set".to_owned())?
        .map_err(|e| e.to_string())?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.success() || api.first_poll().is_some() || !stderr.contains("JWT_ISSUER") {
        return Err(format!(
            "with JWT_ISSUER set: {} (asked for an event: {}); stderr: {stderr:.600}",
            output.status,
            api.first_poll().is_some()
        ));
    }
    Ok(())
}

async fn check_one(
    target: &Target,
    wrapper: &[String],
    dynamo: &LocalDynamo,
    issuer: &str,
    jwks_port: u16,
    task_id: &str,
) -> Result<String, (String, String)> {
    let name = &target.function;
    let fail = |e: String| {
        (
            format!("{name:<14} {:>8} {:>9} {:>8} {:>7}", "-", "-", "-", "-"),
            e,
        )
    };
    let authorization = bearer(issuer, &target.jwt_audience).map_err(fail)?;
    let event = event_for(target, task_id, &authorization).map_err(fail)?;
    let api = RuntimeApi::start().await.map_err(|e| fail(e.to_string()))?;

    let (program, mut command) = lambda_command(target, wrapper, api.addr, dynamo, jwks_port);
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("{program} {}: {e}", target.bootstrap)))?;
    let pid = child.id().unwrap_or(0);

    let first = tokio::time::timeout(
        Duration::from_secs(60),
        api.invoke("first", &event.to_string()),
    )
    .await
    .ok()
    .flatten();
    let rss = super::peak_rss_kb(pid) as f64 / 1024.0;
    let init = api.first_poll().map_or(f64::NAN, |polled| {
        polled.duration_since(started).as_secs_f64() * 1000.0
    });
    let Some(first) = first else {
        let _ = child.start_kill();
        let stderr = match child.wait_with_output().await {
            Ok(output) => String::from_utf8_lossy(&output.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        return Err(fail(format!(
            "no answer within 60 s; stderr: {stderr:.600}"
        )));
    };
    let first_ms = first
        .answered
        .duration_since(first.handed_out)
        .as_secs_f64()
        * 1000.0;
    let verdict = match &first.outcome {
        Err(error) => Err(format!("error: {}", String::from_utf8_lossy(error))),
        Ok(bytes) if name == "audit" => check_batch(bytes).map(|()| "batch ok".to_owned()),
        Ok(bytes) => answer(bytes).and_then(|a| {
            check(name, &a, task_id)?;
            Ok(a.status.to_string())
        }),
    };
    let verdict = match verdict {
        Ok(status) if name == "docs" => check_docs_assets(&api, &event)
            .await
            .map(|()| format!("{status}+gz")),
        other => other,
    };
    let _ = child.kill().await;
    let status = verdict.as_deref().unwrap_or("-");
    let line = format!("{name:<14} {init:>8.1} {first_ms:>9.1} {status:>8} {rss:>7.1}");
    match verdict {
        Ok(_) => Ok(line),
        Err(error) => Err((line, error)),
    }
}

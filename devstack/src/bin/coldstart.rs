//! `coldstart`: starts each function's release binary as Lambda would (a
//! fresh process pointed at a local Runtime API, with an embedded DynamoDB)
//! and prints, per function: init time (process start to its first poll),
//! the first invocation, warm invocations (median and p99 of N) and peak RSS.
//!
//! ```text
//! cargo build --release --bins && cargo run -p devstack --bin coldstart [-- --warm 200 --starts 5]
//! cargo run -p devstack --bin coldstart -- --export 1000 10000
//! ```
//!
//! `--deploy-check FUNCTIONS_JSON [--wrapper CMD]`: each function of the
//! template started from its `sam build` artifact (through `CMD`, e.g.
//! qemu for arm64), in its deployed configuration, and its answer to its
//! sample event checked (`make deploy-check`; see `deploy_check.rs`).
//!
//! `--export N...`: the streamed export instead, once per count, each in a
//! fresh process on a caller with N tasks: bytes streamed, time, and peak
//! RSS, which must not grow with N.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use devstack::LocalDynamo;
use devstack::runtime_api::RuntimeApi;

#[path = "coldstart/deploy_check.rs"]
mod deploy_check;

struct Figures {
    function: String,
    init: Duration,
    first: Duration,
    warm_median: Duration,
    warm_p99: Duration,
    peak_rss_kb: u64,
    status: String,
}

/// `VmHWM` of a process: its peak resident set.
fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0)
}

/// A streamed response's body: after the JSON prelude (status, headers)
/// and its 8-NUL separator.
const STREAM_SEPARATOR: [u8; 8] = [0; 8];

/// `(prelude, body)` of a streamed response, `None` for a buffered one.
fn split_stream(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = body
        .windows(STREAM_SEPARATOR.len())
        .position(|w| w == STREAM_SEPARATOR)?;
    Some((&body[..at], &body[at + STREAM_SEPARATOR.len()..]))
}

/// The HTTP status of an API response (buffered or streamed), or the
/// failure count of a stream batch response.
fn status_of(body: &[u8]) -> String {
    let head = split_stream(body).map_or(body, |(prelude, _)| prelude);
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(head) else {
        return "?".to_owned();
    };
    match (
        answer["statusCode"].as_u64(),
        answer["batchItemFailures"].as_array(),
    ) {
        (Some(status), _) => status.to_string(),
        (None, Some(failures)) => format!("{} failures", failures.len()),
        _ => "?".to_owned(),
    }
}

fn sample_event(function: &str) -> Result<String, String> {
    std::fs::read_to_string(format!("events/{function}.json"))
        .map_err(|e| format!("events/{function}.json: {e}"))
}

/// Where the release binaries are: `COLDSTART_BIN_DIR`, default
/// `target/release` (another directory to compare profiles).
fn bin_dir() -> String {
    std::env::var("COLDSTART_BIN_DIR").unwrap_or_else(|_| "target/release".to_owned())
}

async fn measure(
    function: &str,
    event: &str,
    endpoint: &str,
    warm: usize,
) -> Result<(Figures, Vec<u8>), String> {
    let api = RuntimeApi::start().await.map_err(|e| e.to_string())?;
    // The X-Ray daemon of active tracing: a UDP socket nobody reads (the
    // functions' sends are measured, not the documents).
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let daemon_address = daemon.local_addr().map_err(|e| e.to_string())?;
    let binary = format!("{}/{function}", bin_dir());
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", function)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        )
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        // WARN: no per-request line; COLDSTART_LOG_LEVEL=INFO measures it.
        .env(
            "AWS_LAMBDA_LOG_LEVEL",
            std::env::var("COLDSTART_LOG_LEVEL").unwrap_or_else(|_| "WARN".to_owned()),
        )
        .env("AWS_XRAY_DAEMON_ADDRESS", daemon_address.to_string())
        .env("TABLE_NAME", "tasks")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_ENDPOINT_URL_DYNAMODB", endpoint)
        // The live feed streams for its lifetime: 1 s here, so its "first"
        // is that second plus the work around it.
        .env("EVENTS_LIFETIME_SECONDS", "1")
        // Every invocation is one caller's: a share it never exhausts, so
        // the writes are measured admitted (their count included), not as
        // the 429 of the 21st.
        .env("WRITES_PER_CALLER", "1000000")
        .env("EXPORTS_PER_CALLER", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{binary}: {e} (run `cargo build --release --bins` first)"))?;
    let pid = child.id().unwrap_or(0);

    let first = tokio::time::timeout(Duration::from_secs(60), api.invoke("first", event))
        .await
        .map_err(|_| format!("{function}: no answer within 60 s"))?
        .ok_or_else(|| format!("{function}: runtime API closed"))?;
    let init = api
        .first_poll()
        .map_or(Duration::ZERO, |polled| polled.duration_since(started));
    let status = match &first.outcome {
        Ok(body) => status_of(body),
        Err(body) => format!("error: {}", String::from_utf8_lossy(body)),
    };

    let mut warm_times = Vec::with_capacity(warm);
    for i in 0..warm {
        let invocation = api
            .invoke(&format!("warm-{i}"), event)
            .await
            .ok_or_else(|| format!("{function}: runtime API closed"))?;
        warm_times.push(invocation.answered.duration_since(invocation.handed_out));
    }
    let figures = Figures {
        function: function.to_owned(),
        init,
        first: first.answered.duration_since(first.handed_out),
        warm_median: quantile(&mut warm_times, 0.5),
        warm_p99: quantile(&mut warm_times, 0.99),
        peak_rss_kb: peak_rss_kb(pid),
        status,
    };
    let _ = child.kill().await;
    let body = first.outcome.map(|b| b.to_vec()).unwrap_or_default();
    Ok((figures, body))
}

/// Gives `caller` `n` tasks, 16 creates at a time, through the store.
async fn seed(dynamo: &LocalDynamo, caller: &str, n: usize) -> Result<(), String> {
    use shared::domain::task::{Task, TaskCreate, now};
    use shared::ports::{CreateRules, TaskStore};
    let store = std::sync::Arc::new(dynamo.store());
    let owner = shared::domain::caller::Caller::new(caller).ok_or("caller")?;
    let mut running = tokio::task::JoinSet::new();
    for i in 0..n {
        if running.len() >= 16 {
            running.join_next().await;
        }
        let (store, owner) = (store.clone(), owner.clone());
        running.spawn(async move {
            // `..default()` keeps this compiling when a field is added.
            #[allow(clippy::needless_update)]
            let input = TaskCreate {
                title: format!("exported task {i}"),
                description: "x".repeat(100),
                done: i % 2 == 0,
                ..TaskCreate::default()
            };
            let rules = CreateRules {
                max_tasks: u32::MAX,
                idempotency: None,
            };
            store.create(&owner, Task::new(input, now()), rules).await
        });
    }
    while let Some(done) = running.join_next().await {
        done.map_err(|e| e.to_string())?
            .map_err(|e| format!("seeding: {e}"))?;
    }
    Ok(())
}

/// The export's figures for each count of tasks.
async fn export(dynamo: &LocalDynamo, counts: &[usize]) -> Result<(), String> {
    println!("| tasks | status | lines | MB streamed | export ms | peak RSS MB |");
    println!("|---|---|---|---|---|---|");
    for &n in counts {
        let caller = format!("export-{n}");
        seed(dynamo, &caller, n).await?;
        let mut event: serde_json::Value =
            serde_json::from_str(&sample_event("export_tasks")?).map_err(|e| e.to_string())?;
        event["rawQueryString"] = "format=ndjson".into();
        event["queryStringParameters"] = serde_json::json!({"format": "ndjson"});
        event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = caller.into();
        let (f, body) = measure("export_tasks", &event.to_string(), &dynamo.endpoint, 0).await?;
        let streamed = split_stream(&body).map_or(&[][..], |(_, b)| b);
        let lines = streamed.iter().filter(|b| **b == b'\n').count();
        println!(
            "| {n} | {} | {lines} | {:.2} | {:.0} | {:.1} |",
            f.status,
            streamed.len() as f64 / 1e6,
            f.first.as_secs_f64() * 1000.0,
            f.peak_rss_kb as f64 / 1024.0,
        );
    }
    Ok(())
}

/// The sample at quantile `q` (0.5: the middle one, the upper of an even
/// count); zero for no samples.
fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples
        .get(((samples.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

fn functions() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("functions")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn run() -> Result<(), String> {
    let mut warm = 200;
    let mut starts = 5;
    let mut only = Vec::new();
    let mut export_counts = Vec::new();
    let mut deploy_check = None;
    let mut wrapper = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--warm" => {
                warm = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--warm needs a number")?
            }
            "--starts" => {
                starts = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n: &usize| n > 0)
                    .ok_or("--starts needs a number above 0")?
            }
            "--export" => {
                for n in args.by_ref() {
                    export_counts.push(n.parse().map_err(|_| "--export takes task counts")?);
                }
            }
            "--deploy-check" => {
                deploy_check = Some(args.next().ok_or("--deploy-check needs functions.json")?)
            }
            "--wrapper" => {
                wrapper = args
                    .next()
                    .ok_or("--wrapper needs a command")?
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            }
            name => only.push(name.to_owned()),
        }
    }
    if let Some(path) = deploy_check {
        return deploy_check::run(&path, &wrapper, &only).await;
    }
    let names = if only.is_empty() { functions() } else { only };
    let dynamo = LocalDynamo::in_memory("tasks").await?;
    if !export_counts.is_empty() {
        export(&dynamo, &export_counts).await?;
        return dynamo.stop().await;
    }
    println!(
        "| function | status | init ms (median of {starts} starts) | first ms | warm median µs | warm p99 µs | peak RSS MB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in names {
        // A feed invocation lasts its stream's lifetime: no warm loop.
        let warm = if name == "task_events" { 0 } else { warm };
        let event = sample_event(&name)?;
        let (f, _) = measure(&name, &event, &dynamo.endpoint, warm).await?;
        // One process start is one sample of init and of the first
        // invocation: the median of `starts` fresh processes (the warm
        // figures and peak RSS are the first process's).
        let mut inits = vec![f.init];
        let mut firsts = vec![f.first];
        for _ in 1..starts {
            let (again, _) = measure(&name, &event, &dynamo.endpoint, 0).await?;
            inits.push(again.init);
            firsts.push(again.first);
        }
        println!(
            "| {} | {} | {:.2} | {:.2} | {} | {} | {:.1} |",
            f.function,
            f.status,
            quantile(&mut inits, 0.5).as_secs_f64() * 1000.0,
            quantile(&mut firsts, 0.5).as_secs_f64() * 1000.0,
            f.warm_median.as_micros(),
            f.warm_p99.as_micros(),
            f.peak_rss_kb as f64 / 1024.0,
        );
    }
    dynamo.stop().await
}

fn main() -> ExitCode {
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(run()));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("coldstart: {error}");
            ExitCode::FAILURE
        }
    }
}

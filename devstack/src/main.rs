//! `devstack`: serves the local DynamoDB for `make dev`.
//!
//! ```text
//! devstack [--port 8000] [--db .dev/dynamodb.sqlite | --memory] [--table tasks]
//!          [--stream-to http://127.0.0.1:9000]
//! ```
//!
//! Creates the table if missing, prints the endpoint, and runs until Ctrl-C
//! or SIGTERM. With `--stream-to`, it also delivers the table's stream to
//! the `audit` function through that `cargo lambda watch`'s Invoke API, as
//! the deployed event source mapping does ([`devstack::stream`]).

use std::net::SocketAddr;
use std::process::ExitCode;

use devstack::{LocalDynamo, open_database, stream};

/// Stops the stream delivery with the server.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Args {
    port: u16,
    db: Option<String>,
    table: String,
    stream_to: Option<String>,
}

const USAGE: &str = "usage: devstack [--port 8000] [--db FILE | --memory] [--table tasks] \
                     [--stream-to http://127.0.0.1:9000]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 8000,
        db: Some(".dev/dynamodb.sqlite".to_owned()),
        table: "tasks".to_owned(),
        stream_to: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => {
                args.port = value()?
                    .parse()
                    .map_err(|_| "--port must be a port number")?
            }
            "--db" => args.db = Some(value()?),
            "--memory" => args.db = None,
            "--table" => args.table = value()?,
            "--stream-to" => args.stream_to = Some(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    Ok(args)
}

async fn run(args: Args) -> Result<(), String> {
    let parent = args
        .db
        .as_deref()
        .map(std::path::Path::new)
        .and_then(|p| p.parent());
    if let Some(parent) = parent.filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    let db = open_database(args.db.as_deref())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let dynamo = LocalDynamo::start(db.clone(), addr, &args.table).await?;
    let _stream = args.stream_to.as_deref().map(|watch| {
        println!("devstack: delivering the table's stream to the audit function at {watch}");
        AbortOnDrop(tokio::spawn(stream::pump(
            db,
            args.table.clone(),
            stream::Invoke::new(watch, "audit"),
        )))
    });
    let storage = args.db.as_deref().unwrap_or("memory");
    println!(
        "devstack: DynamoDB on {} (table {}, data in {storage})",
        dynamo.endpoint, args.table
    );
    shutdown_signal().await;
    dynamo.stop().await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> ExitCode {
    let outcome = parse_args().and_then(|args| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(run(args))
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("devstack: {error}");
            ExitCode::FAILURE
        }
    }
}

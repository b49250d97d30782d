//! `devstack`: serves the local DynamoDB (and, when asked, a local OpenID
//! issuer) for `make dev`, and mints tokens for `make token`.
//!
//! ```text
//! devstack [--port 8000] [--db .dev/dynamodb.sqlite | --memory] [--table tasks]
//!          [--stream-to http://127.0.0.1:9000]
//!          [--issuer-port 9001] [--issuer-key .dev/issuer-key.der]
//!          [--fault-proxy 8010] [--xray-port 2000 [--traces .dev/traces.jsonl]]
//! devstack trace [--last 5] [--traces .dev/traces.jsonl]
//! devstack token USER [--kind valid|expired|wrong-audience|wrong-issuer|unsigned|foreign-key]
//!          [--issuer URL] [--audience ID] [--issuer-key .dev/issuer-key.der]
//! ```
//!
//! Creates the table if missing, prints the endpoint, and runs until Ctrl-C
//! or SIGTERM. With `--stream-to`, it also delivers the table's stream to
//! the `audit` function through that `cargo lambda watch`'s Invoke API, as
//! the deployed event source mapping does ([`devstack::stream`]), resuming
//! where the last run stopped when the database is a file. With
//! `--issuer-port`, it serves the local issuer's JWKS and discovery
//! document on `http://127.0.0.1:<port>` ([`devstack::issuer`]). With
//! `--fault-proxy`, it serves the fault-injecting proxy on that port in
//! front of the DynamoDB ([`devstack::fault_proxy`], docs/faults.md):
//! point the functions at it and set faults with `POST /__faults`.
//!
//! With `--xray-port`, it is the functions' X-Ray daemon
//! ([`devstack::traces`]): the segments they send to
//! `AWS_XRAY_DAEMON_ADDRESS` are kept in the traces file, and `devstack
//! trace` (`make trace`) prints the last traces as trees with timings.
//!
//! `devstack token USER` prints an access token for USER signed by the
//! local issuer's key (made if missing). The issuer and audience default to
//! `JWT_ISSUER` and `JWT_AUDIENCE` (what the functions check), else
//! `http://127.0.0.1:$ISSUER_PORT` (9001) and `task-api-local`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use devstack::fault_proxy::{self, FaultProxy};
use devstack::issuer::{self, Issuer, TokenKind};
use devstack::{LocalDynamo, open_database, stream};

/// Stops a task (the stream delivery, the issuer) with the server.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Args {
    port: u16,
    db: Option<String>,
    table: String,
    stream_to: Option<String>,
    issuer_port: Option<u16>,
    issuer_key: PathBuf,
    fault_proxy: Option<u16>,
    xray_port: Option<u16>,
    traces: PathBuf,
    /// `--api-proxy PORT=UPSTREAM`: the API's front door on PORT, in front
    /// of cargo lambda watch at UPSTREAM ([`devstack::api_proxy`]).
    api_proxy: Option<(u16, String)>,
}

/// `devstack trace ...`
struct TraceArgs {
    last: usize,
    traces: PathBuf,
}

/// `devstack token USER ...`
struct TokenArgs {
    user: String,
    kind: TokenKind,
    issuer: String,
    audience: String,
    issuer_key: PathBuf,
}

enum Command {
    Serve(Args),
    Token(TokenArgs),
    Trace(TraceArgs),
}

const USAGE: &str = "usage: devstack [--port 8000] [--db FILE | --memory] [--table tasks] \
                     [--stream-to http://127.0.0.1:9000] [--issuer-port 9001] [--issuer-key FILE] \
                     [--fault-proxy 8010] [--xray-port 2000] [--traces FILE] \
                     [--api-proxy 9000=http://127.0.0.1:9100]\n       \
                     devstack trace [--last 5] [--traces FILE]\n       \
                     devstack token USER [--kind valid|expired|wrong-audience|wrong-issuer|unsigned|foreign-key] \
                     [--issuer URL] [--audience ID] [--issuer-key FILE]";

fn parse_args() -> Result<Command, String> {
    let mut it = std::env::args().skip(1).peekable();
    if it.peek().map(String::as_str) == Some("token") {
        it.next();
        return parse_token_args(it).map(Command::Token);
    }
    if it.peek().map(String::as_str) == Some("trace") {
        it.next();
        let mut args = TraceArgs {
            last: 5,
            traces: PathBuf::from(devstack::traces::DEFAULT_FILE),
        };
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--last" => args.last = value()?.parse().map_err(|_| "--last must be a number")?,
                "--traces" => args.traces = PathBuf::from(value()?),
                _ => return Err(USAGE.into()),
            }
        }
        return Ok(Command::Trace(args));
    }
    parse_serve_args(it).map(Command::Serve)
}

fn parse_serve_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        port: 8000,
        db: Some(".dev/dynamodb.sqlite".to_owned()),
        table: "tasks".to_owned(),
        stream_to: None,
        issuer_port: None,
        issuer_key: PathBuf::from(issuer::DEFAULT_KEY_FILE),
        fault_proxy: None,
        xray_port: None,
        traces: PathBuf::from(devstack::traces::DEFAULT_FILE),
        api_proxy: None,
    };
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
            "--issuer-port" => {
                args.issuer_port = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--issuer-port must be a port number")?,
                )
            }
            "--issuer-key" => args.issuer_key = PathBuf::from(value()?),
            "--fault-proxy" => {
                args.fault_proxy = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--fault-proxy must be a port number")?,
                )
            }
            "--xray-port" => {
                args.xray_port = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--xray-port must be a port number")?,
                )
            }
            "--traces" => args.traces = PathBuf::from(value()?),
            "--api-proxy" => {
                let spec = value()?;
                let (port, upstream) = spec
                    .split_once('=')
                    .ok_or("--api-proxy takes PORT=UPSTREAM_URL")?;
                let port = port.parse().map_err(|_| "--api-proxy: not a port number")?;
                args.api_proxy = Some((port, upstream.to_owned()));
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    Ok(args)
}

/// An environment variable, if set and not blank.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn parse_token_args(mut it: impl Iterator<Item = String>) -> Result<TokenArgs, String> {
    let mut user = None;
    let mut kind = TokenKind::Valid;
    let mut issuer = None;
    let mut audience = None;
    let mut issuer_key = PathBuf::from(issuer::DEFAULT_KEY_FILE);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--kind" => kind = value()?.parse()?,
            "--issuer" => issuer = Some(value()?),
            "--audience" => audience = Some(value()?),
            "--issuer-key" => issuer_key = PathBuf::from(value()?),
            "-h" | "--help" => return Err(USAGE.into()),
            flag if flag.starts_with('-') => {
                return Err(format!("unknown argument {flag} (try --help)"));
            }
            _ if user.is_none() => user = Some(arg),
            _ => return Err(format!("one user only (got {arg:?} too)")),
        }
    }
    let user = user
        .filter(|u| !u.trim().is_empty())
        .ok_or("which user? devstack token USER")?;
    let issuer = match issuer.or_else(|| env("JWT_ISSUER")) {
        Some(issuer) => issuer,
        None => {
            let port = match env("ISSUER_PORT") {
                Some(port) => port
                    .trim()
                    .parse()
                    .map_err(|_| format!("ISSUER_PORT must be a port number (got {port:?})"))?,
                None => issuer::DEFAULT_PORT,
            };
            issuer::issuer_url(port)
        }
    };
    let audience = audience
        .or_else(|| env("JWT_AUDIENCE"))
        .unwrap_or_else(|| issuer::DEFAULT_AUDIENCE.to_owned());
    Ok(TokenArgs {
        user,
        kind,
        issuer,
        audience,
        issuer_key,
    })
}

fn token(args: TokenArgs) -> Result<(), String> {
    let issuer = Issuer::open(&args.issuer_key, &args.issuer, &args.audience)?;
    println!("{}", issuer.token(&args.user, args.kind)?);
    Ok(())
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
    let _issuer = match args.issuer_port {
        Some(port) => Some(serve_issuer(port, &args.issuer_key).await?),
        None => None,
    };
    let _stream = args.stream_to.as_deref().map(|watch| {
        // A kept database keeps its stream position beside it.
        let checkpoint = args
            .db
            .as_deref()
            .map(|db| stream::Checkpoint::beside(Path::new(db)));
        println!("devstack: delivering the table's stream to the audit function at {watch}");
        AbortOnDrop(tokio::spawn(stream::pump(
            db,
            args.table.clone(),
            stream::Invoke::new(watch, "audit"),
            checkpoint,
        )))
    });
    let _warm_up = args.stream_to.as_deref().map(|watch| {
        let audit = stream::Invoke::new(watch, "audit");
        AbortOnDrop(tokio::spawn(async move {
            if !stream::warm_up(&audit).await {
                eprintln!("devstack: the audit function did not answer a warm-up batch");
            }
        }))
    });
    let _fault_proxy = match args.fault_proxy {
        Some(port) => {
            let proxy =
                FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], port)), &dynamo.endpoint)
                    .await?;
            println!(
                "devstack: fault proxy {} in front of it (rules: POST {}{}, docs/faults.md)",
                proxy.endpoint,
                proxy.endpoint,
                fault_proxy::CONTROL_PATH
            );
            Some(proxy)
        }
        None => None,
    };
    let _xray = match args.xray_port {
        Some(port) => {
            let socket = tokio::net::UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .map_err(|e| format!("X-Ray listener on UDP {port}: {e}"))?;
            println!(
                "devstack: X-Ray daemon on udp 127.0.0.1:{port} (traces in {}, make trace)",
                args.traces.display()
            );
            Some(AbortOnDrop(tokio::spawn(devstack::traces::listen(
                socket,
                args.traces.clone(),
            ))))
        }
        None => None,
    };
    let _api_proxy = match &args.api_proxy {
        Some((port, upstream)) => {
            let task =
                devstack::api_proxy::start(SocketAddr::from(([127, 0, 0, 1], *port)), upstream)
                    .await?;
            println!("devstack: the API on http://127.0.0.1:{port}, in front of {upstream}");
            Some(AbortOnDrop(task))
        }
        None => None,
    };
    let storage = args.db.as_deref().unwrap_or("memory");
    println!(
        "devstack: DynamoDB on {} (table {}, data in {storage})",
        dynamo.endpoint, args.table
    );
    shutdown_signal().await;
    dynamo.stop().await
}

/// Serves the local issuer on `127.0.0.1:<port>` with the key in `key_file`.
async fn serve_issuer(
    port: u16,
    key_file: &Path,
) -> Result<AbortOnDrop<Result<(), String>>, String> {
    let url = issuer::issuer_url(port);
    let audience = env("JWT_AUDIENCE").unwrap_or_else(|| issuer::DEFAULT_AUDIENCE.to_owned());
    let issuer = Arc::new(Issuer::open(key_file, &url, &audience)?);
    let (_, server) = Arc::clone(&issuer)
        .spawn(SocketAddr::from(([127, 0, 0, 1], port)))
        .await?;
    println!(
        "devstack: OpenID issuer {url} (JWKS {}, key {}, tokens: devstack token USER)",
        issuer.jwks_url(),
        key_file.display()
    );
    Ok(AbortOnDrop(server))
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
    let outcome = parse_args().and_then(|command| match command {
        Command::Token(args) => token(args),
        Command::Trace(args) => devstack::traces::render_file(&args.traces, args.last).map(|out| {
            use std::io::Write;
            // A reader that stops early (`| head`) is no error.
            let _ = std::io::stdout().lock().write_all(out.as_bytes());
        }),
        Command::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(run(args)),
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("devstack: {error}");
            ExitCode::FAILURE
        }
    }
}

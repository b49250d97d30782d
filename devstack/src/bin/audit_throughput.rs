//! Audit throughput against the local DynamoDB (dynoxide): stream batches
//! of task creates, as the mapping delivers them (100 records), recorded by
//! the audit handler (`shared::handlers::audit::handle_with`) at a given
//! concurrency, for a few numbers of callers; prints records/s.
//!
//! `cargo run -p devstack --bin audit_throughput [-- RECORDS PRIOR
//! [CALLERS:CONCURRENCY[:plain]...]]`: RECORDS (2,000) recorded per
//! run, each run on a new database file whose stream already holds PRIOR
//! records (20,000: about what a minute of `make dev` at 8 callers
//! leaves); by default 1, 8 and 64 callers at concurrency 1, 4 and 16,
//! on a database as `devstack::open_database` opens a file ("tuned": the
//! stream indexed, `synchronous = NORMAL`) and, for 8 callers, as dynoxide
//! opens it ("plain"). Concurrency 1 on a plain database is the audit and
//! devstack as they were before issue 25: one conditional PutItem after
//! another, each write scanning the stream and waiting for an fsync. The server runs on threads of
//! its own (as dynoxide runs in the devstack process under `make dev`),
//! the handler on one thread, as a Lambda instance runs it. Figures:
//! docs/audit-throughput.md.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use devstack::{Database, LocalDynamo, TempDatabase};
use serde_json::{Value, json};
use shared::adapters::dynamo::{DynamoStore, client};
use shared::domain::caller::Caller;
use shared::handlers::audit::{CONCURRENCY, Event, handle_with};
use shared::ports::AuditStore;
use uuid::Uuid;

const TABLE: &str = "tasks";
const BATCH: usize = 100;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("audit_throughput: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let records: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("RECORDS {n:?}: {e}"))?,
        None => 2_000,
    };
    let prior: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("PRIOR {n:?}: {e}"))?,
        None => 20_000,
    };
    let mut runs = args
        .map(|run| parse_run(&run))
        .collect::<Result<Vec<Run>, String>>()?;
    if runs.is_empty() {
        runs = [(8, 1), (8, CONCURRENCY)]
            .into_iter()
            .map(|(callers, concurrency)| (callers, concurrency, false))
            .chain([1, 8, 64].into_iter().flat_map(|callers| {
                [1, 4, CONCURRENCY].map(|concurrency| (callers, concurrency, true))
            }))
            .collect();
    }
    let template = create_record()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    println!(
        "{records} task records in batches of {BATCH}, each run on a new dynoxide file \
         whose stream holds {prior} records already"
    );
    println!("database   callers  concurrency  records/s  ms/batch");
    let mut sequence: u64 = 1_000_000;
    for (callers, concurrency, indexed) in runs {
        {
            let server = Server::start(prior, indexed)?;
            let store =
                DynamoStore::new(client(&devstack::local_settings(&server.endpoint)), TABLE);
            RUN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let batches = batches(&template, records, callers, &mut sequence)?;
            let (elapsed, failures) = runtime.block_on(async {
                let started = Instant::now();
                let mut failures = 0;
                for batch in batches {
                    let answer = handle_with(&store, batch, concurrency).await;
                    failures += answer.batch_item_failures.len();
                }
                (started.elapsed(), failures)
            });
            if failures > 0 {
                return Err(format!("{failures} records failed"));
            }
            let stored = runtime.block_on(stored(&store, callers))?;
            if stored != records {
                return Err(format!("{stored} of {records} records stored"));
            }
            server.stop();
            let database = if indexed { "tuned" } else { "plain" };
            println!(
                "{database:<9}  {callers:>7}  {concurrency:>11}  {:>9.0}  {:>8.1}",
                records as f64 / elapsed.as_secs_f64(),
                ms(elapsed) / records.div_ceil(BATCH) as f64,
            );
        }
    }
    Ok(())
}

/// How many changes the callers have: the entries a run wrote (each run's
/// callers are new).
async fn stored(store: &DynamoStore, callers: usize) -> Result<usize, String> {
    let mut total = 0;
    for n in 0..callers {
        let owner = Caller::new(caller(n)).ok_or("a caller")?;
        let mut after = None;
        loop {
            let batch = store
                .changes(&owner, after.as_ref(), 1000)
                .await
                .map_err(|e| e.to_string())?;
            let Some(last) = batch.items.last() else {
                break;
            };
            after = Some(last.sequence.clone());
            total += batch.items.len();
        }
    }
    Ok(total)
}

/// The callers of the current run: new names each run.
static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn caller(n: usize) -> String {
    format!(
        "run{}-caller{n}",
        RUN.load(std::sync::atomic::Ordering::SeqCst)
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `callers:concurrency`, with `:plain` for a database as dynoxide opens
/// it (no stream index, `synchronous = FULL`).
type Run = (usize, usize, bool);

fn parse_run(run: &str) -> Result<Run, String> {
    let mut parts = run.split(':');
    let callers = parts.next().and_then(|n| n.parse().ok());
    let concurrency = parts.next().and_then(|n| n.parse().ok());
    let indexed = match parts.next() {
        None => Some(true),
        Some("plain") => Some(false),
        Some(_) => None,
    };
    match (callers, concurrency, indexed) {
        (Some(callers), Some(concurrency), Some(indexed)) => Ok((callers, concurrency, indexed)),
        _ => Err(format!("{run:?} is not CALLERS:CONCURRENCY[:plain]")),
    }
}

/// A dynoxide on a new database file and a free loopback port, on two
/// threads of its own, its stream holding `prior` records.
struct Server {
    endpoint: String,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
    _file: TempDatabase,
}

impl Server {
    fn start(prior: usize, indexed: bool) -> Result<Self, String> {
        let file = TempDatabase::new()?;
        let db = if indexed {
            file.open()?
        } else {
            Database::new(file.path()).map_err(|e| e.to_string())?
        };
        let (ready, endpoint) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build();
            let runtime = match runtime {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(format!("server runtime: {e}")));
                    return;
                }
            };
            runtime.block_on(async move {
                let any_port = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                let started = LocalDynamo::start(db.clone(), any_port, TABLE).await;
                let dynamo = match started.and_then(|dynamo| {
                    fill_stream(&db, prior)?;
                    Ok(dynamo)
                }) {
                    Ok(dynamo) => dynamo,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(dynamo.endpoint.clone()));
                let _ = stopped.await;
                let _ = dynamo.stop().await;
            });
        });
        let endpoint = endpoint
            .recv()
            .map_err(|e| format!("server thread: {e}"))??;
        Ok(Server {
            endpoint,
            stop,
            thread,
            _file: file,
        })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// `n` stream records of other callers' task items (one bulk import).
fn fill_stream(db: &Database, n: usize) -> Result<(), String> {
    use dynoxide::types::AttributeValue::S;
    let items = (0..n)
        .map(|i| {
            [
                ("pk".to_owned(), S("USER#earlier".into())),
                ("sk".to_owned(), S(format!("TASK#{i:08}"))),
            ]
            .into_iter()
            .collect()
        })
        .collect();
    let options = dynoxide::ImportOptions {
        record_streams: true,
        ..Default::default()
    };
    db.import_items(TABLE, items, options)
        .map(|_| ())
        .map_err(|e| format!("filling the stream: {e}"))
}

/// The sample batch's task create (`events/audit.json`).
fn create_record() -> Result<Value, String> {
    let path = format!("{}/../events/audit.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let sample: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    sample["Records"]
        .as_array()
        .and_then(|records| {
            records.iter().find(|r| {
                r["eventName"] == "INSERT"
                    && r["dynamodb"]["Keys"]["sk"]["S"]
                        .as_str()
                        .is_some_and(|sk| sk.starts_with("TASK#"))
            })
        })
        .cloned()
        .ok_or_else(|| format!("{path} has no task's INSERT record"))
}

/// `records` creates of new tasks by `callers` callers in turn, with
/// increasing sequence numbers, in stream batches.
fn batches(
    template: &Value,
    records: usize,
    callers: usize,
    sequence: &mut u64,
) -> Result<Vec<Event>, String> {
    let all: Vec<Value> = (0..records)
        .map(|i| {
            *sequence += 1;
            let (owner, task) = (caller(i % callers), Uuid::new_v4());
            let mut record = template.clone();
            let keys = &mut record["dynamodb"]["Keys"];
            keys["pk"] = json!({ "S": format!("USER#{owner}") });
            keys["sk"] = json!({ "S": format!("TASK#{task}") });
            let image = &mut record["dynamodb"]["NewImage"];
            image["pk"] = json!({ "S": format!("USER#{owner}") });
            image["sk"] = json!({ "S": format!("TASK#{task}") });
            image["id"] = json!({ "S": task.to_string() });
            record["dynamodb"]["SequenceNumber"] = json!(sequence.to_string());
            record["eventID"] = json!(format!("{sequence}"));
            record
        })
        .collect();
    all.chunks(BATCH)
        .map(|chunk| {
            serde_json::from_value(json!({ "Records": chunk }))
                .map_err(|e| format!("a stream event: {e}"))
        })
        .collect()
}

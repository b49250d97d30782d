//! The local DynamoDB: dynoxide (a DynamoDB-compatible server on SQLite)
//! embedded in-process, with the Task API's table created from the same
//! definition the deployed stack uses ([`shared::ports::table`]). Used by
//! the `devstack` binary behind `make dev`, and by the tests that need a
//! real DynamoDB API over HTTP. [`fault_proxy`] goes in front of it when a
//! test (or `FAULT_PROXY_PORT=8010 make dev`) needs DynamoDB to misbehave
//! (docs/faults.md).

use std::net::SocketAddr;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use shared::adapters::dynamo::table::create_table;
use shared::adapters::dynamo::{self, DynamoStore};
use shared::config::AwsSettings;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use dynoxide::Database;

pub mod api_proxy;
pub mod fault_proxy;
pub mod issuer;
pub mod runtime_api;
pub mod stream;
pub mod traces;

/// A running dynoxide server and a client for it.
pub struct LocalDynamo {
    /// `http://127.0.0.1:<port>`: what `AWS_ENDPOINT_URL_DYNAMODB` points at.
    pub endpoint: String,
    pub addr: SocketAddr,
    pub client: Client,
    table: String,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), String>>,
}

/// Settings the functions and tests use to reach the local DynamoDB: the
/// endpoint, a region and dummy credentials (dynoxide checks none).
pub fn local_settings(endpoint: &str) -> AwsSettings {
    AwsSettings {
        region: "us-east-1".to_owned(),
        endpoint_url: Some(endpoint.to_owned()),
        access_key_id: "local".to_owned(),
        secret_access_key: "local".to_owned(),
        session_token: None,
        operation_timeout: Duration::from_secs(5),
        attempt_timeout: Duration::from_millis(1500),
    }
}

/// A database file in a directory of its own, removed on drop: for tests
/// that stop the server and start it again on the same data.
pub struct TempDatabase {
    dir: std::path::PathBuf,
    path: String,
}

impl TempDatabase {
    pub fn new() -> Result<Self, String> {
        let unique = format!(
            "devstack-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("dynamodb.sqlite").to_string_lossy().into_owned();
        Ok(TempDatabase { dir, path })
    }

    /// The database file (its directory is the test's to use).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Opens it (again).
    pub fn open(&self) -> Result<Database, String> {
        open_database(Some(&self.path))
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Opens the database: a file (kept between runs) or, with `None`, memory.
///
/// A file's stream gets the indexes of [`index_stream`], and its writes
/// SQLite's `synchronous = NORMAL` (dynoxide's `disable_bulk_loading`) in
/// place of the default `FULL`: in WAL mode a commit then waits for no
/// fsync (the WAL is synced at checkpoints), and an application crash
/// still loses nothing; only a power loss or OS crash may lose the last
/// writes, which for a development database is worth the speed (dynoxide
/// serialises writes, so one fsync per write, a few ms here, capped all
/// writes, the API's and the audit's together).
pub fn open_database(path: Option<&str>) -> Result<Database, String> {
    match path {
        Some(path) => {
            let db = Database::new(path).map_err(|e| format!("opening {path}: {e}"))?;
            index_stream(path)?;
            db.disable_bulk_loading()
                .map_err(|e| format!("setting synchronous = NORMAL on {path}: {e}"))?;
            Ok(db)
        }
        None => Database::memory().map_err(|e| format!("opening an in-memory database: {e}")),
    }
}

/// Indexes dynoxide's stream table in the database file `path`.
///
/// dynoxide 3.2 keeps every stream record in one SQLite table and never
/// trims it; it finds the next sequence number (on **every write**) with
/// `MAX(CAST(sequence_number AS INTEGER))` and a shard's records after a
/// position (every GetRecords) by the same expression, which no index
/// covers: both read the whole stream. A kept `.dev` database grows by
/// three or four records per task change, so each write gets slower, and
/// writes are serialised: at 30,000 records each write spent ~7.5 ms
/// scanning (docs/audit-throughput.md). These indexes on that expression
/// make both a B-tree lookup (SQLite uses an index on an expression when a
/// query has the same expression). Adding an index changes no data, and
/// dynoxide's prepared statements see it (SQLite re-prepares them).
pub fn index_stream(path: &str) -> Result<(), String> {
    let connection =
        rusqlite::Connection::open(path).map_err(|e| format!("opening {path}: {e}"))?;
    connection
        .busy_timeout(Duration::from_secs(5))
        .and_then(|()| connection.execute_batch(STREAM_INDEXES))
        .map_err(|e| format!("indexing the stream of {path}: {e}"))
}

const STREAM_INDEXES: &str = "
    CREATE INDEX IF NOT EXISTS devstack_stream_sequence
        ON _stream_records (table_name, CAST(sequence_number AS INTEGER));
    CREATE INDEX IF NOT EXISTS devstack_stream_shard_sequence
        ON _stream_records (table_name, shard_id, CAST(sequence_number AS INTEGER));
";

impl LocalDynamo {
    /// Serves `db` on `addr` (port 0 picks a free one) and creates `table`
    /// if it does not exist yet.
    pub async fn start(db: Database, addr: SocketAddr, table: &str) -> Result<Self, String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(dynoxide::server::serve_with_shutdown(listener, db, async {
            let _ = stopped.await;
        }));
        let endpoint = format!("http://{addr}");
        let client = dynamo::client(&local_settings(&endpoint));
        create_table(&client, table).await?;
        Ok(LocalDynamo {
            endpoint,
            addr,
            client,
            table: table.to_owned(),
            stop: Some(stop),
            server,
        })
    }

    /// An in-memory server on a free loopback port, for a test.
    pub async fn in_memory(table: &str) -> Result<Self, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start(open_database(None)?, addr, table).await
    }

    /// The Task API's store on this server's table.
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.client.clone(), self.table.clone())
    }

    /// Stops accepting requests and waits for the running ones to finish.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.server)
            .await
            .map_err(|e| format!("server task failed: {e}"))?
    }
}

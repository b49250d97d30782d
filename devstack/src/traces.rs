//! The local X-Ray daemon: receives the segment documents the functions
//! send (`shared::adapters::xray`, UDP, the daemon's header line then the
//! JSON), keeps them one per line in a file, and renders the last traces
//! as trees with timings (`make trace`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Where `make dev` keeps the received documents.
pub const DEFAULT_FILE: &str = ".dev/traces.jsonl";

/// Receives documents on `socket` and appends each to `file`, until the
/// task is aborted.
pub async fn listen(socket: tokio::net::UdpSocket, file: PathBuf) -> Result<(), String> {
    let mut buffer = vec![0u8; 65_536];
    loop {
        let (n, _) = socket
            .recv_from(&mut buffer)
            .await
            .map_err(|e| format!("X-Ray listener: {e}"))?;
        let Some(document) = document(&buffer[..n]) else {
            continue;
        };
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        writeln!(out, "{document}").map_err(|e| format!("{}: {e}", file.display()))?;
    }
}

/// The JSON document of a datagram (after the daemon's header line).
pub fn document(datagram: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(datagram).ok()?;
    let (header, body) = text.split_once('\n')?;
    let header: Value = serde_json::from_str(header).ok()?;
    (header["format"] == "json").then_some(())?;
    serde_json::from_str(body).ok()
}

/// The last `last` traces of `file`, as trees.
pub fn render_file(file: &Path, last: usize) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "{}: {e} (make dev records traces there while it runs)",
            file.display()
        )
    })?;
    let documents: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    Ok(render(&documents, last))
}

/// The last `last` traces (by first appearance) as trees: each document
/// under its parent, with its start offset and duration in milliseconds.
pub fn render(documents: &[Value], last: usize) -> String {
    let mut order: Vec<&str> = Vec::new();
    let mut traces: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for doc in documents {
        let Some(trace) = doc["trace_id"].as_str() else {
            continue;
        };
        if !traces.contains_key(trace) {
            order.push(trace);
        }
        traces.entry(trace).or_default().push(doc);
    }
    let mut out = String::new();
    for trace in order.iter().skip(order.len().saturating_sub(last)) {
        let docs = &traces[trace];
        let start = docs
            .iter()
            .filter_map(|d| d["start_time"].as_f64())
            .fold(f64::INFINITY, f64::min);
        out.push_str(&format!("trace {trace}\n"));
        let ids: Vec<&str> = docs.iter().filter_map(|d| d["id"].as_str()).collect();
        let mut roots: Vec<&Value> = docs
            .iter()
            .copied()
            .filter(|d| d["parent_id"].as_str().is_none_or(|p| !ids.contains(&p)))
            .collect();
        roots.sort_by(|a, b| {
            a["start_time"]
                .as_f64()
                .partial_cmp(&b["start_time"].as_f64())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        for root in roots {
            tree(&mut out, docs, root, start, 1);
        }
    }
    out
}

fn tree(out: &mut String, docs: &[&Value], node: &Value, start: f64, depth: usize) {
    let begin = node["start_time"].as_f64().unwrap_or(start);
    let end = node["end_time"].as_f64().unwrap_or(begin);
    let aws = &node["aws"];
    let mut what = node["name"].as_str().unwrap_or("?").to_owned();
    if let Some(operation) = aws["operation"].as_str() {
        what.push_str(&format!(" {operation}"));
    }
    if let Some(table) = aws["table_name"].as_str() {
        what.push_str(&format!(" {table}"));
    }
    if let Some(url) = node["http"]["request"]["url"].as_str() {
        let method = node["http"]["request"]["method"].as_str().unwrap_or("");
        what.push_str(&format!(" {method} {url}"));
    }
    let mut facts = Vec::new();
    if let Some(status) = node["http"]["response"]["status"].as_u64() {
        facts.push(status.to_string());
    }
    if let Some(capacity) = node["metadata"]["dynamodb"]["consumed_capacity"].as_f64() {
        facts.push(format!("{capacity} CU"));
    }
    if let Some(retries) = aws["retries"].as_u64().filter(|r| *r > 0) {
        facts.push(format!("{retries} retries"));
    }
    for flag in ["throttle", "fault", "error"] {
        if node[flag] == true {
            facts.push(flag.to_owned());
        }
    }
    out.push_str(&format!(
        "{:indent$}{what}  +{:.1} ms  {:.2} ms{}\n",
        "",
        (begin - start) * 1000.0,
        (end - begin) * 1000.0,
        if facts.is_empty() {
            String::new()
        } else {
            format!("  [{}]", facts.join(", "))
        },
        indent = depth * 2
    ));
    let id = node["id"].as_str();
    let mut children: Vec<&Value> = docs
        .iter()
        .copied()
        .filter(|d| id.is_some() && d["parent_id"].as_str() == id)
        .collect();
    children.sort_by(|a, b| {
        a["start_time"]
            .as_f64()
            .partial_cmp(&b["start_time"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for child in children {
        tree(out, docs, child, start, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_trace_renders_as_a_tree_with_timings() {
        let docs = [
            json!({"name": "t-CreateTask", "id": "aaaa", "trace_id": "1-1", "start_time": 100.0, "end_time": 100.010,
                   "http": {"request": {"method": "POST", "url": "POST /tasks"}, "response": {"status": 201}}}),
            json!({"name": "DynamoDB", "id": "bbbb", "parent_id": "aaaa", "trace_id": "1-1", "type": "subsegment",
                   "start_time": 100.002, "end_time": 100.006, "aws": {"operation": "TransactWriteItems", "table_name": "tasks", "retries": 1},
                   "http": {"response": {"status": 400}}, "error": true}),
            json!({"name": "other", "id": "cccc", "trace_id": "1-2", "start_time": 200.0, "end_time": 200.001}),
        ];
        let header = br#"{"format":"json","version":1}"#;
        let datagram = [&header[..], b"\n", docs[1].to_string().as_bytes()].concat();
        assert_eq!(document(&datagram), Some(docs[1].clone()));
        assert_eq!(
            render(&docs, 1),
            "trace 1-2\n  other  +0.0 ms  1.00 ms\n",
            "only the last trace"
        );
        assert_eq!(
            render(&docs[..2], 5),
            "trace 1-1\n  t-CreateTask POST POST /tasks  +0.0 ms  10.00 ms  [201]\n    \
             DynamoDB TransactWriteItems tasks  +2.0 ms  4.00 ms  [400, 1 retries, error]\n"
        );
    }
}

//! Reading `template.yaml` (and other repository files) in tests: the
//! short-form intrinsics (`!Ref`, `!GetAtt`, `!Sub`) arrive as tagged values.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};

use serde_norway::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

pub fn template() -> Value {
    serde_norway::from_str(&read("template.yaml")).expect("template.yaml is valid YAML")
}

/// The value at `path` (mapping keys) under `value`, if any.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// The plain string at `path`.
pub fn text<'a>(value: &'a Value, path: &[&str], whose: &str) -> &'a str {
    match at(value, path) {
        Some(Value::String(s)) => s,
        other => panic!(
            "{whose}: {} should be a plain string, got {other:?}",
            path.join(".")
        ),
    }
}

/// The argument of the intrinsic `name` (`Ref`, `GetAtt`, `Sub`...), in
/// either the short (`!Ref X`) or the long (`{Ref: X}`, `{Fn::GetAtt: ..}`)
/// form.
pub fn intrinsic<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag == name => Some(&tagged.value),
        Value::Mapping(map) if map.len() == 1 => {
            let long = if name == "Ref" {
                name.to_owned()
            } else {
                format!("Fn::{name}")
            };
            map.get(long.as_str())
        }
        _ => None,
    }
}

/// The logical id named by `!Ref Id`.
pub fn reference(value: &Value) -> Option<&str> {
    intrinsic(value, "Ref").and_then(Value::as_str)
}

/// The function `Id` named by `!Ref Id.Alias`: its `live` alias, which SAM
/// resolves to the alias' ARN (AutoPublishAlias, template.yaml's Globals).
/// What calls a function outside the HTTP API (its Function URL, their
/// permissions, the stream mapping) names it so, to be shifted and rolled
/// back with it (docs/pipeline.md).
pub fn alias_of(value: &Value) -> Option<&str> {
    reference(value).and_then(|r| r.strip_suffix(".Alias"))
}

/// `Resource.Attribute` of a `!GetAtt Resource.Attribute` (either form).
pub fn get_att(value: &Value) -> Option<String> {
    match intrinsic(value, "GetAtt")? {
        Value::String(s) => Some(s.clone()),
        Value::Sequence(parts) => {
            let parts: Option<Vec<&str>> = parts.iter().map(Value::as_str).collect();
            Some(parts?.join("."))
        }
        _ => None,
    }
}

/// The string of a `!Sub "..."` (the one-argument form).
pub fn sub(value: &Value) -> Option<&str> {
    intrinsic(value, "Sub").and_then(Value::as_str)
}

/// `(logical id, resource)` of every resource of type `kind`.
pub fn resources<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template
        .get("Resources")
        .and_then(Value::as_mapping)
        .expect("template.yaml has Resources")
        .iter()
        .filter(|(_, resource)| resource.get("Type").and_then(Value::as_str) == Some(kind))
        .map(|(id, resource)| (id.as_str().expect("logical ids are strings"), resource))
        .collect()
}

/// The resource with logical id `id`.
pub fn resource<'a>(template: &'a Value, id: &str) -> &'a Value {
    at(template, &["Resources", id]).unwrap_or_else(|| panic!("no resource {id}"))
}

/// `(logical id, crate, resource)` of every `AWS::Serverless::Function`.
pub fn functions(template: &Value) -> Vec<(&str, &str, &Value)> {
    resources(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, function)| {
            let binary = text(function, &["Metadata", "BuildProperties", "Binary"], id);
            (id, binary, function)
        })
        .collect()
}

/// A function's property as deployed: its own, else the Globals' one.
pub fn function_property<'a>(
    template: &'a Value,
    function: &'a Value,
    path: &[&str],
) -> Option<&'a Value> {
    let mut own = vec!["Properties"];
    own.extend_from_slice(path);
    let mut global = vec!["Globals", "Function"];
    global.extend_from_slice(path);
    at(function, &own).or_else(|| at(template, &global))
}

/// A single value or a list of them, as a list (IAM's `Action: x`).
pub fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

// ------------------------------------------------------- handler inputs

/// A checked configuration as a function would read it: the required
/// variables, then `extra` (which may override them).
/// The one test app: the handlers over `store`, configured by `extra`
/// variables on top of [`config`]'s. Leaked, as the runtime's is: streamed
/// handlers need it for `'static`.
pub fn app_with<S>(extra: &[(&str, &str)], store: S) -> &'static shared::runtime::App<S> {
    Box::leak(Box::new(shared::runtime::App::new(config(extra), store)))
}

/// [`app_with`] an empty in-memory store.
pub fn app(
    extra: &[(&str, &str)],
) -> &'static shared::runtime::App<shared::adapters::memory::MemoryStore> {
    app_with(extra, shared::adapters::memory::MemoryStore::default())
}

/// The sample event `events/<name>.json` as the function receives it.
pub fn event(name: &str) -> lambda_http::Request {
    request(&event_json(name))
}

pub fn config(extra: &[(&str, &str)]) -> shared::config::Config {
    let mut vars: std::collections::HashMap<String, String> = [
        ("TABLE_NAME", "tasks"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        // The handler tests write as one caller many times: the fair
        // share is tested where it is set low (handlers.rs).
        ("WRITES_PER_CALLER", "100000"),
        ("EXPORTS_PER_CALLER", "100000"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    vars.retain(|_, v| !v.is_empty());
    shared::config::Config::from_lookup(move |name| vars.get(name).cloned()).expect("test config")
}

/// The sample event `events/<name>.json`, as JSON to adjust.
pub fn event_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&read(&format!("events/{name}.json"))).expect("an event file is JSON")
}

/// Replaces the event's query (`a=1&b=2`: the raw string and the
/// parameters API Gateway parsed from it).
pub fn set_query(event: &mut serde_json::Value, query: &str) {
    let params: serde_json::Map<String, serde_json::Value> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
        .collect();
    event["rawQueryString"] = serde_json::Value::from(query);
    event["queryStringParameters"] = serde_json::Value::Object(params);
}

/// Names the caller in the authorizer's claims, or, with `None`, removes
/// the authorizer (a request with no identity, or one through a Function
/// URL, which has no authorizer in front).
pub fn set_caller(event: &mut serde_json::Value, caller: Option<&str>) {
    match caller {
        Some(sub) => {
            event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] =
                serde_json::Value::from(sub)
        }
        None => {
            if let Some(context) = event["requestContext"].as_object_mut() {
                context.remove("authorizer");
            }
        }
    }
}

/// The event as the request a handler gets.
pub fn request(event: &serde_json::Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("an HTTP API event")
}

/// What `want` has that `have` lacks, and what `have` has beyond `want`
/// (each sorted, duplicates kept once): for failure messages that name the
/// exact entries to add or remove.
pub fn differences<T: Ord + Clone>(
    have: impl IntoIterator<Item = T>,
    want: impl IntoIterator<Item = T>,
) -> (Vec<T>, Vec<T>) {
    let have: std::collections::BTreeSet<T> = have.into_iter().collect();
    let want: std::collections::BTreeSet<T> = want.into_iter().collect();
    (
        want.difference(&have).cloned().collect(),
        have.difference(&want).cloned().collect(),
    )
}

/// Fails with `problems`, one per line, under `heading`, when there are any.
pub fn assert_no_problems(heading: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{heading}:\n  - {}\n",
        problems.join("\n  - ")
    );
}

//! Every declared task field (`shared::domain::task::FIELDS`), walked
//! generically through each place derived from its declaration: parsing
//! and 422s, create's default, PATCH of that field alone, PUT, the
//! response, the history's field changes, the idempotency fingerprint, the
//! NDJSON and CSV export, the OpenAPI schemas, and items stored before the
//! field existed. A field left out of any of them fails here, naming it.
//! (The stores' side, DynamoDB included: the store contract,
//! `devstack/tests/it/store_contract.rs`.)

use http_body_util::BodyExt;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};
use shared::domain::change::Change;
use shared::domain::task::{FIELDS, Field, Kind, Task, TaskCreate, TaskPatch};
use shared::handlers;
use shared::ports::Idempotency;
use shared::runtime::respond;

use crate::support::{app, event_json, request, set_query};

/// A create body: every field at its example, `name` at `value`.
fn body_with(name: &str, value: Value) -> Map<String, Value> {
    let mut body: Map<String, Value> = FIELDS
        .iter()
        .map(|f| (f.name.to_owned(), f.example_value()))
        .collect();
    body.insert(name.to_owned(), value);
    body
}

fn text(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("JSON body"),
        other => panic!("expected a text body, got {other:?}"),
    }
}

/// The event of `function` with `body`, on `task_id` when given.
fn event(function: &str, method: Method, body: &Value, task_id: Option<&str>) -> Value {
    let mut event = event_json(function);
    event["body"] = Value::from(body.to_string());
    event["isBase64Encoded"] = Value::from(false);
    event["requestContext"]["http"]["method"] = Value::from(method.as_str());
    if let Some(headers) = event["headers"].as_object_mut() {
        headers.retain(|k, _| !k.eq_ignore_ascii_case("if-match"));
    }
    if let Some(id) = task_id {
        event["pathParameters"]["task_id"] = Value::from(id);
        event["rawPath"] = Value::from(format!("/tasks/{id}"));
    }
    event
}

/// What a response shows of a value the request sent (lax forms are
/// normalised: a field's value is sent here in its normal form already).
fn shown(field: &Field, response: &Value) -> Value {
    response
        .get(field.name)
        .cloned()
        .unwrap_or_else(|| panic!("{}: missing from the response {response}", field.name))
}

#[tokio::test]
async fn every_declared_field_is_parsed_stored_patched_and_replaced() {
    let app = app(&[]);
    for field in FIELDS {
        let name = field.name;
        let other = field.other_value();

        // POST with the field at another valid value: stored and shown.
        let created = respond(
            app,
            handlers::create_task::handle,
            request(&event(
                "create_task",
                Method::POST,
                &Value::Object(body_with(name, other.clone())),
                None,
            )),
        )
        .await;
        assert_eq!(
            created.status(),
            StatusCode::CREATED,
            "{name}: {:?}",
            created.body()
        );
        let created = text(&created);
        assert_eq!(shown(field, &created), other, "{name}: POST");
        let id = created["id"].as_str().expect("id").to_owned();

        // PATCH of only this field: changed (not an empty patch), the
        // others untouched.
        let patched = respond(
            app,
            handlers::update_task::handle,
            request(&event(
                "update_task",
                Method::PATCH,
                &json!({ name: field.example_value() }),
                Some(&id),
            )),
        )
        .await;
        assert_eq!(
            patched.status(),
            StatusCode::OK,
            "{name}: PATCH {:?}",
            patched.body()
        );
        let etag = patched
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        assert_eq!(
            etag.as_deref(),
            Some("\"2\""),
            "{name}: a PATCH of this field alone is a write"
        );
        let patched = text(&patched);
        assert_eq!(
            shown(field, &patched),
            field.example_value(),
            "{name}: PATCH"
        );
        for untouched in FIELDS.iter().filter(|f| f.name != name) {
            assert_eq!(
                patched[untouched.name], created[untouched.name],
                "{name}: PATCH changed {}",
                untouched.name
            );
        }

        // PUT with the field at the other value again.
        let replaced = respond(
            app,
            handlers::replace_task::handle,
            request(&event(
                "replace_task",
                Method::PUT,
                &Value::Object(body_with(name, other.clone())),
                Some(&id),
            )),
        )
        .await;
        assert_eq!(
            replaced.status(),
            StatusCode::OK,
            "{name}: PUT {:?}",
            replaced.body()
        );
        assert_eq!(shown(field, &text(&replaced)), other, "{name}: PUT");

        // GET shows what was stored.
        let fetched = respond(
            app,
            handlers::get_task::handle,
            request(&event("get_task", Method::GET, &Value::Null, Some(&id))),
        )
        .await;
        assert_eq!(shown(field, &text(&fetched)), other, "{name}: GET");
    }
}

#[tokio::test]
async fn every_declared_field_is_validated_and_defaulted() {
    let app = app(&[]);
    for field in FIELDS {
        let name = field.name;
        let (invalid, kind) = field.invalid_value();
        for (function, method) in [
            ("create_task", Method::POST),
            ("update_task", Method::PATCH),
        ] {
            let body = if method == Method::POST {
                Value::Object(body_with(name, invalid.clone()))
            } else {
                json!({ name: invalid.clone() })
            };
            let id = "0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d";
            let req = request(&event(function, method.clone(), &body, Some(id)));
            let response = if method == Method::POST {
                respond(app, handlers::create_task::handle, req).await
            } else {
                respond(app, handlers::update_task::handle, req).await
            };
            assert_eq!(
                response.status(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "{name}: {method} {invalid}"
            );
            let errors = text(&response)["detail"].clone();
            assert_eq!(errors[0]["loc"], json!(["body", name]), "{name}: {errors}");
            assert_eq!(errors[0]["type"], json!(kind), "{name}: {errors}");
            assert_eq!(errors.as_array().map(Vec::len), Some(1), "{name}: {errors}");
        }

        // Left out of a create: its default, or `missing`.
        let mut body = body_with(name, Value::Null);
        body.remove(name);
        let response = respond(
            app,
            handlers::create_task::handle,
            request(&event(
                "create_task",
                Method::POST,
                &Value::Object(body),
                None,
            )),
        )
        .await;
        match field.default_value() {
            Some(default) => {
                assert_eq!(response.status(), StatusCode::CREATED, "{name}");
                assert_eq!(shown(field, &text(&response)), default, "{name}: default");
            }
            None => {
                assert_eq!(
                    response.status(),
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "{name}"
                );
                let errors = text(&response)["detail"].clone();
                assert_eq!(errors[0]["type"], json!("missing"), "{name}: {errors}");
                assert_eq!(errors[0]["loc"], json!(["body", name]), "{name}: {errors}");
            }
        }
    }
}

/// A task with every field at its example, `name` at `value`.
fn task_with(name: &str, value: Value) -> Task {
    let mut task = body_with(name, value);
    task.insert("id".into(), json!("0193f1d2-7c4e-7a3b-9c1d-2e3f4a5b6c7d"));
    task.insert("created_at".into(), json!("2026-11-25T09:00:00.000000Z"));
    task.insert("updated_at".into(), json!("2026-11-25T09:00:00.000000Z"));
    serde_json::from_value(Value::Object(task)).expect("a task from its fields")
}

#[test]
fn every_declared_field_is_in_the_history_and_the_fingerprint() {
    for field in FIELDS {
        let name = field.name;
        let before = task_with(name, field.example_value());
        let after = task_with(name, field.other_value());
        let changes = Change::diff(Some(&before), Some(&after));
        let names: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(names, [name], "{name}: the history's field changes");
        assert_eq!(changes[0].from, Some(field.example_value()), "{name}");
        assert_eq!(changes[0].to, Some(field.other_value()), "{name}");
        let created = Change::diff(None, Some(&after));
        assert_eq!(
            created.len(),
            FIELDS.len(),
            "{name}: a create lists every field"
        );

        let a: TaskCreate =
            serde_json::from_value(Value::Object(body_with(name, field.example_value())))
                .expect("input");
        let b: TaskCreate =
            serde_json::from_value(Value::Object(body_with(name, field.other_value())))
                .expect("input");
        assert_ne!(
            Idempotency::new("k".into(), &a).fingerprint,
            Idempotency::new("k".into(), &b).fingerprint,
            "{name}: the same key with another {name} must not replay the first task"
        );
        let patch: TaskPatch =
            serde_json::from_value(json!({ name: field.other_value() })).expect("patch");
        assert!(
            !patch.is_empty(),
            "{name}: a PATCH of {name} alone is not empty"
        );
    }
}

#[test]
fn items_stored_before_a_field_existed_read_as_its_default() {
    for field in FIELDS {
        let mut stored =
            serde_json::to_value(task_with(field.name, field.example_value())).expect("json");
        if let Some(object) = stored.as_object_mut() {
            object.remove(field.name);
        }
        let read = serde_json::from_value::<Task>(stored);
        match field.default_value() {
            Some(default) => {
                let task = read.unwrap_or_else(|e| panic!("{}: {e}", field.name));
                assert_eq!(task.field(field.name), Some(default), "{}", field.name);
            }
            None => assert!(
                read.is_err(),
                "{}: required, so an item without it is malformed",
                field.name
            ),
        }
    }
}

async fn export(format: &str) -> String {
    let app = app(&[]);
    let mut created = Vec::new();
    for field in FIELDS {
        let response = respond(
            app,
            handlers::create_task::handle,
            request(&event(
                "create_task",
                Method::POST,
                &Value::Object(body_with(field.name, field.other_value())),
                None,
            )),
        )
        .await;
        created.push(text(&response));
    }
    let mut event = event_json("export_tasks");
    set_query(&mut event, &format!("format={format}"));
    let response = shared::runtime::respond_with(
        app,
        handlers::export_tasks::handle,
        request(&event),
        shared::http::streaming::buffered,
    )
    .await;
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("frame").into_data() {
            out.extend_from_slice(&data);
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

#[tokio::test]
async fn every_declared_field_is_exported() {
    let ndjson = export("ndjson").await;
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), FIELDS.len());
    for (field, line) in FIELDS.iter().zip(&lines) {
        assert_eq!(
            line[field.name],
            field.other_value(),
            "{}: NDJSON",
            field.name
        );
    }

    let csv = export("csv").await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    for field in FIELDS {
        assert!(
            header.iter().any(|h| h == field.name),
            "{}: no CSV column",
            field.name
        );
    }
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    for (field, row) in FIELDS.iter().zip(&rows) {
        let column = header.iter().position(|h| h == field.name).expect("column");
        let expected = match field.other_value() {
            Value::String(text) => text,
            other => other.to_string(),
        };
        assert_eq!(&row[column], expected.as_str(), "{}: CSV cell", field.name);
    }
}

#[test]
fn every_declared_field_is_documented_with_its_rule() {
    let document = serde_json::to_value(shared::openapi::document()).expect("document");
    let schemas = &document["components"]["schemas"];
    for field in FIELDS {
        let name = field.name;
        for model in ["Task", "TaskCreate", "TaskPatch"] {
            let property = &schemas[model]["properties"][name];
            assert!(property.is_object(), "{name}: not in {model}'s schema");
            let want_type = match field.kind {
                Kind::Text { .. } => "string",
                Kind::Bool => "boolean",
                Kind::Integer { .. } => "integer",
            };
            assert_eq!(property["type"], json!(want_type), "{name}: {model}");
            assert_eq!(
                property["examples"],
                json!([field.example_value()]),
                "{name}: {model}"
            );
        }
        let create = &schemas["TaskCreate"];
        let required = create["required"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            required.contains(&json!(name)),
            field.required(),
            "{name}: required in TaskCreate"
        );
        assert_eq!(
            create["properties"][name].get("default").cloned(),
            field.default_value(),
            "{name}: TaskCreate default"
        );
        for model in ["TaskCreate", "TaskPatch"] {
            let property = &schemas[model]["properties"][name];
            let bounds = match field.kind {
                Kind::Text { min, max } => [
                    ("minLength", (min > 0).then(|| json!(min))),
                    ("maxLength", Some(json!(max))),
                ],
                Kind::Bool => [("minimum", None), ("maximum", None)],
                Kind::Integer { min, max } => {
                    [("minimum", Some(json!(min))), ("maximum", Some(json!(max)))]
                }
            };
            for (bound, want) in bounds {
                assert_eq!(
                    property.get(bound).cloned(),
                    want,
                    "{name}: {model}.{bound}"
                );
            }
        }
        assert!(
            schemas["Task"]["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!(name))),
            "{name}: every response carries it"
        );
    }
}

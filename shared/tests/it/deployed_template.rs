//! The template as CloudFormation receives it: `template.yaml` after SAM's
//! transform (`scripts/sam_translate.py`, run by `make template-check` and
//! `make deploy-check`, which set `DEPLOYED_TEMPLATE` to its output). The
//! other template tests read the source; this one reads what SAM made of
//! it: every Lambda function's runtime and environment, every role's
//! policies (exactly the declared DynamoDB access, and no managed policy
//! but the basic execution role), and the HTTP API's routes, auth and
//! permissions against the route table. Ignored by plain `cargo test` (no
//! SAM there): `make template-check` runs them with `--ignored`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use shared::handlers::{STREAM_ACTIONS, dynamodb_access};
use shared::http::routes::{DOCS, FALLBACK, ROUTES, STREAMED};
use shared::runtime::EVENT_FUNCTIONS;

const BASIC_ROLE: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";
/// Routes API Gateway lets through without a JWT.
const PUBLIC: &[&str] = &["health", DOCS];

/// The transformed template `make template-check` wrote (these tests are
/// ignored otherwise, never passed without it).
fn deployed() -> Value {
    let path = std::env::var("DEPLOYED_TEMPLATE")
        .expect("DEPLOYED_TEMPLATE: run these with make template-check");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).expect("the transformed template is JSON")
}

fn resources<'a>(t: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    t["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

/// `logical id -> crate` of every Lambda function.
fn functions(t: &Value) -> BTreeMap<String, String> {
    resources(t, "AWS::Lambda::Function")
        .into_iter()
        .map(|(id, f)| {
            let binary = f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: no Binary"));
            (id.to_owned(), binary.to_owned())
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        Value::String(s) => vec![s.clone()],
        other => panic!("expected a string or a list of them, got {other}"),
    }
}

#[test]
#[ignore = "needs the transformed template: make template-check"]
fn sam_leaves_only_cloudformation_resources() {
    let t = deployed();
    for (id, r) in t["Resources"].as_object().expect("Resources") {
        let kind = r["Type"].as_str().unwrap_or_default();
        assert!(!kind.starts_with("AWS::Serverless::"), "{id}: {kind}");
    }
    assert!(t.get("Transform").is_none());
}

#[test]
#[ignore = "needs the transformed template: make template-check"]
fn every_function_runs_arm64_with_the_deployed_environment() {
    let t = deployed();
    let functions = functions(&t);
    let mut crates: Vec<&str> = functions.values().map(String::as_str).collect();
    crates.sort_unstable();
    let mut expected: Vec<&str> = ROUTES
        .iter()
        .map(|r| r.function)
        .chain([FALLBACK])
        .chain(EVENT_FUNCTIONS.iter().copied())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    expected.sort_unstable();
    assert_eq!(crates, expected, "one Lambda function per crate");

    for (id, f) in resources(&t, "AWS::Lambda::Function") {
        let p = &f["Properties"];
        let binary = &functions[id];
        assert_eq!(p["Runtime"], "provided.al2023", "{id}");
        assert_eq!(p["Handler"], "bootstrap", "{id}");
        assert_eq!(p["Architectures"], serde_json::json!(["arm64"]), "{id}");
        assert_eq!(p["LoggingConfig"]["LogFormat"], "JSON", "{id}");
        let env: BTreeSet<&str> = p["Environment"]["Variables"]
            .as_object()
            .unwrap_or_else(|| panic!("{id}: no environment"))
            .keys()
            .map(String::as_str)
            .collect();
        let mut want: BTreeSet<&str> = ["TABLE_NAME", "MAX_TASKS"].into();
        if STREAMED.contains(&binary.as_str()) {
            want.extend(["JWT_ISSUER", "JWT_AUDIENCE"]);
        }
        match binary.as_str() {
            "task_events" => {
                want.extend(["EVENTS_LIFETIME_SECONDS", "MAX_FEED_STREAMS_PER_CALLER"])
            }
            "create_ticket" => {
                want.insert("EVENTS_URL");
            }
            "audit" => {
                want.insert("CHANGE_RETENTION_DAYS");
            }
            _ => {}
        }
        assert_eq!(env, want, "{id}: environment (never IDENTITY_MODE)");
        assert_eq!(
            p["Environment"]["Variables"]["TABLE_NAME"],
            serde_json::json!({"Ref": "TasksTable"}),
            "{id}"
        );
    }
}

/// `(action, resource)` pairs of a role's inline policies, the resource as
/// `table`, `table/index/<name>` or `stream`.
fn grants(id: &str, role: &Value) -> BTreeSet<(String, String)> {
    let mut grants = BTreeSet::new();
    for policy in role["Properties"]["Policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for statement in policy["PolicyDocument"]["Statement"]
            .as_array()
            .unwrap_or_else(|| panic!("{id}: statements"))
        {
            assert_eq!(statement["Effect"], "Allow", "{id}");
            let resources: Vec<String> = match &statement["Resource"] {
                Value::Array(items) => items.iter().map(resource_name).collect(),
                one => vec![resource_name(one)],
            };
            for action in strings(&statement["Action"]) {
                for resource in &resources {
                    grants.insert((action.clone(), resource.clone()));
                }
            }
        }
    }
    grants
}

fn resource_name(v: &Value) -> String {
    if v == &serde_json::json!({"Fn::GetAtt": ["TasksTable", "Arn"]}) {
        return "table".into();
    }
    if v == &serde_json::json!({"Fn::GetAtt": ["TasksTable", "StreamArn"]}) {
        return "stream".into();
    }
    if let Some(index) = v["Fn::Sub"]
        .as_str()
        .and_then(|s| s.strip_prefix("${TasksTable.Arn}/index/"))
    {
        return format!("table/index/{index}");
    }
    // The audit mapping's on-failure destination (least_privilege.rs pins
    // that only the audit function may send there, and only SendMessage).
    if v == &serde_json::json!({"Fn::GetAtt": ["AuditFailureQueue", "Arn"]}) {
        return "failure queue".into();
    }
    panic!("a resource other than the table, its indexes or its stream: {v}")
}

#[test]
#[ignore = "needs the transformed template: make template-check"]
fn every_role_grants_exactly_the_declared_access() {
    let t = deployed();
    let functions = functions(&t);
    for (id, f) in resources(&t, "AWS::Lambda::Function") {
        let binary = &functions[id];
        let role_id = f["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: role"));
        let role = &t["Resources"][role_id];
        assert_eq!(role["Type"], "AWS::IAM::Role", "{id}");
        assert_eq!(
            role["Properties"]["ManagedPolicyArns"],
            serde_json::json!([BASIC_ROLE]),
            "{id}: the basic execution role only"
        );
        let access = dynamodb_access(binary).unwrap_or_else(|| panic!("{binary}: no declaration"));
        let mut want = BTreeSet::new();
        for action in access.actions {
            if access.table {
                want.insert((action.to_string(), "table".to_owned()));
            }
            for index in access.indexes {
                want.insert((action.to_string(), format!("table/index/{index}")));
            }
        }
        if access.stream {
            for action in STREAM_ACTIONS {
                want.insert((action.to_string(), "stream".to_owned()));
            }
            want.insert(("sqs:SendMessage".to_owned(), "failure queue".to_owned()));
        }
        assert_eq!(grants(id, role), want, "{id} ({binary})");
    }
}

#[test]
#[ignore = "needs the transformed template: make template-check"]
fn the_http_api_routes_each_route_to_its_function() {
    let t = deployed();
    let functions = functions(&t);
    let apis = resources(&t, "AWS::ApiGatewayV2::Api");
    let [(_, api)] = apis[..] else {
        panic!("one HTTP API, found {}", apis.len())
    };
    // (method, path) -> (crate, public)
    let mut routes = BTreeMap::new();
    for (path, methods) in api["Properties"]["Body"]["paths"]
        .as_object()
        .expect("paths")
    {
        for (method, op) in methods.as_object().expect("methods") {
            let uri = op["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path}: integration"));
            let id = uri
                .split("${")
                .find_map(|s| s.strip_suffix(".Arn}/invocations"))
                .unwrap_or_else(|| panic!("{method} {path}: {uri}"));
            assert_eq!(
                op["x-amazon-apigateway-integration"]["payloadFormatVersion"],
                "2.0"
            );
            let public = op["security"] == serde_json::json!([{"NONE": []}]);
            if !public {
                assert_eq!(op["security"], serde_json::json!([{"JwtAuthorizer": []}]));
            }
            routes.insert(
                (method.to_uppercase(), path.clone()),
                (functions[id].clone(), public),
            );
        }
    }
    let mut want = BTreeMap::new();
    for route in ROUTES {
        // Streamed routes: their Function URLs; the API's fallback says so.
        let function = if STREAMED.contains(&route.function) {
            FALLBACK
        } else {
            route.function
        };
        let public = PUBLIC.contains(&route.function);
        want.insert(
            (route.method.to_owned(), route.path.to_owned()),
            (function.to_owned(), public),
        );
    }
    want.insert(
        (
            "X-AMAZON-APIGATEWAY-ANY-METHOD".to_owned(),
            "$default".to_owned(),
        ),
        (FALLBACK.to_owned(), true),
    );
    assert_eq!(routes, want);

    // API Gateway may invoke each routed function; nothing else may but
    // the streamed functions' public URLs.
    let permissions = resources(&t, "AWS::Lambda::Permission");
    for (id, binary) in &functions {
        let principals: BTreeSet<&str> = permissions
            .iter()
            .filter(|(_, p)| p["Properties"]["FunctionName"] == serde_json::json!({"Ref": id}))
            .map(|(_, p)| p["Properties"]["Principal"].as_str().unwrap_or_default())
            .collect();
        let routed = want.values().any(|(f, _)| f == binary);
        let want: BTreeSet<&str> = if routed {
            ["apigateway.amazonaws.com"].into()
        } else if STREAMED.contains(&binary.as_str()) {
            ["*"].into()
        } else {
            BTreeSet::new()
        };
        assert_eq!(principals, want, "{id}: who may invoke it");
    }
}

#[test]
#[ignore = "needs the transformed template: make template-check"]
fn streamed_functions_have_streaming_urls_and_audit_reads_the_stream() {
    let t = deployed();
    let functions = functions(&t);
    let urls: BTreeMap<&str, &Value> = resources(&t, "AWS::Lambda::Url")
        .into_iter()
        .map(|(_, u)| {
            let target = u["Properties"]["TargetFunctionArn"]["Ref"]
                .as_str()
                .expect("a URL of a function of this stack");
            (functions[target].as_str(), &u["Properties"])
        })
        .collect();
    assert_eq!(urls.keys().copied().collect::<Vec<_>>(), {
        let mut s = STREAMED.to_vec();
        s.sort_unstable();
        s
    });
    for (function, url) in urls {
        assert_eq!(url["InvokeMode"], "RESPONSE_STREAM", "{function}");
        assert_eq!(
            url["AuthType"], "NONE",
            "{function} checks the token itself"
        );
    }
    let mappings = resources(&t, "AWS::Lambda::EventSourceMapping");
    let mapped: Vec<&str> = mappings
        .iter()
        .map(|(_, m)| {
            assert_eq!(
                m["Properties"]["EventSourceArn"],
                serde_json::json!({"Fn::GetAtt": ["TasksTable", "StreamArn"]})
            );
            assert_eq!(
                m["Properties"]["FunctionResponseTypes"],
                serde_json::json!(["ReportBatchItemFailures"])
            );
            let id = m["Properties"]["FunctionName"]["Ref"]
                .as_str()
                .expect("FunctionName");
            functions[id].as_str()
        })
        .collect();
    assert_eq!(mapped, EVENT_FUNCTIONS);
}

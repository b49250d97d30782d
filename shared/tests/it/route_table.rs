//! There is one route table: `shared::http::routes` (which function serves which
//! method and path) and one table layout: `shared::ports::table`. Three other
//! places must restate them because their tools cannot read Rust:
//!
//! - `template.yaml`: the API Gateway routes, one function resource per
//!   crate, and the DynamoDB table (what is deployed);
//! - `[workspace.metadata.lambda.watch.router]` in the workspace `Cargo.toml`
//!   (what `cargo lambda watch` serves locally);
//! - the crates under `functions/` (what gets built);
//! - the OpenAPI document's operations (`shared::openapi`, what is
//!   documented): every route but the docs function's own, as in FastAPI,
//!   with the function's name as `operationId`.
//!
//! A route added in one place and forgotten in another would work locally and
//! 404 on AWS (or the reverse), deploy a function nobody routes to, or
//! document an operation nobody serves. These tests fail on any such drift,
//! and the router test prints the block to paste into `Cargo.toml`.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::{
    assert_no_problems, at, differences, read, reference, repo_root, resources, template, text,
};
use serde::Deserialize;
use serde_norway::Value;
use shared::adapters::dynamo::table::{INDEXES, TABLE_KEY};
use shared::http::routes::{
    DOCS, FALLBACK, METHODS, ROUTES, STREAMED, is_streamed, paths, route_for,
};
use shared::runtime::EVENT_FUNCTIONS;

/// API Gateway's catch-all route, served by [`FALLBACK`].
const DEFAULT_ROUTE: (&str, &str) = ("ANY", "$default");

/// `(method, path)` of the routes reachable without a token (the contract:
/// every route but `/health` and the docs needs a caller; the fallback
/// answers 404/405 before identity).
fn public_routes() -> Vec<(&'static str, &'static str)> {
    let docs = ROUTES
        .iter()
        .filter(|r| r.function == DOCS)
        .map(|r| (r.method, r.path));
    let mut public: Vec<_> = [("GET", "/health"), DEFAULT_ROUTE]
        .into_iter()
        .chain(docs)
        .collect();
    public.sort();
    public
}

// ---------------------------------------------------------- what rust says

/// `(method, path, function)` of every route of the table, sorted.
fn table_routes() -> Vec<(String, String, String)> {
    let mut routes: Vec<_> = ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_owned(),
                r.path.to_owned(),
                r.function.to_owned(),
            )
        })
        .collect();
    routes.sort();
    routes
}

/// [`table_routes`] as the HTTP API routes them: a streamed route goes to
/// the fallback there (its function is served on its own Function URL).
fn http_api_routes() -> Vec<(String, String, String)> {
    let mut routes: Vec<_> = table_routes()
        .into_iter()
        .map(|(method, path, function)| {
            let function = if is_streamed(&function) {
                FALLBACK.to_owned()
            } else {
                function
            };
            (method, path, function)
        })
        .collect();
    routes.sort();
    routes
}

/// A path in `cargo lambda watch`'s syntax: API Gateway's greedy
/// `{name+}` is `{*name}` there.
fn watch_path(path: &str) -> String {
    match path.rsplit_once('{') {
        Some((head, last)) if last.ends_with("+}") => {
            format!("{head}{{*{}}}", &last[..last.len() - 2])
        }
        _ => path.to_owned(),
    }
}

/// Every function that must exist: each route's, and the fallback.
fn table_functions() -> BTreeSet<String> {
    ROUTES
        .iter()
        .map(|r| r.function)
        .chain([FALLBACK])
        .map(str::to_owned)
        .collect()
}

// ------------------------------------------------------- reading the YAML

/// The crate a function resource builds (`Metadata.BuildProperties.Binary`).
fn binary<'a>(id: &str, function: &'a Value) -> &'a str {
    text(function, &["Metadata", "BuildProperties", "Binary"], id)
}

/// `(logical id, crate)` of every `AWS::Serverless::Function`.
fn template_functions(template: &Value) -> Vec<(&str, &str)> {
    resources(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, function)| (id, binary(id, function)))
        .collect()
}

/// One `HttpApi` event of a function resource.
struct HttpEvent<'a> {
    function: &'a str,
    method: &'a str,
    path: &'a str,
    properties: &'a Value,
}

fn http_events(template: &Value) -> Vec<HttpEvent<'_>> {
    let mut events = Vec::new();
    for (id, function) in resources(template, "AWS::Serverless::Function") {
        let Some(declared) = at(function, &["Properties", "Events"]).and_then(Value::as_mapping)
        else {
            continue;
        };
        for (name, event) in declared {
            if event.get("Type").and_then(Value::as_str) != Some("HttpApi") {
                continue;
            }
            let whose = format!("{id} event {name:?}");
            events.push(HttpEvent {
                function: binary(id, function),
                method: text(event, &["Properties", "Method"], &whose),
                path: text(event, &["Properties", "Path"], &whose),
                properties: event.get("Properties").expect("checked by text()"),
            });
        }
    }
    events
}

/// `(attribute name, type)` pairs, as in a key schema or attribute list.
type Pairs = Vec<(String, String)>;

/// `(name, type)` pairs of a list of `{<name_key>: .., <type_key>: ..}`.
fn pairs(list: Option<&Value>, name_key: &str, type_key: &str) -> Pairs {
    list.and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("expected a list of {name_key}/{type_key}, got {list:?}"))
        .iter()
        .map(|item| {
            let whose = format!("{item:?}");
            (
                text(item, &[name_key], &whose).to_owned(),
                text(item, &[type_key], &whose).to_owned(),
            )
        })
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Pairs {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// `create_task` → `CreateTask`.
fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

// ------------------------------------------------- the cargo lambda router

/// One entry of a path in the `cargo lambda watch` router.
#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
struct RouterEntry {
    method: String,
    function: String,
}

/// Path → entries, sorted: the order of entries means nothing to the router.
type Router = BTreeMap<String, Vec<RouterEntry>>;

fn parse_router(value: toml::Value) -> Result<Router, toml::de::Error> {
    let mut router: Router = value.try_into()?;
    for entries in router.values_mut() {
        entries.sort();
    }
    Ok(router)
}

/// The router the table implies, parsed from [`expected_router_toml`].
fn expected_router() -> Router {
    let table: toml::Table =
        toml::from_str(&expected_router_toml()).expect("the expected router block is valid TOML");
    parse_router(toml::Value::Table(table)).expect("the expected router block is a router")
}

/// Who serves `method` on a watch path that has no route for it: as API
/// Gateway picks, the route with parameters that matches the literal path
/// (`PUT /tasks/export` is `PUT /tasks/{task_id}`), else the fallback.
fn unrouted_function(path: &str, method: &str) -> &'static str {
    if path.contains('{') {
        return FALLBACK;
    }
    route_for(method, path).map_or(FALLBACK, |r| r.function)
}

/// The router the table implies, as TOML to paste under
/// `[workspace.metadata.lambda.watch.router]`: each path's routes, then every
/// other method to the fallback (405), and any other path to the fallback (404).
fn expected_router_toml() -> String {
    let mut lines = Vec::new();
    let watch_paths = paths().into_iter().map(watch_path);
    for path in watch_paths.chain(["/".to_owned(), "/{*rest}".to_owned()]) {
        let routed: Vec<(&str, &str)> = ROUTES
            .iter()
            .filter(|r| watch_path(r.path) == path)
            .map(|r| (r.method, r.function))
            .collect();
        let rest = METHODS
            .iter()
            .filter(|m| !routed.iter().any(|(method, _)| method == *m))
            .map(|m| (*m, unrouted_function(&path, m)));
        let entries: Vec<String> = routed
            .iter()
            .copied()
            .chain(rest)
            .map(|(method, function)| format!("{{ method = {method:?}, function = {function:?} }}"))
            .collect();
        lines.push(format!("{path:?} = [{}]", entries.join(", ")));
    }
    lines.join("\n")
}

fn workspace_router() -> toml::Value {
    let manifest: toml::Table = toml::from_str(&read("Cargo.toml")).expect("Cargo.toml is TOML");
    ["workspace", "metadata", "lambda", "watch", "router"]
        .iter()
        .try_fold(&toml::Value::Table(manifest), |v, key| v.get(key))
        .cloned()
        .expect("Cargo.toml has [workspace.metadata.lambda.watch.router]")
}

// ------------------------------------------------------------------ tests

#[test]
fn template_routes_are_the_route_table() {
    let template = template();
    let events = http_events(&template);

    let default: Vec<&str> = events
        .iter()
        .filter(|e| (e.method, e.path) == DEFAULT_ROUTE)
        .map(|e| e.function)
        .collect();
    assert_eq!(
        default,
        [FALLBACK],
        "the $default route (Method: ANY) must go to the fallback, once"
    );

    let routes: Vec<_> = events
        .iter()
        .filter(|e| (e.method, e.path) != DEFAULT_ROUTE)
        .map(|e| {
            (
                e.method.to_owned(),
                e.path.to_owned(),
                e.function.to_owned(),
            )
        })
        .collect();
    let (missing, extra) = differences(routes, http_api_routes());
    let mut problems: Vec<String> = missing
        .iter()
        .map(|(method, path, function)| {
            format!(
                "template.yaml lacks the HttpApi event of {method} {path}: under {}Function's \
                 Events, `Type: HttpApi` with `ApiId: !Ref TasksApi`, `Path: {path}`, \
                 `Method: {method}`, `PayloadFormatVersion: \"2.0\"`",
                pascal_case(function)
            )
        })
        .collect();
    problems.extend(extra.iter().map(|(method, path, function)| {
        format!(
            "template.yaml routes {method} {path} to {function} ({}Function), which \
             shared/src/http/routes.rs ROUTES does not: remove the event, or add the route",
            pascal_case(function)
        )
    }));
    assert_no_problems(
        "template.yaml's HttpApi events differ from shared::http::routes::ROUTES",
        &problems,
    );
}

#[test]
fn every_event_is_on_the_one_http_api_behind_the_authorizer() {
    let template = template();
    let apis = resources(&template, "AWS::Serverless::HttpApi");
    let [(api_id, api)] = apis[..] else {
        panic!("template.yaml must declare exactly one HttpApi, found {apis:?}");
    };
    let default_authorizer = text(api, &["Properties", "Auth", "DefaultAuthorizer"], api_id);
    assert!(
        at(
            api,
            &["Properties", "Auth", "Authorizers", default_authorizer]
        )
        .is_some(),
        "{api_id}'s DefaultAuthorizer {default_authorizer} is not declared"
    );

    let mut public = Vec::new();
    for event in http_events(&template) {
        let route = (event.method, event.path);
        assert_eq!(
            event.properties.get("ApiId").and_then(reference),
            Some(api_id),
            "{route:?} must say `ApiId: !Ref {api_id}` (else SAM makes another API, without auth)"
        );
        match at(event.properties, &["Auth", "Authorizer"]) {
            None => {}
            Some(Value::String(none)) if none == "NONE" => public.push(route),
            Some(other) => panic!("{route:?} overrides the authorizer with {other:?}"),
        }
    }
    public.sort();
    assert_eq!(
        public,
        public_routes(),
        "only these routes may skip the JWT authorizer"
    );
}

#[test]
fn the_deployed_stack_trusts_jwt_claims_only() {
    let template = template();
    let global = at(
        &template,
        &["Globals", "Function", "Environment", "Variables"],
    );
    let mut environments = vec![("Globals", global)];
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        let variables = at(function, &["Properties", "Environment", "Variables"]);
        environments.push((id, variables));
    }
    for (whose, variables) in environments {
        assert!(
            variables.and_then(|v| v.get("IDENTITY_MODE")).is_none(),
            "{whose} sets IDENTITY_MODE: deployed, only the JWT `sub` may name the caller"
        );
    }
}

/// The streamed functions are served on their own Function URLs in
/// `RESPONSE_STREAM` mode, with no IAM auth in front (the function checks
/// the caller's JWT itself, against the same issuer and audience as the
/// HTTP API's authorizer); no other function has a URL. The URLs are
/// `AWS::Lambda::Url` resources (their permissions: `deployment.rs`), never
/// a function's `FunctionUrlConfig`, with which SAM would add permissions
/// of its own.
#[test]
fn streamed_functions_have_streaming_function_urls_with_a_token_check() {
    let template = template();
    let mut with_url = Vec::new();
    for (id, function) in resources(&template, "AWS::Serverless::Function") {
        assert!(
            at(function, &["Properties", "FunctionUrlConfig"]).is_none(),
            "{id}: declare its URL as an AWS::Lambda::Url, not FunctionUrlConfig"
        );
    }
    for (url_id, url) in resources(&template, "AWS::Lambda::Url") {
        let id = at(url, &["Properties", "TargetFunctionArn"])
            .and_then(crate::support::alias_of)
            .unwrap_or_else(|| panic!("{url_id}: TargetFunctionArn: !Ref <Function>.Alias"));
        let function = crate::support::resource(&template, id);
        let crate_name = binary(id, function);
        with_url.push(crate_name);
        let properties = &url["Properties"];
        assert_eq!(
            text(properties, &["InvokeMode"], url_id),
            "RESPONSE_STREAM",
            "{url_id}"
        );
        assert_eq!(text(properties, &["AuthType"], url_id), "NONE", "{url_id}");
        let variables = at(function, &["Properties", "Environment", "Variables"]);
        for name in ["JWT_ISSUER", "JWT_AUDIENCE", "JWT_SCOPES"] {
            assert!(
                variables.and_then(|v| v.get(name)).is_some(),
                "{id} has a public URL: it must check tokens ({name})"
            );
        }
    }
    with_url.sort();
    let mut streamed = STREAMED.to_vec();
    streamed.sort();
    assert_eq!(with_url, streamed);
}

#[test]
fn watch_router_is_the_route_table() {
    let actual = parse_router(workspace_router());
    let expected = expected_router();
    let problem = match &actual {
        Ok(router) if *router == expected => return,
        Ok(router) => {
            let show = |entries: &[RouterEntry]| {
                entries
                    .iter()
                    .map(|e| format!("{} -> {}", e.method, e.function))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut lines = Vec::new();
            for (path, want) in &expected {
                match router.get(path) {
                    None => lines.push(format!("{path:?} is missing")),
                    Some(have) if have != want => lines.push(format!(
                        "{path:?} has [{}], expected [{}]",
                        show(have),
                        show(want)
                    )),
                    Some(_) => {}
                }
            }
            for path in router.keys().filter(|p| !expected.contains_key(*p)) {
                lines.push(format!("{path:?} is no path of the route table"));
            }
            format!("\n  - {}", lines.join("\n  - "))
        }
        Err(e) => format!("it cannot be read: {e}"),
    };
    panic!(
        "Cargo.toml's [workspace.metadata.lambda.watch.router] does not match \
         shared/src/http/routes.rs ROUTES: {problem}\n\
         Replace the entries under [workspace.metadata.lambda.watch.router] with:\n\n{}\n",
        expected_router_toml()
    );
}

#[test]
fn expected_router_sends_unrouted_methods_and_paths_to_the_fallback() {
    // Guards the generator above, so a bug in it cannot bless a wrong router.
    let router = expected_router();
    assert_eq!(router.len(), paths().len() + 2, "{router:?}");
    let mut all = METHODS.to_vec();
    all.sort();
    for (path, entries) in &router {
        let methods: Vec<&str> = entries.iter().map(|e| e.method.as_str()).collect();
        assert_eq!(methods, all, "{path}: every method exactly once");
        for entry in entries {
            let routed = ROUTES
                .iter()
                .find(|r| watch_path(r.path) == *path && r.method == entry.method);
            let function =
                routed.map_or_else(|| unrouted_function(path, &entry.method), |r| r.function);
            assert_eq!(entry.function, function, "{path} {}", entry.method);
        }
    }
}

#[test]
fn function_crates_are_the_route_functions() {
    let expected = table_functions();

    let functions_dir = repo_root().join("functions");
    let mut crates = BTreeSet::new();
    for entry in std::fs::read_dir(&functions_dir).expect("functions/ exists") {
        let entry = entry.expect("readable directory entry");
        if entry.file_type().expect("file type").is_dir() {
            let name = entry.file_name().into_string().expect("UTF-8 crate dir");
            let manifest: toml::Table =
                toml::from_str(&read(&format!("functions/{name}/Cargo.toml")))
                    .expect("a function's Cargo.toml is TOML");
            let package = manifest
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(toml::Value::as_str);
            assert_eq!(
                package,
                Some(name.as_str()),
                "functions/{name} must be the crate (and binary) named {name}"
            );
            crates.insert(name);
        }
    }
    let expected_crates: BTreeSet<String> = expected
        .iter()
        .cloned()
        .chain(EVENT_FUNCTIONS.iter().map(|f| f.to_string()))
        .collect();
    let (missing, extra) = differences(crates.iter().cloned(), expected_crates.iter().cloned());
    let mut problems: Vec<String> = missing
        .iter()
        .map(|name| {
            format!(
                "functions/{name}/ is missing: the crate (and binary) {name}, whose main.rs \
                 hands shared::handlers::{name}::handle to shared::runtime::start*"
            )
        })
        .collect();
    problems.extend(extra.iter().map(|name| {
        format!(
            "functions/{name}/ serves no route of shared/src/http/routes.rs ROUTES and is \
             not in shared::runtime::EVENT_FUNCTIONS"
        )
    }));
    assert_no_problems(
        "functions/ differs from the functions of the code",
        &problems,
    );

    let template = template();
    let functions = template_functions(&template);
    let binaries: Vec<String> = functions.iter().map(|(_, b)| b.to_string()).collect();
    let (missing, extra) = differences(binaries.iter().cloned(), expected_crates);
    let mut problems: Vec<String> = missing
        .iter()
        .map(|name| {
            format!(
                "template.yaml lacks {}Function: an AWS::Serverless::Function with \
                 `Metadata: BuildProperties: Binary: {name}` (and its {}LogGroup)",
                pascal_case(name),
                pascal_case(name)
            )
        })
        .collect();
    problems.extend(
        extra
            .iter()
            .map(|name| format!("template.yaml builds {name}, which is no crate under functions/")),
    );
    let mut seen = BTreeSet::new();
    for binary in &binaries {
        if !seen.insert(binary) {
            problems.push(format!("template.yaml builds {binary} twice"));
        }
    }
    assert_no_problems(
        "template.yaml must have exactly one function per crate in functions/",
        &problems,
    );
    for (id, binary) in functions {
        assert_eq!(
            id,
            format!("{}Function", pascal_case(binary)),
            "logical id of the {binary} function"
        );
    }
}

#[test]
fn openapi_operations_are_the_route_table() {
    let document = serde_json::to_value(shared::openapi::document()).expect("the document");
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let id = operation["operationId"].as_str().unwrap_or_default();
            operations.push((method.to_uppercase(), path.clone(), id.to_owned()));
        }
    }
    let documented: Vec<_> = table_routes()
        .into_iter()
        .filter(|(_, _, function)| function != DOCS)
        .collect();
    let (missing, extra) = differences(operations, documented);
    let mut problems: Vec<String> = missing
        .iter()
        .map(|(method, path, function)| {
            format!(
                "the OpenAPI document lacks {method} {path} (operationId {function}): add \
                 `handlers::{function}::handle` to paths(...) in shared/src/openapi/mod.rs \
                 (its #[utoipa::path] saying {} {path:?}, operation_id = {function:?}), \
                 then `make openapi`",
                method.to_lowercase()
            )
        })
        .collect();
    problems.extend(extra.iter().map(|(method, path, id)| {
        format!(
            "the OpenAPI document has {method} {path} (operationId {id:?}), which no route of \
             shared/src/http/routes.rs ROUTES serves with that function"
        )
    }));
    assert_no_problems(
        "the OpenAPI operations differ from shared::http::routes::ROUTES (docs routes aside)",
        &problems,
    );
    let docs: Vec<_> = ROUTES.iter().filter(|r| r.function == DOCS).collect();
    for page in ["/openapi.json", "/docs", "/redoc"] {
        assert!(
            docs.iter().any(|r| (r.method, r.path) == ("GET", page)),
            "the docs function serves GET {page}"
        );
    }
}

#[test]
fn every_function_has_its_sample_event() {
    // `cargo lambda invoke <function> --data-file events/<function>.json`
    // (README), the handler tests and `make perf` read them.
    let mut problems = Vec::new();
    for function in table_functions()
        .into_iter()
        .chain(EVENT_FUNCTIONS.iter().map(|f| f.to_string()))
    {
        let file = format!("events/{function}.json");
        let Ok(text) = std::fs::read_to_string(repo_root().join(&file)) else {
            problems.push(format!(
                "{file} is missing (an API Gateway v2 event for {function})"
            ));
            continue;
        };
        let event: serde_json::Value = match serde_json::from_str(&text) {
            Ok(event) => event,
            Err(e) => {
                problems.push(format!("{file} is no JSON: {e}"));
                continue;
            }
        };
        let keys: Vec<String> = ROUTES
            .iter()
            .filter(|r| r.function == function)
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        let key = event["routeKey"].as_str().unwrap_or_default();
        if !keys.is_empty() && !keys.iter().any(|k| k == key) {
            problems.push(format!(
                "{file}: routeKey {key:?} is none of {function}'s routes ({})",
                keys.join(", ")
            ));
        }
    }
    assert_no_problems("sample events", &problems);
}

#[test]
fn the_docs_function_needs_no_permissions() {
    let template = template();
    let (id, docs) = resources(&template, "AWS::Serverless::Function")
        .into_iter()
        .find(|(id, function)| binary(id, function) == DOCS)
        .expect("a docs function");
    assert!(
        at(docs, &["Properties", "Policies"]).is_none(),
        "{id} serves static content: no IAM policy"
    );
}

#[test]
fn watch_paths_use_cargo_lambdas_catch_all_syntax() {
    assert_eq!(watch_path("/docs/{proxy+}"), "/docs/{*proxy}");
    assert_eq!(watch_path("/tasks/{task_id}"), "/tasks/{task_id}");
    assert_eq!(watch_path("/health"), "/health");
}

#[test]
fn pascal_case_joins_capitalised_words() {
    assert_eq!(pascal_case("create_task"), "CreateTask");
    assert_eq!(pascal_case("me"), "Me");
}

#[test]
fn template_table_is_the_table_layout() {
    let template = template();
    let tables = resources(&template, "AWS::DynamoDB::Table");
    let [(table_id, table)] = tables[..] else {
        panic!("template.yaml must declare exactly one DynamoDB table, found {tables:?}");
    };
    let properties = table.get("Properties").expect("the table has Properties");

    assert_eq!(
        text(properties, &["BillingMode"], table_id),
        "PAY_PER_REQUEST"
    );

    let mut expected_attributes: Pairs = TABLE_KEY
        .iter()
        .chain(INDEXES.iter().flat_map(|(_, keys)| keys.iter()))
        .map(|(name, _)| (name.to_string(), "S".to_owned()))
        .collect();
    expected_attributes.sort();
    let mut attributes = pairs(
        properties.get("AttributeDefinitions"),
        "AttributeName",
        "AttributeType",
    );
    attributes.sort();
    assert_eq!(
        attributes, expected_attributes,
        "AttributeDefinitions: every key attribute, type S, and nothing else"
    );

    assert_eq!(
        pairs(properties.get("KeySchema"), "AttributeName", "KeyType"),
        owned(&TABLE_KEY),
        "KeySchema"
    );

    let indexes: Vec<(String, Pairs, String)> = properties
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .expect("GlobalSecondaryIndexes is a list")
        .iter()
        .map(|index| {
            let name = text(index, &["IndexName"], table_id);
            (
                name.to_owned(),
                pairs(index.get("KeySchema"), "AttributeName", "KeyType"),
                text(index, &["Projection", "ProjectionType"], name).to_owned(),
            )
        })
        .collect();
    let expected_indexes: Vec<_> = INDEXES
        .iter()
        .map(|(name, keys)| (name.to_string(), owned(keys), "ALL".to_owned()))
        .collect();
    assert_eq!(indexes, expected_indexes, "GlobalSecondaryIndexes");

    let table_name = at(
        &template,
        &[
            "Globals",
            "Function",
            "Environment",
            "Variables",
            "TABLE_NAME",
        ],
    );
    assert_eq!(
        table_name.and_then(reference),
        Some(table_id),
        "every function's TABLE_NAME must be `!Ref {table_id}`"
    );
}

/// The functions that look for no caller (`shared::runtime::start_public`:
/// no bearer-token check built or linked) are exactly those of the routes
/// that skip the authorizer: `/health`, the docs and the fallback. Any other
/// function started that way would answer without its caller.
#[test]
fn only_public_routes_functions_start_public() {
    let public: BTreeSet<&str> = public_routes()
        .iter()
        .map(|&(method, path)| {
            if (method, path) == DEFAULT_ROUTE {
                FALLBACK
            } else {
                route_for(method, path)
                    .map(|route| route.function)
                    .unwrap_or_else(|| panic!("{method} {path}: no route"))
            }
        })
        .collect();
    let started_public = functions_started_with("shared::runtime::start_public(");
    let started_public: BTreeSet<&str> = started_public.iter().map(String::as_str).collect();
    assert_eq!(
        started_public, public,
        "functions/*/src/main.rs: start_public is for the public routes' functions only, and theirs"
    );
}

/// Which functions check bearer tokens in a deploy build: exactly the
/// streamed ones (no authorizer in front of a Function URL), by starting
/// with `start_streaming`; every other function with a caller starts with
/// `start` or `start_without_storage`, behind the API's JWT authorizer.
#[test]
fn only_the_streamed_functions_check_tokens_in_a_deploy_build() {
    let own_check = functions_started_with("shared::runtime::start_streaming(");
    let own_check: BTreeSet<&str> = own_check.iter().map(String::as_str).collect();
    let streamed: BTreeSet<&str> = shared::http::routes::STREAMED.iter().copied().collect();
    assert_eq!(
        own_check, streamed,
        "functions/*/src/main.rs: start_streaming (the token check in every build) is for the streamed functions only"
    );
}

/// The crates under `functions/` whose `main.rs` calls `start`.
fn functions_started_with(start: &str) -> BTreeSet<String> {
    std::fs::read_dir(repo_root().join("functions"))
        .expect("functions/")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let main = read(&format!("functions/{name}/src/main.rs"));
            main.contains(start).then_some(name)
        })
        .collect()
}

/// The feed's path that tickets point to (`shared::config::FEED_PATH`,
/// read at cold start, below the route table's layer) is the feed's route.
#[test]
fn a_tickets_feed_path_is_the_feeds_route() {
    let feed = shared::http::routes::ROUTES
        .iter()
        .find(|r| r.function == "task_events")
        .expect("the feed's route");
    assert_eq!((feed.method, feed.path), ("GET", shared::config::FEED_PATH));
}

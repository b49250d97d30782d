//! The template as CloudFormation receives it: `template.yaml` after SAM's
//! transform (`scripts/sam_translate.py`, run by `make template-check` and
//! `make deploy-check`, which set `DEPLOYED_TEMPLATE` to its output). The
//! other template tests read the source; this one reads what SAM made of
//! it: every Lambda function's runtime and environment, every role's
//! policies (exactly the declared DynamoDB access, and no managed policy
//! but the basic execution role and, for active tracing, X-Ray's writes), and the HTTP API's routes, auth and
//! permissions against the route table. Ignored by plain `cargo test` (no
//! SAM there): `make template-check` runs them with `--ignored`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use shared::handlers::{STREAM_ACTIONS, dynamodb_access};
use shared::http::routes::{DOCS, FALLBACK, ROUTES, STREAMED};
use shared::runtime::EVENT_FUNCTIONS;

const BASIC_ROLE: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";
/// What SAM attaches for `Tracing: Active` (template.yaml, Globals): the
/// X-Ray daemon's writes (PutTraceSegments, PutTelemetryRecords...).
const XRAY_WRITE: &str = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess";
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

/// Logical ids of the functions CodeDeploy runs as hooks of an alias
/// update (`BeforeAllowTrafficHook`, `AfterAllowTrafficHook`): deployment
/// machinery, not the API's functions. The same rule as
/// scripts/sam_translate.py's, which leaves them out of functions.json.
fn deploy_hooks(t: &Value) -> BTreeSet<String> {
    resources(t, "AWS::Lambda::Alias")
        .into_iter()
        .flat_map(|(_, a)| {
            let update = &a["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"];
            ["BeforeAllowTrafficHook", "AfterAllowTrafficHook"]
                .into_iter()
                .filter_map(|k| update[k]["Ref"].as_str().map(str::to_owned))
        })
        .collect()
}

/// `logical id -> crate` of every Lambda function but the deploy hooks.
fn functions(t: &Value) -> BTreeMap<String, String> {
    let hooks = deploy_hooks(t);
    resources(t, "AWS::Lambda::Function")
        .into_iter()
        .filter(|(id, _)| !hooks.contains(*id))
        .map(|(id, f)| {
            let binary = f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: no Binary"));
            (id.to_owned(), binary.to_owned())
        })
        .collect()
}

/// The function whose `live` alias `id` is (what the API's integrations,
/// the Function URLs, their permissions and the stream mapping must name).
fn live_alias_of<'a>(t: &'a Value, id: &str) -> &'a str {
    let alias = &t["Resources"][id];
    assert_eq!(
        alias["Type"], "AWS::Lambda::Alias",
        "{id}: an alias, not the function ($LATEST)"
    );
    assert_eq!(alias["Properties"]["Name"], "live", "{id}");
    alias["Properties"]["FunctionName"]["Ref"]
        .as_str()
        .unwrap_or_else(|| panic!("{id}: FunctionName"))
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

    // The deploy hook: the_pre_traffic_hook_invokes_versions_and_reports_only.
    for (id, f) in resources(&t, "AWS::Lambda::Function")
        .into_iter()
        .filter(|(id, _)| functions.contains_key(*id))
    {
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
            want.extend(["JWT_ISSUER", "JWT_AUDIENCE", "JWT_SCOPES"]);
        }
        match binary.as_str() {
            "create_task" | "replace_task" | "update_task" | "delete_task" => {
                want.extend(["WRITES_PER_CALLER", "RATE_WINDOW_SECONDS"])
            }
            "export_tasks" => want.extend(["EXPORTS_PER_CALLER", "RATE_WINDOW_SECONDS"]),
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
            let mut resources: Vec<String> = match &statement["Resource"] {
                Value::Array(items) => items.iter().map(resource_name).collect(),
                one => vec![resource_name(one)],
            };
            // A grant confined by partition key survives the transform as
            // written: `table under <patterns>`, as least_privilege.rs has it.
            if let Some(condition) = statement.get("Condition") {
                let patterns =
                    strings(&condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]);
                assert!(
                    !patterns.is_empty(),
                    "{id}: an unknown condition {condition}"
                );
                resources = resources
                    .iter()
                    .map(|r| crate::least_privilege::confined_to(r, &patterns))
                    .collect();
            }
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
    // The deploy hook's role: the_pre_traffic_hook_invokes_versions_and_reports_only.
    for (id, f) in resources(&t, "AWS::Lambda::Function")
        .into_iter()
        .filter(|(id, _)| functions.contains_key(*id))
    {
        let binary = &functions[id];
        let role_id = f["Properties"]["Role"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: role"));
        let role = &t["Resources"][role_id];
        assert_eq!(role["Type"], "AWS::IAM::Role", "{id}");
        assert_eq!(
            role["Properties"]["ManagedPolicyArns"],
            serde_json::json!([BASIC_ROLE, XRAY_WRITE]),
            "{id}: the basic execution role and X-Ray's writes only"
        );
        assert_eq!(
            f["Properties"]["TracingConfig"]["Mode"], "Active",
            "{id}: active X-Ray tracing"
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
        let under = crate::least_privilege::confined_to(
            "table",
            &crate::least_privilege::leading_key_patterns(&access),
        );
        for action in access.confined {
            want.insert((action.to_string(), under.clone()));
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
            let alias = uri
                .split("${")
                .find_map(|s| s.strip_suffix("}/invocations"))
                .unwrap_or_else(|| panic!("{method} {path}: {uri}"));
            let id = live_alias_of(&t, alias);
            assert_eq!(
                op["x-amazon-apigateway-integration"]["payloadFormatVersion"],
                "2.0"
            );
            let public = op["security"] == serde_json::json!([{"NONE": []}]);
            if !public {
                // The authorizer's scope, resolved by CloudFormation in the
                // API's body as it resolves the integration's `Fn::Sub`.
                assert_eq!(
                    op["security"],
                    serde_json::json!([{"JwtAuthorizer": [{"Ref": "JwtScope"}]}])
                );
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

    // API Gateway may invoke each routed function's live alias; nothing
    // else may but the streamed functions' public URLs (on their aliases).
    // No permission names a function itself.
    let permissions = resources(&t, "AWS::Lambda::Permission");
    for (pid, p) in &permissions {
        let target = p["Properties"]["FunctionName"]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{pid}: FunctionName"));
        live_alias_of(&t, target);
    }
    for (id, binary) in &functions {
        let principals: BTreeSet<&str> = permissions
            .iter()
            .filter(|(_, p)| {
                p["Properties"]["FunctionName"]["Ref"]
                    .as_str()
                    .is_some_and(|a| live_alias_of(&t, a) == id)
            })
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
            (
                functions[live_alias_of(&t, target)].as_str(),
                &u["Properties"],
            )
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
            let alias = m["Properties"]["FunctionName"]["Ref"]
                .as_str()
                .expect("FunctionName");
            functions[live_alias_of(&t, alias)].as_str()
        })
        .collect();
    assert_eq!(mapped, EVENT_FUNCTIONS);
}

/// The logical id of `{"Ref": id}`.
fn ref_id(v: &Value) -> &str {
    v["Ref"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a Ref, got {v}"))
}

/// Gradual deployment (docs/pipeline.md): one CodeDeploy application, and
/// for every function a `live` alias on a version of its own whose updates
/// CodeDeploy makes (after the pre-traffic hook) in a deployment group of
/// its own, rolled back automatically on failure and on its alarms: the
/// API's 5xx and its alias' own errors (and, for the audit, its lag).
#[test]
#[ignore = "needs the transformed template: make template-check"]
fn codedeploy_shifts_every_function_through_its_live_alias() {
    let t = deployed();
    let functions = functions(&t);
    let apps = resources(&t, "AWS::CodeDeploy::Application");
    let [(app, application)] = apps[..] else {
        panic!("one CodeDeploy application, found {}", apps.len())
    };
    assert_eq!(application["Properties"]["ComputePlatform"], "Lambda");
    assert_eq!(
        deploy_hooks(&t),
        BTreeSet::from(["PreTrafficHook".to_owned()])
    );
    let default_type = &t["Parameters"]["DeploymentType"]["Default"];

    let aliases = resources(&t, "AWS::Lambda::Alias");
    let groups = resources(&t, "AWS::CodeDeploy::DeploymentGroup");
    assert_eq!(aliases.len(), functions.len(), "one alias per function");
    assert_eq!(
        groups.len(),
        functions.len(),
        "one deployment group per function"
    );
    let mut shifted = BTreeSet::new();
    for (alias_id, alias) in aliases {
        let function = live_alias_of(&t, alias_id);
        assert!(functions.contains_key(function), "{alias_id}: {function}");
        shifted.insert(function);
        let version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{alias_id}: FunctionVersion"));
        let version = &t["Resources"][version_id];
        assert_eq!(version["Type"], "AWS::Lambda::Version", "{alias_id}");
        assert_eq!(ref_id(&version["Properties"]["FunctionName"]), function);

        let update = &alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"];
        assert_eq!(ref_id(&update["ApplicationName"]), app, "{alias_id}");
        assert_eq!(
            ref_id(&update["BeforeAllowTrafficHook"]),
            "PreTrafficHook",
            "{alias_id}"
        );
        let group_id = ref_id(&update["DeploymentGroupName"]);
        let group = &t["Resources"][group_id];
        assert_eq!(group["Type"], "AWS::CodeDeploy::DeploymentGroup");
        let p = &group["Properties"];
        assert_eq!(ref_id(&p["ApplicationName"]), app, "{group_id}");
        assert_eq!(
            p["DeploymentConfigName"]["Fn::Sub"][1]["ConfigName"], *default_type,
            "{group_id}: DeploymentType"
        );
        assert_eq!(p["AlarmConfiguration"]["Enabled"], true, "{group_id}");
        let alarms: BTreeSet<&str> = p["AlarmConfiguration"]["Alarms"]
            .as_array()
            .unwrap_or_else(|| panic!("{group_id}: alarms"))
            .iter()
            .map(|a| ref_id(&a["Name"]))
            .collect();
        let own = format!("{}AliasErrorsAlarm", function.trim_end_matches("Function"));
        let mut want = BTreeSet::from(["ApiServerErrorsAlarm", own.as_str()]);
        if functions[function] == "audit" {
            want.insert("AuditIteratorAgeAlarm");
        }
        assert_eq!(alarms, want, "{group_id}: rollback alarms");
        let rollback = &p["AutoRollbackConfiguration"];
        assert_eq!(rollback["Enabled"], true, "{group_id}");
        let events = strings(&rollback["Events"]);
        for event in ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"] {
            assert!(events.iter().any(|e| e == event), "{group_id}: {event}");
        }

        let alarm = &t["Resources"][own.as_str()]["Properties"];
        assert_eq!(
            (&alarm["Namespace"], &alarm["MetricName"]),
            (
                &serde_json::json!("AWS/Lambda"),
                &serde_json::json!("Errors")
            ),
            "{own}"
        );
        assert_eq!(
            alarm["Dimensions"],
            serde_json::json!([
                {"Name": "FunctionName", "Value": {"Ref": function}},
                {"Name": "Resource", "Value": {"Fn::Sub": format!("${{{function}}}:live")}},
            ]),
            "{own}: the errors of the function's live alias"
        );
    }
    assert_eq!(shifted.len(), functions.len(), "every function has one");
}

/// The pre-traffic hook may read this stack's deployments and report on
/// them, and invoke the functions' versions: every function of the stack
/// (`<arn>:*`), neither `$LATEST` nor the alias (denied), nothing else. It
/// has no alias or deployment of its own, and knows every function's crate.
#[test]
#[ignore = "needs the transformed template: make template-check"]
fn the_pre_traffic_hook_invokes_versions_and_reports_only() {
    let t = deployed();
    let functions = functions(&t);
    let hook = &t["Resources"]["PreTrafficHook"];
    assert_eq!(hook["Type"], "AWS::Lambda::Function");
    for (id, alias) in resources(&t, "AWS::Lambda::Alias") {
        assert_ne!(
            ref_id(&alias["Properties"]["FunctionName"]),
            "PreTrafficHook",
            "{id}"
        );
    }
    let p = &hook["Properties"];
    let role_id = p["Role"]["Fn::GetAtt"][0].as_str().expect("Role");
    let role = &t["Resources"][role_id]["Properties"];
    assert_eq!(
        role["AssumeRolePolicyDocument"]["Statement"],
        serde_json::json!([{
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }])
    );
    assert!(role.get("ManagedPolicyArns").is_none(), "{role_id}");

    let mut grants: BTreeSet<(String, String, String)> = BTreeSet::new();
    for policy in role["Policies"].as_array().expect("Policies") {
        for statement in policy["PolicyDocument"]["Statement"]
            .as_array()
            .expect("Statement")
        {
            let effect = statement["Effect"].as_str().expect("Effect").to_owned();
            let resources: Vec<String> = match &statement["Resource"] {
                Value::Array(items) => items.iter().map(Value::to_string).collect(),
                one => vec![one.to_string()],
            };
            for action in strings(&statement["Action"]) {
                for resource in &resources {
                    grants.insert((effect.clone(), action.clone(), resource.clone()));
                }
            }
        }
    }
    let mut want = BTreeSet::new();
    let mut grant = |effect: &str, action: &str, resource: Value| {
        want.insert((effect.to_owned(), action.to_owned(), resource.to_string()));
    };
    for id in functions.keys() {
        grant(
            "Allow",
            "lambda:InvokeFunction",
            serde_json::json!({"Fn::Sub": format!("${{{id}.Arn}}:*")}),
        );
    }
    let lambda = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:*";
    for qualifier in ["$LATEST", "live"] {
        grant(
            "Deny",
            "lambda:InvokeFunction",
            serde_json::json!({"Fn::Sub": format!("{lambda}:{qualifier}")}),
        );
    }
    let groups = "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:deploymentgroup:${ServerlessDeploymentApplication}/*";
    for action in [
        "codedeploy:GetDeployment",
        "codedeploy:PutLifecycleEventHookExecutionStatus",
    ] {
        grant("Allow", action, serde_json::json!({"Fn::Sub": groups}));
    }
    grant(
        "Allow",
        "codedeploy:GetApplicationRevision",
        serde_json::json!({"Fn::Sub": "arn:${AWS::Partition}:codedeploy:${AWS::Region}:${AWS::AccountId}:application:${ServerlessDeploymentApplication}"}),
    );
    for action in ["logs:CreateLogStream", "logs:PutLogEvents"] {
        grant(
            "Allow",
            action,
            serde_json::json!({"Fn::GetAtt": ["PreTrafficHookLogGroup", "Arn"]}),
        );
    }
    assert_eq!(grants, want, "{role_id}");

    let listed: BTreeMap<String, String> = p["Environment"]["Variables"]["FUNCTIONS"]["Fn::Sub"]
        .as_str()
        .expect("FUNCTIONS")
        .lines()
        .map(|line| {
            let (name, krate) = line.split_once(' ').expect("`${<Function>} <crate>`");
            let id = name
                .strip_prefix("${")
                .and_then(|n| n.strip_suffix('}'))
                .expect("${<Function>}");
            (id.to_owned(), krate.to_owned())
        })
        .collect();
    assert_eq!(listed, functions, "FUNCTIONS: every function and its crate");
}

/// Two stacks of this template in one account (staging and prod,
/// docs/pipeline.md) must not collide: every physical name the template
/// sets includes the stack's name; everything else is named by
/// CloudFormation.
#[test]
#[ignore = "needs the transformed template: make template-check"]
fn no_physical_name_collides_between_two_stacks_of_one_account() {
    let t = deployed();
    const NAMES: &[&str] = &[
        "TableName",
        "FunctionName",
        "LogGroupName",
        "AlarmName",
        "RoleName",
        "QueueName",
        "TopicName",
        "UserPoolName",
        "Domain",
        "ApplicationName",
        "DeploymentGroupName",
        "DashboardName",
        "ManagedPolicyName",
    ];
    for (id, r) in t["Resources"].as_object().expect("Resources") {
        let kind = r["Type"].as_str().unwrap_or_default();
        for name in NAMES {
            let Some(value) = r["Properties"].get(*name) else {
                continue;
            };
            // References to another resource's name are not names.
            if value.get("Ref").is_some() || value.get("Fn::GetAtt").is_some() {
                continue;
            }
            if kind == "AWS::Lambda::EventSourceMapping" || kind == "AWS::Lambda::Permission" {
                continue;
            }
            let text = value.to_string();
            assert!(
                text.contains("${AWS::StackName}") || text.contains(r#"{"Ref":"AWS::StackName"}"#),
                "{id} ({kind}): {name} {text} is fixed: a second stack in the account would collide"
            );
        }
    }
}

/// `(namespace, metric, dimension names)` of every EMF line the functions
/// write, recorded from real requests through the observability layer
/// (2xx, 4xx and 5xx, a cold start), and the values each dimension took.
async fn emitted_emf() -> (
    BTreeSet<(String, String, Vec<String>)>,
    BTreeMap<String, BTreeSet<String>>,
) {
    use lambda_http::tower::{Layer, Service};
    use lambda_http::{Body, Request, Response, service_fn};
    use shared::adapters::memory::MemoryStore;
    use shared::http::observability::{ObservabilityLayer, init_metrics};
    use shared::runtime::{App, HandlerResult, respond};

    async fn status(_app: &App<MemoryStore>, req: Request) -> HandlerResult {
        let code = match req.uri().query() {
            Some("status=404") => 404,
            Some("status=500") => 500,
            _ => 200,
        };
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = lambda_http::http::StatusCode::from_u16(code).expect("a status");
        Ok(response)
    }

    let collector = init_metrics("TheFunction").expect("the EMF recorder (once per process)");
    let app = crate::support::app(&[]);
    let mut service = ObservabilityLayer::new().layer(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(respond(app, status, req).await)
    }));
    for query in ["", "status=404", "status=500"] {
        let mut event = crate::support::event_json("get_task");
        event["rawQueryString"] = query.into();
        service
            .call(crate::support::request(&event))
            .await
            .expect("infallible");
    }
    let mut out = Vec::new();
    collector.flush(&mut out).expect("EMF written");
    let mut metrics = BTreeSet::new();
    let mut values: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8(out).expect("utf-8").lines() {
        let emf: Value = serde_json::from_str(line).expect("an EMF line is JSON");
        for directive in emf["_aws"]["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics")
        {
            let namespace = directive["Namespace"].as_str().expect("Namespace");
            for dimensions in directive["Dimensions"].as_array().expect("Dimensions") {
                let keys = strings(dimensions);
                for key in &keys {
                    values
                        .entry(key.clone())
                        .or_default()
                        .insert(emf[key].as_str().expect("a dimension value").to_owned());
                }
                for metric in directive["Metrics"].as_array().expect("Metrics") {
                    let name = metric["Name"].as_str().expect("Name");
                    metrics.insert((namespace.to_owned(), name.to_owned(), keys.clone()));
                }
            }
        }
    }
    (metrics, values)
}

/// An AWS namespace's metrics a widget may show: their names, the one
/// dimension, the resource type it names and the attribute it takes.
type AwsMetrics = (
    &'static [&'static str],
    &'static str,
    &'static str,
    Option<&'static str>,
);

/// A `Fn::Sub` string with each `${X}` written `<X>`.
fn substituted(sub: &Value) -> String {
    let text = match sub {
        Value::String(s) => s.as_str(),
        Value::Array(parts) => parts[0].as_str().expect("Fn::Sub's string"),
        other => panic!("Fn::Sub of {other}"),
    };
    regex::Regex::new(r"\$\{([^}]+)\}")
        .expect("regex")
        .replace_all(text, "<$1>")
        .into_owned()
}

/// The resource `<Id>` (or `<Id.Attribute>`) names, if it is of `kind`.
fn named<'a>(t: &Value, value: &'a str, kind: &str, attribute: Option<&str>) -> Option<&'a str> {
    let inner = value.strip_prefix('<')?.strip_suffix('>')?;
    let id = match attribute {
        Some(attribute) => inner.strip_suffix(&format!(".{attribute}"))?,
        None => inner,
    };
    (t["Resources"][id]["Type"] == kind).then_some(id)
}

/// The dashboard shows only metrics something emits: each widget's
/// namespace, metric and dimensions are the functions' EMF (recorded from
/// real requests), the access log's metric filter, or a metric AWS
/// documents for the resource the dimension names; and every route has
/// its latency percentiles and error classes.
#[tokio::test]
#[ignore = "needs the transformed template: make template-check"]
async fn every_dashboard_widget_shows_an_emitted_metric() {
    let t = deployed();
    let dashboards = resources(&t, "AWS::CloudWatch::Dashboard");
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let (_, dashboard) = dashboards[0];
    let name = substituted(&dashboard["Properties"]["DashboardName"]["Fn::Sub"]);
    assert!(name.contains("<AWS::StackName>"), "{name}: one per stack");
    let body: Value = serde_json::from_str(&substituted(
        &dashboard["Properties"]["DashboardBody"]["Fn::Sub"],
    ))
    .expect("the dashboard body is JSON");

    let (emf, emf_values) = emitted_emf().await;
    let functions = functions(&t);
    let filters: BTreeSet<(String, String)> = resources(&t, "AWS::Logs::MetricFilter")
        .into_iter()
        .flat_map(|(_, f)| {
            f["Properties"]["MetricTransformations"]
                .as_array()
                .expect("MetricTransformations")
                .iter()
                .map(|m| {
                    let namespace = match &m["MetricNamespace"] {
                        Value::String(s) => s.clone(),
                        sub => substituted(&sub["Fn::Sub"]),
                    };
                    (
                        namespace,
                        m["MetricName"].as_str().expect("name").to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let stream_consumers: BTreeSet<&str> = resources(&t, "AWS::Lambda::EventSourceMapping")
        .into_iter()
        .map(|(_, m)| {
            let target = ref_id(&m["Properties"]["FunctionName"]);
            if t["Resources"][target]["Type"] == "AWS::Lambda::Alias" {
                live_alias_of(&t, target)
            } else {
                target
            }
        })
        .collect();
    let aws: BTreeMap<&str, AwsMetrics> = [
        (
            "AWS/Lambda",
            (
                &[
                    "Invocations",
                    "Errors",
                    "Throttles",
                    "Duration",
                    "IteratorAge",
                ][..],
                "FunctionName",
                "AWS::Lambda::Function",
                None,
            ),
        ),
        (
            "AWS/ApiGateway",
            (
                &["Count", "4xx", "5xx", "Latency", "IntegrationLatency"][..],
                "ApiId",
                "AWS::ApiGatewayV2::Api",
                None,
            ),
        ),
        (
            "AWS/DynamoDB",
            (
                &[
                    "ConsumedReadCapacityUnits",
                    "ConsumedWriteCapacityUnits",
                    "ReadThrottleEvents",
                    "WriteThrottleEvents",
                ][..],
                "TableName",
                "AWS::DynamoDB::Table",
                None,
            ),
        ),
        (
            "AWS/SQS",
            (
                &[
                    "ApproximateNumberOfMessagesVisible",
                    "ApproximateAgeOfOldestMessage",
                ][..],
                "QueueName",
                "AWS::SQS::Queue",
                Some("QueueName"),
            ),
        ),
    ]
    .into_iter()
    .collect();

    let mut shown: BTreeSet<(String, String)> = BTreeSet::new();
    let mut per_route: BTreeSet<(String, String)> = BTreeSet::new();
    let widgets = body["widgets"].as_array().expect("widgets");
    for widget in widgets.iter().filter(|w| w["type"] == "metric") {
        let title = &widget["properties"]["title"];
        let metrics = widget["properties"]["metrics"]
            .as_array()
            .expect("a metric widget's metrics");
        assert!(!metrics.is_empty(), "{title}: no metric");
        for metric in metrics {
            let items = metric.as_array().expect("a metric is an array");
            let (options, names): (Vec<&Value>, Vec<&Value>) =
                items.iter().partition(|v| v.is_object());
            let names: Vec<&str> = names
                .iter()
                .map(|v| v.as_str().expect("a string"))
                .collect();
            assert!(
                !names.contains(&".") && !names.contains(&"..."),
                "{title}: write each metric out ({metric})"
            );
            let (namespace, name) = (names[0], names[1]);
            let dims: Vec<(&str, &str)> = names[2..].chunks(2).map(|p| (p[0], p[1])).collect();
            let keys: Vec<String> = dims.iter().map(|(k, _)| (*k).to_owned()).collect();
            let stat = options
                .first()
                .and_then(|o| o["stat"].as_str())
                .unwrap_or("Average");
            shown.insert((namespace.to_owned(), name.to_owned()));
            if namespace == "TaskApi" {
                assert!(
                    emf.contains(&(namespace.to_owned(), name.to_owned(), keys.clone())),
                    "{title}: {metric} is not a metric the functions write: {emf:?}"
                );
                let function = dims
                    .iter()
                    .find(|(k, _)| *k == "function")
                    .and_then(|(_, v)| named(&t, v, "AWS::Lambda::Function", None))
                    .unwrap_or_else(|| panic!("{title}: {metric}: function names no function"));
                let krate = functions[function].as_str();
                assert!(
                    !EVENT_FUNCTIONS.contains(&krate),
                    "{title}: {krate} writes no EMF"
                );
                for (key, value) in &dims {
                    match *key {
                        "function" => {}
                        "route" => {
                            let served = ROUTES.iter().any(|r| {
                                r.function == krate && format!("{} {}", r.method, r.path) == *value
                            }) || (krate == FALLBACK && *value == "$default");
                            assert!(served, "{title}: {krate} serves no route {value}");
                            per_route.insert((value.to_string(), format!("{name} {stat}")));
                        }
                        key => assert!(
                            emf_values[key].contains(*value),
                            "{title}: {key} is never {value}: {:?}",
                            emf_values[key]
                        ),
                    }
                }
                if let Some((_, class)) = dims.iter().find(|(k, _)| *k == "class") {
                    per_route.insert((
                        dims.iter()
                            .find(|(k, _)| *k == "route")
                            .map(|(_, r)| r.to_string())
                            .unwrap_or_default(),
                        format!("{name} {class}"),
                    ));
                }
            } else if let Some((known, key, kind, attribute)) = aws.get(namespace) {
                assert!(known.contains(&name), "{title}: {namespace} has no {name}");
                assert_eq!(keys, [*key], "{title}: {metric}: dimensions");
                let id = named(&t, dims[0].1, kind, *attribute)
                    .unwrap_or_else(|| panic!("{title}: {metric}: {key} names no {kind}"));
                if name == "IteratorAge" {
                    assert!(
                        stream_consumers.contains(id),
                        "{title}: {id} reads no stream: no IteratorAge"
                    );
                }
            } else {
                assert!(
                    filters.contains(&(namespace.to_owned(), name.to_owned())) && dims.is_empty(),
                    "{title}: {metric} is neither the functions' EMF, a metric filter's, nor AWS's"
                );
            }
        }
    }
    for (namespace, name) in [
        ("AWS/Lambda", "Throttles"),
        ("TaskApi", "cold_starts"),
        ("AWS/DynamoDB", "ConsumedReadCapacityUnits"),
        ("AWS/DynamoDB", "ConsumedWriteCapacityUnits"),
        ("AWS/Lambda", "IteratorAge"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    ] {
        assert!(
            shown.contains(&(namespace.into(), name.into())),
            "the dashboard has no {namespace} {name}"
        );
    }
    let routes = ROUTES
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .chain(["$default".to_owned()]);
    for route in routes {
        for want in [
            "latency_ms p50",
            "latency_ms p99",
            "errors 4xx",
            "errors 5xx",
        ] {
            assert!(
                per_route.contains(&(route.clone(), want.to_owned())),
                "the dashboard has no {want} of {route}"
            );
        }
    }
}

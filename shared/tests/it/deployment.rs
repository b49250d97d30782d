//! The production template's defaults, checked against the code they must
//! agree with: the table's protection and the local table's layout
//! (`shared::ports::table`), the functions' runtime, build and logging,
//! API Gateway's CORS (`shared::http::cors`, which serves the same CORS locally),
//! throttling and authentication, the outputs, and `samconfig.toml`.
//! (Routes and identity: `route_table.rs`; IAM: `least_privilege.rs`.)

use crate::support::{
    alias_of, at, function_property, functions, intrinsic, read, reference, resource, resources,
    template, text,
};
use serde_norway::Value;
use shared::adapters::dynamo::table::{STREAM_VIEW_TYPE, TTL_ATTRIBUTE};
use shared::http::cors;

fn strings(value: Option<&Value>, whose: &str) -> Vec<String> {
    value
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{whose} should be a list, got {value:?}"))
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => panic!("{whose}: {other:?} is not a string"),
        })
        .collect()
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `[condition, then, else]` of an `!If`.
fn if_branches<'a>(value: &'a Value, whose: &str) -> (&'a str, &'a Value, &'a Value) {
    match intrinsic(value, "If")
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
    {
        Some([Value::String(condition), then, otherwise]) => (condition, then, otherwise),
        _ => panic!("{whose} should be `!If [Condition, then, else]`, got {value:?}"),
    }
}

fn is_no_value(value: &Value) -> bool {
    reference(value) == Some("AWS::NoValue")
}

#[test]
fn the_table_is_protected_and_is_the_local_table() {
    let template = template();
    let tables = resources(&template, "AWS::DynamoDB::Table");
    let [(id, table)] = tables[..] else {
        panic!("expected one table, found {tables:?}");
    };
    for policy in ["DeletionPolicy", "UpdateReplacePolicy"] {
        assert_eq!(text(table, &[policy], id), "Retain", "{id} {policy}");
    }
    let properties = &table["Properties"];
    assert_eq!(text(properties, &["BillingMode"], id), "PAY_PER_REQUEST");
    assert_eq!(
        at(
            properties,
            &[
                "PointInTimeRecoverySpecification",
                "PointInTimeRecoveryEnabled"
            ]
        ),
        Some(&Value::Bool(true)),
        "{id}: point-in-time recovery"
    );
    assert_eq!(
        at(properties, &["SSESpecification", "SSEEnabled"]),
        Some(&Value::Bool(true)),
        "{id}: server-side encryption with KMS"
    );
    assert_eq!(
        text(
            properties,
            &["TimeToLiveSpecification", "AttributeName"],
            id
        ),
        TTL_ATTRIBUTE,
        "{id}: the TTL attribute is the one idempotency keys carry"
    );
    assert_eq!(
        at(properties, &["TimeToLiveSpecification", "Enabled"]),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        text(properties, &["StreamSpecification", "StreamViewType"], id),
        STREAM_VIEW_TYPE,
        "{id}: the audit function's stream"
    );
    assert!(
        properties.get("TableName").is_none(),
        "{id}: no fixed TableName (a retained or replaced table would collide)"
    );
}

#[test]
fn functions_are_arm64_cargo_lambda_builds_with_json_logs_kept_for_a_while() {
    let template = template();
    let mut log_groups = Vec::new();
    for (id, binary, function) in functions(&template) {
        let property = |path: &[&str]| function_property(&template, function, path);
        let plain = |path: &[&str]| match property(path) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            other => panic!("{id}: {} is {other:?}", path.join(".")),
        };
        assert_eq!(plain(&["Runtime"]), "provided.al2023", "{id}");
        assert_eq!(strings(property(&["Architectures"]), id), ["arm64"], "{id}");
        assert_eq!(plain(&["Handler"]), "bootstrap", "{id}");
        assert_eq!(
            text(function, &["Properties", "CodeUri"], id),
            ".",
            "{id}: built from the workspace root"
        );
        assert_eq!(
            text(function, &["Metadata", "BuildMethod"], id),
            "rust-cargolambda",
            "{id}"
        );
        let memory: u64 = plain(&["MemorySize"]).parse().expect("MemorySize");
        let timeout: u64 = plain(&["Timeout"]).parse().expect("Timeout");
        assert!((128..=1024).contains(&memory), "{id}: MemorySize {memory}");
        // Behind API Gateway: below its 30 s. A streamed function (on its
        // own Function URL) may run longer, up to Lambda's 15 minutes.
        let streamed = shared::http::routes::is_streamed(text(
            function,
            &["Metadata", "BuildProperties", "Binary"],
            id,
        ));
        let limit = if streamed { 900 } else { 29 };
        assert!(
            (1..=limit).contains(&timeout),
            "{id}: Timeout {timeout} (at most {limit} s)"
        );
        assert_eq!(plain(&["LoggingConfig", "LogFormat"]), "JSON", "{id}");

        let group = property(&["LoggingConfig", "LogGroup"])
            .and_then(reference)
            .unwrap_or_else(|| panic!("{id}: LoggingConfig.LogGroup: !Ref <its log group>"));
        let declared = resource(&template, group);
        assert_eq!(
            text(declared, &["Type"], group),
            "AWS::Logs::LogGroup",
            "{id}"
        );
        assert!(
            at(declared, &["Properties", "RetentionInDays"]).is_some(),
            "{group}: RetentionInDays"
        );
        assert!(
            !log_groups.contains(&group),
            "{group} is shared: one log group per function"
        );
        log_groups.push(group);

        for variable in ["IDENTITY_MODE", "CORS_ALLOWED_ORIGINS"] {
            assert!(
                property(&["Environment", "Variables", variable]).is_none(),
                "{id} ({binary}) sets {variable}: local-only settings"
            );
        }
    }
}

#[test]
fn api_cors_is_shared_cors_and_off_without_origins() {
    let template = template();
    let apis = resources(&template, "AWS::Serverless::HttpApi");
    let [(id, api)] = apis[..] else {
        panic!("expected one HttpApi, found {apis:?}");
    };
    let configuration = at(api, &["Properties", "CorsConfiguration"]).expect("CorsConfiguration");
    let (condition, cors_on, cors_off) = if_branches(configuration, id);
    assert!(is_no_value(cors_off), "{id}: no CORS without origins");

    // The condition is "AllowedOrigins is not empty", whose default is empty.
    let parameter = at(&template, &["Parameters", "AllowedOrigins"]).expect("AllowedOrigins");
    assert_eq!(text(parameter, &["Default"], "AllowedOrigins"), "");
    // CloudFormation checks the parameter with AllowedPattern (a whole
    // match); locally CORS_ALLOWED_ORIGINS goes through config::parse_origins.
    // Both must accept and refuse the same values.
    let pattern = text(parameter, &["AllowedPattern"], "AllowedOrigins");
    let pattern = regex::Regex::new(&format!("^(?:{pattern})$")).expect("a valid pattern");
    for value in [
        "",
        "https://app.example.com",
        "http://localhost:5173,https://app.example.com:8443",
        "*",
        "https://*.example.com",
        "https://app.example.com/",
        "https://app.example.com/app",
        "app.example.com",
        "ftp://app.example.com",
        "https://app.example.com, http://localhost:5173",
    ] {
        let local = shared::config::parse_origins(value).is_ok() && !value.contains(' ');
        assert_eq!(
            pattern.is_match(value),
            local,
            "AllowedOrigins pattern and CORS_ALLOWED_ORIGINS disagree on {value:?}"
        );
    }
    let defined = at(&template, &["Conditions", condition]).expect("the CORS condition");
    let equals = intrinsic(
        intrinsic(defined, "Not")
            .and_then(Value::as_sequence)
            .and_then(|s| s.first())
            .expect("!Not [...]"),
        "Equals",
    )
    .and_then(Value::as_sequence)
    .expect("!Not [!Equals [...]]");
    assert_eq!(reference(&equals[0]), Some("AllowedOrigins"));
    assert_eq!(equals[1], Value::String(String::new()));

    let origins = intrinsic(&cors_on["AllowOrigins"], "Split")
        .and_then(Value::as_sequence)
        .expect("AllowOrigins: !Split [\",\", !Ref AllowedOrigins]");
    assert_eq!(reference(&origins[1]), Some("AllowedOrigins"));

    let list = |key: &str| strings(cors_on.get(key), key);
    assert_eq!(list("AllowMethods"), owned(cors::ALLOW_METHODS));
    assert_eq!(list("AllowHeaders"), owned(cors::ALLOW_HEADERS));
    assert_eq!(list("ExposeHeaders"), owned(cors::EXPOSE_HEADERS));
    assert_eq!(
        cors_on.get("MaxAge").and_then(Value::as_u64),
        Some(u64::from(cors::MAX_AGE_SECONDS))
    );
    assert_eq!(
        cors_on.get("AllowCredentials"),
        Some(&Value::Bool(false)),
        "bearer tokens, no cookies: no credentials"
    );
}

#[test]
fn the_api_is_throttled_and_logged() {
    let template = template();
    let api = resource(&template, "TasksApi");
    for limit in ["ThrottlingRateLimit", "ThrottlingBurstLimit"] {
        let value = at(api, &["Properties", "DefaultRouteSettings", limit])
            .unwrap_or_else(|| panic!("TasksApi DefaultRouteSettings.{limit}"));
        assert_eq!(reference(value), Some(limit), "a parameter of that name");
        assert!(at(&template, &["Parameters", limit]).is_some());
    }
    assert!(
        at(api, &["Properties", "AccessLogSettings", "DestinationArn"]).is_some(),
        "access logs"
    );
}

#[test]
fn jwt_auth_uses_the_stacks_user_pool_unless_an_issuer_is_named() {
    let template = template();
    let api = resource(&template, "TasksApi");
    let default = text(
        api,
        &["Properties", "Auth", "DefaultAuthorizer"],
        "TasksApi",
    );
    let jwt = at(
        api,
        &[
            "Properties",
            "Auth",
            "Authorizers",
            default,
            "JwtConfiguration",
        ],
    )
    .expect("a JWT authorizer");
    let (condition, _, otherwise) = if_branches(&jwt["issuer"], "issuer");
    assert_eq!(reference(otherwise), Some("JwtIssuer"));
    let (audience_condition, ours, theirs) = if_branches(&jwt["audience"], "audience");
    assert_eq!(audience_condition, condition);
    assert_eq!(reference(theirs), Some("JwtAudience"));
    assert_eq!(
        ours.as_sequence()
            .and_then(|s| s.first())
            .and_then(reference),
        Some("UserPoolClient")
    );
    for id in ["UserPool", "UserPoolClient"] {
        assert_eq!(
            text(resource(&template, id), &["Condition"], id),
            condition,
            "{id} exists only when no issuer is named"
        );
    }
    assert_eq!(
        at(
            resource(&template, "UserPool"),
            &[
                "Properties",
                "AdminCreateUserConfig",
                "AllowAdminCreateUserOnly"
            ]
        ),
        Some(&Value::Bool(true)),
        "no self sign-up by default"
    );
}

#[test]
fn outputs_name_the_url_the_user_pool_and_the_table() {
    let template = template();
    for output in [
        "ApiUrl",
        "UserPoolId",
        "UserPoolClientId",
        "TableName",
        "JwtIssuer",
        "ExportTasksUrl",
        "TaskEventsUrl",
    ] {
        assert!(
            at(&template, &["Outputs", output, "Value"]).is_some(),
            "output {output}"
        );
    }
}

#[test]
fn samconfig_deploys_with_a_reviewed_change_set() {
    let config: toml::Table = toml::from_str(&read("samconfig.toml")).expect("samconfig.toml");
    let config = toml::Value::Table(config);
    let deploy = ["default", "deploy", "parameters"]
        .iter()
        .try_fold(&config, |v, k| v.get(k))
        .expect("[default.deploy.parameters]");
    let capabilities = deploy
        .get("capabilities")
        .and_then(toml::Value::as_str)
        .unwrap_or_default();
    assert!(
        capabilities
            .split_whitespace()
            .any(|c| c == "CAPABILITY_IAM")
    );
    assert_eq!(
        deploy
            .get("confirm_changeset")
            .and_then(toml::Value::as_bool),
        Some(true)
    );
    assert_eq!(
        deploy.get("resolve_s3").and_then(toml::Value::as_bool),
        Some(true)
    );
    let stack = ["default", "global", "parameters", "stack_name"]
        .iter()
        .try_fold(&config, |v, k| v.get(k))
        .and_then(toml::Value::as_str);
    assert!(stack.is_some_and(|s| !s.is_empty()), "a stack name");
}

#[test]
fn the_stream_feeds_each_event_function_with_batch_item_failures() {
    // shared::handlers::audit::handle answers with the records to redeliver; Lambda
    // honours that only with ReportBatchItemFailures (else it would treat
    // every batch as a success and lose the failed entries).
    let template = template();
    let table = resources(&template, "AWS::DynamoDB::Table")[0].0;
    let mappings = resources(&template, "AWS::Lambda::EventSourceMapping");
    for function in shared::runtime::EVENT_FUNCTIONS {
        let (id, _, _) = functions(&template)
            .into_iter()
            .find(|(_, binary, _)| binary == function)
            .unwrap_or_else(|| panic!("{function} is deployed"));
        let (mapping_id, mapping) = mappings
            .iter()
            .find(|(_, m)| at(m, &["Properties", "FunctionName"]).and_then(alias_of) == Some(id))
            .unwrap_or_else(|| {
                panic!("an event source mapping for {id} (FunctionName: !Ref {id}.Alias)")
            });
        let properties = &mapping["Properties"];
        assert_eq!(
            crate::support::get_att(&properties["EventSourceArn"]).as_deref(),
            Some(format!("{table}.StreamArn").as_str()),
            "{mapping_id}: the table's stream"
        );
        assert_eq!(
            strings(properties.get("FunctionResponseTypes"), mapping_id),
            ["ReportBatchItemFailures"],
            "{mapping_id}"
        );
        assert_eq!(
            text(properties, &["StartingPosition"], mapping_id),
            "TRIM_HORIZON",
            "{mapping_id}: no change is skipped"
        );
        // The filter passes task records only, as the local delivery's
        // (devstack/src/stream.rs) and the audit's own (shared::handlers::audit).
        let filters = at(properties, &["FilterCriteria", "Filters"])
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{mapping_id}: FilterCriteria.Filters"));
        let [filter] = filters.as_slice() else {
            panic!("{mapping_id}: one filter, got {filters:?}");
        };
        let pattern: serde_json::Value =
            serde_json::from_str(text(filter, &["Pattern"], mapping_id)).expect("JSON pattern");
        assert_eq!(
            pattern,
            serde_json::json!({"dynamodb": {"Keys": {"sk": {"S": [
                {"prefix": shared::adapters::dynamo::table::TASK_PREFIX}
            ]}}}}),
            "{mapping_id}"
        );
    }
}

// ------------------------------------------------ safe to leave running

/// The function resource that builds `binary`.
fn function_of<'a>(template: &'a Value, binary: &str) -> (&'a str, &'a Value) {
    functions(template)
        .into_iter()
        .find(|(_, b, _)| *b == binary)
        .map(|(id, _, function)| (id, function))
        .unwrap_or_else(|| panic!("no function builds {binary}"))
}

/// A parameter's declaration.
fn parameter<'a>(template: &'a Value, name: &str) -> &'a Value {
    at(template, &["Parameters", name]).unwrap_or_else(|| panic!("no parameter {name}"))
}

/// A number of the template (a parameter's `Default`, `MinValue`, a
/// property): YAML numbers only.
fn number(value: Option<&Value>, whose: &str) -> u64 {
    value
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{whose} should be a whole number, got {value:?}"))
}

/// A `Number` parameter's default, checked to be at least 1 (`MinValue: 1`).
fn positive_number_parameter(template: &Value, name: &str) -> u64 {
    let declared = parameter(template, name);
    assert_eq!(text(declared, &["Type"], name), "Number", "{name}: Type");
    assert_eq!(
        number(declared.get("MinValue"), &format!("{name} MinValue")),
        1,
        "{name}: MinValue 1 (0 would mean nothing, or everything, is allowed)"
    );
    number(declared.get("Default"), &format!("{name} Default"))
}

#[test]
fn streamed_functions_reserve_concurrency_from_parameters() {
    // Nothing throttles a Function URL: reserved concurrency is what bounds
    // the streamed functions, and what they may take from the account.
    let template = template();
    for (binary, name, default) in [
        ("export_tasks", "ExportConcurrency", 10),
        ("task_events", "EventsConcurrency", 50),
    ] {
        assert!(
            shared::http::routes::is_streamed(binary),
            "{binary} is streamed"
        );
        let (id, function) = function_of(&template, binary);
        let reserved = at(function, &["Properties", "ReservedConcurrentExecutions"]);
        assert_eq!(
            reserved.and_then(reference),
            Some(name),
            "{id}: ReservedConcurrentExecutions should be !Ref {name}, got {reserved:?}"
        );
        assert_eq!(
            positive_number_parameter(&template, name),
            default,
            "{name}: Default (docs/operations.md, Operating in production, says what it is sized for)"
        );
    }
    for (id, binary, function) in functions(&template) {
        if !shared::http::routes::is_streamed(binary) {
            assert!(
                function_property(&template, function, &["ReservedConcurrentExecutions"]).is_none(),
                "{id}: only the streamed functions reserve concurrency (the API throttles the rest)"
            );
        }
    }
}

#[test]
fn every_route_is_throttled_by_its_class_writes_tighter_than_reads() {
    let template = template();
    let settings = at(
        resource(&template, "TasksApi"),
        &["Properties", "RouteSettings"],
    )
    .and_then(Value::as_mapping)
    .expect("TasksApi RouteSettings: a mapping of \"METHOD /path\" to settings");
    let keys: Vec<String> = settings
        .keys()
        .map(|k| k.as_str().expect("route keys are strings").to_owned())
        .collect();
    let routes: Vec<(String, &str)> = shared::http::routes::ROUTES
        .iter()
        .map(|r| (format!("{} {}", r.method, r.path), r.method))
        .collect();
    let (missing, extra) =
        crate::support::differences(keys, routes.iter().map(|(key, _)| key.clone()));
    let mut problems: Vec<String> = missing
        .iter()
        .map(|key| {
            let class = if key.starts_with("GET ") {
                "Read"
            } else {
                "Write"
            };
            format!(
                "template.yaml TasksApi RouteSettings lacks {key:?} (with \
                 `ThrottlingRateLimit: !Ref {class}RateLimit` and \
                 `ThrottlingBurstLimit: !Ref {class}BurstLimit`)"
            )
        })
        .collect();
    problems.extend(extra.iter().map(|key| {
        format!(
            "template.yaml TasksApi RouteSettings has {key:?}, which is no route of \
             shared/src/http/routes.rs ROUTES (a key naming no route fails the deploy)"
        )
    }));
    crate::support::assert_no_problems(
        "TasksApi RouteSettings must name every route, and nothing else",
        &problems,
    );
    for route in shared::http::routes::ROUTES {
        let key = format!("{} {}", route.method, route.path);
        let class = match route.method {
            "GET" => "Read",
            "POST" | "PUT" | "PATCH" | "DELETE" => "Write",
            other => panic!("{key}: no throttling class for {other}"),
        };
        for (property, limit) in [
            ("ThrottlingRateLimit", "RateLimit"),
            ("ThrottlingBurstLimit", "BurstLimit"),
        ] {
            let value = settings
                .get(key.as_str())
                .and_then(|s| s.get(property))
                .and_then(reference);
            let want = format!("{class}{limit}");
            assert_eq!(
                value,
                Some(want.as_str()),
                "TasksApi RouteSettings[\"{key}\"].{property} should be !Ref {want}"
            );
        }
    }
    let limit = |name: &str| positive_number_parameter(&template, name);
    assert_eq!((limit("ReadRateLimit"), limit("ReadBurstLimit")), (50, 100));
    assert_eq!(
        (limit("WriteRateLimit"), limit("WriteBurstLimit")),
        (50, 100)
    );
    // API Gateway counts a caller's refused writes in the route's bucket
    // too: a caller at ten times its fair share must take at most half a
    // write route, so the share (not the route) is what it meets.
    let share_per_second = f64::from(shared::config::DEFAULT_WRITES_PER_CALLER)
        / f64::from(shared::config::DEFAULT_RATE_WINDOW_SECONDS);
    assert!(
        2.0 * 10.0 * share_per_second <= limit("WriteRateLimit") as f64,
        "a caller at ten times its share ({} writes/s) takes more than half of \
         WriteRateLimit",
        10.0 * share_per_second
    );
    // The stage default (the $default fallback's limit) is kept.
    assert_eq!(
        (limit("ThrottlingRateLimit"), limit("ThrottlingBurstLimit")),
        (50, 100)
    );
}

#[test]
fn the_audit_mapping_discards_a_failing_batch_into_an_encrypted_queue() {
    let template = template();
    let (audit, _) = function_of(&template, "audit");
    let mappings = resources(&template, "AWS::Lambda::EventSourceMapping");
    let (id, mapping) = mappings
        .iter()
        .find(|(_, m)| at(m, &["Properties", "FunctionName"]).and_then(alias_of) == Some(audit))
        .unwrap_or_else(|| {
            panic!("an event source mapping for {audit} (FunctionName: !Ref {audit}.Alias)")
        });
    let properties = &mapping["Properties"];
    let whole = |name: &str| number(properties.get(name), &format!("{id} {name}"));
    assert_eq!(
        whole("MaximumRetryAttempts"),
        10,
        "{id}: MaximumRetryAttempts (the default, -1, blocks the shard for 24 h)"
    );
    assert_eq!(
        properties.get("BisectBatchOnFunctionError"),
        Some(&Value::Bool(true)),
        "{id}: BisectBatchOnFunctionError"
    );
    let age = whole("MaximumRecordAgeInSeconds");
    assert_eq!(age, 3600, "{id}: MaximumRecordAgeInSeconds");
    assert!(
        age <= 24 * 3600 - 12 * 3600,
        "{id}: a discarded record must stay in the stream (24 h) long enough to be replayed"
    );
    let destination = at(
        properties,
        &["DestinationConfig", "OnFailure", "Destination"],
    )
    .and_then(crate::support::get_att)
    .unwrap_or_else(|| {
        panic!("{id}: DestinationConfig.OnFailure.Destination: !GetAtt <Queue>.Arn")
    });
    let queue_id = destination
        .strip_suffix(".Arn")
        .unwrap_or_else(|| panic!("{id}: on-failure destination {destination} is no Arn"));
    let queue = resource(&template, queue_id);
    assert_eq!(
        text(queue, &["Type"], queue_id),
        "AWS::SQS::Queue",
        "{id}: the destination"
    );
    assert_eq!(
        at(queue, &["Properties", "SqsManagedSseEnabled"]),
        Some(&Value::Bool(true)),
        "{queue_id}: encrypted at rest with SQS's own key (SSE-SQS: no KMS grant to send)"
    );
    assert_eq!(
        number(
            at(queue, &["Properties", "MessageRetentionPeriod"]),
            &format!("{queue_id} MessageRetentionPeriod")
        ),
        14 * 24 * 3600,
        "{queue_id}: kept as long as SQS allows"
    );
    // The audit role's sqs:SendMessage on it, and nothing more: least_privilege.rs.
}

/// `(logical id, alarm)` of the one alarm on `namespace`/`metric`.
fn alarm_on<'a>(template: &'a Value, namespace: &str, metric: &str) -> Vec<(&'a str, &'a Value)> {
    resources(template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, alarm)| {
            let properties = &alarm["Properties"];
            let space = properties.get("Namespace");
            let space = space
                .and_then(Value::as_str)
                .or_else(|| space.and_then(crate::support::sub));
            space == Some(namespace)
                && properties.get("MetricName").and_then(Value::as_str) == Some(metric)
        })
        .collect()
}

/// An alarm's dimensions, `name -> value`.
fn dimensions<'a>(alarm: &'a Value, whose: &str) -> Vec<(&'a str, &'a Value)> {
    at(alarm, &["Properties", "Dimensions"])
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{whose}: Dimensions"))
        .iter()
        .map(|d| (text(d, &["Name"], whose), &d["Value"]))
        .collect()
}

/// Statistic, period, evaluation periods, comparison, threshold and
/// missing-data treatment of an alarm.
fn condition(alarm: &Value, whose: &str) -> (String, u64, u64, String, u64, String) {
    let p = &alarm["Properties"];
    (
        text(p, &["Statistic"], whose).to_owned(),
        number(p.get("Period"), whose),
        number(p.get("EvaluationPeriods"), whose),
        text(p, &["ComparisonOperator"], whose).to_owned(),
        number(p.get("Threshold"), whose),
        text(p, &["TreatMissingData"], whose).to_owned(),
    )
}

fn owned_condition(
    statistic: &str,
    period: u64,
    periods: u64,
    comparison: &str,
    threshold: u64,
    missing: &str,
) -> (String, u64, u64, String, u64, String) {
    (
        statistic.to_owned(),
        period,
        periods,
        comparison.to_owned(),
        threshold,
        missing.to_owned(),
    )
}

fn the_one<'a>(found: Vec<(&'a str, &'a Value)>, what: &str) -> (&'a str, &'a Value) {
    let [one] = found[..] else {
        panic!("expected one alarm on {what}, found {found:?}");
    };
    one
}

#[test]
fn alarms_notify_the_optional_topic_and_say_how_missing_data_counts() {
    let template = template();
    assert_eq!(
        text(
            parameter(&template, "AlarmTopicArn"),
            &["Default"],
            "AlarmTopicArn"
        ),
        ""
    );
    let defined =
        at(&template, &["Conditions", "HasAlarmTopic"]).expect("Conditions.HasAlarmTopic");
    let equals = intrinsic(defined, "Not")
        .and_then(Value::as_sequence)
        .and_then(|s| s.first())
        .and_then(|e| intrinsic(e, "Equals"))
        .and_then(Value::as_sequence)
        .expect("HasAlarmTopic: !Not [!Equals [!Ref AlarmTopicArn, \"\"]]");
    assert_eq!(reference(&equals[0]), Some("AlarmTopicArn"));
    assert_eq!(equals[1], Value::String(String::new()));

    let alarms = resources(&template, "AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 6, "the alarms: {alarms:?}");
    for (id, alarm) in alarms {
        for actions in ["AlarmActions", "OKActions"] {
            let value =
                at(alarm, &["Properties", actions]).unwrap_or_else(|| panic!("{id}: {actions}"));
            let (condition, then, otherwise) = if_branches(value, id);
            assert_eq!(condition, "HasAlarmTopic", "{id} {actions}");
            assert_eq!(
                then.as_sequence()
                    .map(|topics| topics.iter().map(reference).collect::<Vec<_>>()),
                Some(vec![Some("AlarmTopicArn")]),
                "{id} {actions}: [!Ref AlarmTopicArn]"
            );
            assert!(
                is_no_value(otherwise),
                "{id} {actions}: no actions without a topic"
            );
        }
        let missing = text(alarm, &["Properties", "TreatMissingData"], id);
        assert_eq!(
            missing, "notBreaching",
            "{id}: TreatMissingData (each metric is only published while there is traffic)"
        );
    }
}

#[test]
fn an_alarm_fires_on_any_discarded_audit_batch() {
    let template = template();
    let (id, alarm) = the_one(
        alarm_on(&template, "AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        "the failure queue's depth",
    );
    let dims = dimensions(alarm, id);
    assert_eq!(dims.len(), 1, "{id}: {dims:?}");
    assert_eq!(dims[0].0, "QueueName", "{id}");
    assert_eq!(
        crate::support::get_att(dims[0].1).as_deref(),
        Some("AuditFailureQueue.QueueName"),
        "{id}: the audit mapping's on-failure queue"
    );
    assert_eq!(
        condition(alarm, id),
        owned_condition("Maximum", 300, 1, "GreaterThanThreshold", 0, "notBreaching"),
        "{id}: one message is one alarm"
    );
}

#[test]
fn an_alarm_fires_when_the_audit_falls_behind_its_stream() {
    let template = template();
    let (audit, _) = function_of(&template, "audit");
    let (id, alarm) = the_one(
        alarm_on(&template, "AWS/Lambda", "IteratorAge"),
        "IteratorAge",
    );
    let dims = dimensions(alarm, id);
    assert_eq!(dims.len(), 1, "{id}: {dims:?}");
    assert_eq!(
        (dims[0].0, reference(dims[0].1)),
        ("FunctionName", Some(audit)),
        "{id}: the audit function's iterator age"
    );
    assert_eq!(
        condition(alarm, id),
        owned_condition(
            "Maximum",
            60,
            5,
            "GreaterThanThreshold",
            60_000,
            "notBreaching"
        ),
        "{id}: more than a minute behind (ms)"
    );
    assert_eq!(
        number(at(alarm, &["Properties", "DatapointsToAlarm"]), id),
        5,
        "{id}: five minutes in a row"
    );
}

/// The audit's event source mapping.
fn audit_mapping(template: &Value) -> (&str, &Value) {
    let (audit, _) = function_of(template, "audit");
    let mappings = resources(template, "AWS::Lambda::EventSourceMapping");
    let (id, mapping) = mappings
        .into_iter()
        // `!Ref AuditFunction.Alias`: the mapping feeds the live alias.
        .find(|(_, m)| {
            at(m, &["Properties", "FunctionName"])
                .and_then(reference)
                .is_some_and(|r| r.trim_end_matches(".Alias") == audit)
        })
        .unwrap_or_else(|| panic!("an event source mapping for {audit}"));
    (id, &mapping["Properties"])
}

#[test]
fn the_iterator_age_alarm_fires_long_before_records_are_discarded() {
    let template = template();
    let (mapping, properties) = audit_mapping(&template);
    let max_age = number(
        properties.get("MaximumRecordAgeInSeconds"),
        &format!("{mapping} MaximumRecordAgeInSeconds"),
    );
    let (id, alarm) = the_one(
        alarm_on(&template, "AWS/Lambda", "IteratorAge"),
        "IteratorAge",
    );
    let (_, period, _, _, threshold_ms, _) = condition(alarm, id);
    let datapoints = number(at(alarm, &["Properties", "DatapointsToAlarm"]), id);
    // A lag that keeps growing crosses the threshold, then must stay over
    // it for `datapoints` periods: the alarm fires by this age at the latest.
    let fires_by = threshold_ms / 1000 + period * datapoints;
    assert!(
        fires_by * 4 <= max_age,
        "{id} fires at an iterator age of {fires_by} s: at least three quarters of \
         {mapping}'s MaximumRecordAgeInSeconds ({max_age} s) must be left to act before \
         records are discarded"
    );
}

#[test]
fn the_audit_reads_a_shard_in_parallel_by_partition_key() {
    let template = template();
    let (mapping, properties) = audit_mapping(&template);
    let factor = number(
        properties.get("ParallelizationFactor"),
        &format!("{mapping} ParallelizationFactor"),
    );
    assert!(
        (2..=10).contains(&factor),
        "{mapping}: ParallelizationFactor {factor} (2 to 10: a busy caller holds back only \
         the callers of its own batch; Lambda's most is 10)"
    );
}

#[test]
fn an_alarm_fires_on_api_server_errors() {
    let template = template();
    let (id, alarm) = the_one(
        alarm_on(&template, "AWS/ApiGateway", "5xx"),
        "the API's 5xx",
    );
    let dims = dimensions(alarm, id);
    assert_eq!(dims.len(), 1, "{id}: {dims:?}");
    assert_eq!(
        (dims[0].0, reference(dims[0].1)),
        ("ApiId", Some("TasksApi")),
        "{id}: the HTTP API's id"
    );
    assert_eq!(
        condition(alarm, id),
        owned_condition(
            "Sum",
            300,
            1,
            "GreaterThanOrEqualToThreshold",
            5,
            "notBreaching"
        ),
        "{id}"
    );
}

#[test]
fn alarms_fire_on_throttling_of_the_api_and_of_the_streamed_functions() {
    let template = template();
    // HTTP APIs publish no throttle metric (429s are among the 4xx): the
    // access log's 429s become one.
    let filters = resources(&template, "AWS::Logs::MetricFilter");
    let [(filter_id, filter)] = filters[..] else {
        panic!("expected one metric filter, found {filters:?}");
    };
    let p = &filter["Properties"];
    assert_eq!(
        reference(&p["LogGroupName"]),
        Some("ApiAccessLogGroup"),
        "{filter_id}: on the API's access log"
    );
    assert_eq!(
        text(p, &["FilterPattern"], filter_id),
        r#"{ $.status = "429" }"#,
        "{filter_id}"
    );
    let transformation = at(p, &["MetricTransformations"])
        .and_then(Value::as_sequence)
        .and_then(|t| t.first())
        .unwrap_or_else(|| panic!("{filter_id}: MetricTransformations"));
    let namespace = transformation
        .get("MetricNamespace")
        .and_then(crate::support::sub)
        .unwrap_or_else(|| panic!("{filter_id}: MetricNamespace: !Sub ..."));
    assert_eq!(
        namespace, "TaskApi/${AWS::StackName}",
        "{filter_id}: one namespace per stack"
    );
    let metric = text(transformation, &["MetricName"], filter_id);
    assert_eq!(text(transformation, &["MetricValue"], filter_id), "1");
    let (id, alarm) = the_one(alarm_on(&template, namespace, metric), "the API's 429s");
    assert_eq!(
        condition(alarm, id),
        owned_condition(
            "Sum",
            300,
            1,
            "GreaterThanOrEqualToThreshold",
            10,
            "notBreaching"
        ),
        "{id}"
    );

    // The streamed functions' bound is their reserved concurrency: Lambda
    // counts the invocations it refuses.
    let throttles = alarm_on(&template, "AWS/Lambda", "Throttles");
    for streamed in shared::http::routes::STREAMED {
        let (function, _) = function_of(&template, streamed);
        let (id, alarm) = the_one(
            throttles
                .iter()
                .copied()
                .filter(|(id, a)| {
                    dimensions(a, id).iter().any(|(name, value)| {
                        *name == "FunctionName" && reference(value) == Some(function)
                    })
                })
                .collect(),
            &format!("{function}'s Throttles"),
        );
        assert_eq!(dimensions(alarm, id).len(), 1, "{id}");
        assert_eq!(
            condition(alarm, id),
            owned_condition("Sum", 300, 1, "GreaterThanThreshold", 0, "notBreaching"),
            "{id}"
        );
    }
}

#[test]
fn change_entries_expire_after_the_retention_parameter() {
    let template = template();
    assert_eq!(
        positive_number_parameter(&template, "ChangeRetentionDays"),
        90
    );
    let (id, audit) = function_of(&template, "audit");
    let variable = at(
        audit,
        &[
            "Properties",
            "Environment",
            "Variables",
            "CHANGE_RETENTION_DAYS",
        ],
    );
    assert_eq!(
        variable.and_then(reference),
        Some("ChangeRetentionDays"),
        "{id}: CHANGE_RETENTION_DAYS should be !Ref ChangeRetentionDays, got {variable:?}"
    );
    // Entries expire through the table's TTL, on the attribute the code writes.
    let tables = resources(&template, "AWS::DynamoDB::Table");
    let (table_id, table) = tables[0];
    assert_eq!(
        text(
            table,
            &["Properties", "TimeToLiveSpecification", "AttributeName"],
            table_id
        ),
        TTL_ATTRIBUTE
    );
    assert_eq!(TTL_ATTRIBUTE, "expires_at");
}

#[test]
fn the_user_pool_signs_in_with_srp_only_and_mfa_is_a_parameter() {
    let template = template();
    let client = resource(&template, "UserPoolClient");
    assert_eq!(
        strings(
            at(client, &["Properties", "ExplicitAuthFlows"]),
            "UserPoolClient ExplicitAuthFlows"
        ),
        ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        "UserPoolClient: SRP and refresh only (no ALLOW_USER_PASSWORD_AUTH)"
    );

    let declared = parameter(&template, "MfaConfiguration");
    assert_eq!(
        strings(
            declared.get("AllowedValues"),
            "MfaConfiguration AllowedValues"
        ),
        ["OFF", "OPTIONAL", "ON"]
    );
    assert_eq!(text(declared, &["Default"], "MfaConfiguration"), "OPTIONAL");
    let pool = &resource(&template, "UserPool")["Properties"];
    assert_eq!(
        pool.get("MfaConfiguration").and_then(reference),
        Some("MfaConfiguration"),
        "UserPool: MfaConfiguration: !Ref MfaConfiguration"
    );
    // A factor whenever MFA may be used (Cognito demands an SMS setup
    // otherwise) and none when it is OFF (Cognito refuses one then).
    let factors = pool.get("EnabledMfas").expect("UserPool EnabledMfas");
    let (condition, off, on) = if_branches(factors, "UserPool EnabledMfas");
    assert!(
        is_no_value(off),
        "UserPool EnabledMfas: none when MFA is OFF"
    );
    assert_eq!(
        strings(Some(on), "UserPool EnabledMfas"),
        ["SOFTWARE_TOKEN_MFA"],
        "UserPool: TOTP when MFA is OPTIONAL or ON"
    );
    let defined = at(&template, &["Conditions", condition]).expect("the MFA condition");
    let equals = intrinsic(defined, "Equals")
        .and_then(Value::as_sequence)
        .unwrap_or_else(|| panic!("{condition}: !Equals [!Ref MfaConfiguration, \"OFF\"]"));
    assert_eq!(
        reference(&equals[0]),
        Some("MfaConfiguration"),
        "{condition}"
    );
    assert_eq!(equals[1], Value::String("OFF".to_owned()), "{condition}");
}

#[test]
fn function_urls_have_exactly_the_documented_permissions() {
    // For AuthType NONE AWS documents two statements: lambda:InvokeFunctionUrl
    // for anyone while the URL's auth type is NONE, and (required of URLs
    // created since October 2025) lambda:InvokeFunction for anyone but only
    // through a Function URL, so no other invoker can hand the function a
    // forged event. Nothing more: no permission without those conditions.
    let template = template();
    let urls = resources(&template, "AWS::Lambda::Url");
    assert_eq!(
        urls.len(),
        shared::http::routes::STREAMED.len(),
        "one URL per streamed function"
    );
    let permissions = resources(&template, "AWS::Lambda::Permission");
    let mut covered = 0;
    for (url_id, url) in urls {
        assert_eq!(text(url, &["Properties", "AuthType"], url_id), "NONE");
        let function = alias_of(&url["Properties"]["TargetFunctionArn"])
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{url_id}: TargetFunctionArn: !Ref <Function>.Alias"));
        assert!(
            at(
                resource(&template, &function),
                &["Properties", "FunctionUrlConfig"]
            )
            .is_none(),
            "{function}: no FunctionUrlConfig (SAM would add permissions of its own)"
        );
        let mut found: Vec<serde_json::Value> = permissions
            .iter()
            .filter(|(_, p)| {
                at(p, &["Properties", "FunctionName"]).and_then(alias_of) == Some(&function)
            })
            .map(|(id, p)| {
                let mut properties: serde_json::Value =
                    serde_json::to_value(&p["Properties"]).expect("plain properties");
                properties
                    .as_object_mut()
                    .unwrap_or_else(|| panic!("{id}: Properties"))
                    .remove("FunctionName");
                properties
            })
            .collect();
        found.sort_by_key(|p| p["Action"].to_string());
        covered += found.len();
        assert_eq!(
            found,
            [
                serde_json::json!({
                    "Action": "lambda:InvokeFunction",
                    "Principal": "*",
                    "InvokedViaFunctionUrl": true,
                }),
                serde_json::json!({
                    "Action": "lambda:InvokeFunctionUrl",
                    "Principal": "*",
                    "FunctionUrlAuthType": "NONE",
                }),
            ],
            "{function}'s AWS::Lambda::Permission resources (FunctionName: !Ref {function}.Alias)"
        );
    }
    assert_eq!(
        covered,
        permissions.len(),
        "every AWS::Lambda::Permission belongs to a Function URL: {permissions:?}"
    );
}

/// Every function deploys gradually (docs/pipeline.md): a `live` alias
/// published on each deploy (Globals), shifted by CodeDeploy as
/// `DeploymentType` says, after the pre-traffic hook, and rolled back by
/// the API's 5xx alarm and the function's own alarm on its alias' errors.
/// No function opts out.
#[test]
fn every_function_deploys_gradually_through_its_live_alias() {
    let template = template();
    let globals = at(&template, &["Globals", "Function"]).expect("Globals.Function");
    assert_eq!(text(globals, &["AutoPublishAlias"], "Globals"), "live");
    let preference = at(globals, &["DeploymentPreference"]).expect("DeploymentPreference");
    assert_eq!(
        at(preference, &["Type"]).and_then(reference),
        Some("DeploymentType"),
        "Globals: DeploymentPreference.Type: !Ref DeploymentType"
    );
    let deployment_type = parameter(&template, "DeploymentType");
    let allowed = strings(
        at(deployment_type, &["AllowedValues"]),
        "DeploymentType.AllowedValues",
    );
    for kind in [
        "AllAtOnce",
        "Canary10Percent5Minutes",
        "Linear10PercentEvery1Minute",
    ] {
        assert!(allowed.iter().any(|a| a == kind), "DeploymentType: {kind}");
    }
    let global_alarms: Vec<&str> = at(preference, &["Alarms"])
        .and_then(Value::as_sequence)
        .expect("Globals: DeploymentPreference.Alarms")
        .iter()
        .map(|a| reference(a).expect("!Ref <alarm>"))
        .collect();
    assert_eq!(global_alarms, ["ApiServerErrorsAlarm"]);
    let hook = at(preference, &["Hooks", "PreTraffic"])
        .and_then(reference)
        .expect("Globals: DeploymentPreference.Hooks.PreTraffic: !Ref <hook>");
    assert_eq!(
        text(resource(&template, hook), &["Type"], hook),
        "AWS::Lambda::Function",
        "{hook}: a plain function (Globals would give it an alias and a deployment of its own)"
    );

    for (id, binary, function) in functions(&template) {
        for own in ["AutoPublishAlias", "AutoPublishAliasAllProperties"] {
            assert!(
                at(function, &["Properties", own]).is_none(),
                "{id}: {own} is Globals'"
            );
        }
        let preference = at(function, &["Properties", "DeploymentPreference"])
            .unwrap_or_else(|| panic!("{id}: DeploymentPreference.Alarms: [its alias' errors]"));
        assert!(
            at(preference, &["Enabled"]).is_none() && at(preference, &["Type"]).is_none(),
            "{id}: only alarms of its own (Enabled and Type are Globals')"
        );
        let alarms: Vec<&str> = at(preference, &["Alarms"])
            .and_then(Value::as_sequence)
            .unwrap_or_else(|| panic!("{id}: DeploymentPreference.Alarms"))
            .iter()
            .map(|a| reference(a).expect("!Ref <alarm>"))
            .collect();
        let own = format!("{}AliasErrorsAlarm", id.trim_end_matches("Function"));
        assert_eq!(alarms.first(), Some(&own.as_str()), "{id} ({binary})");
        let alarm = resource(&template, &own);
        assert_eq!(text(alarm, &["Properties", "MetricName"], &own), "Errors");
        let dims = dimensions(alarm, &own);
        assert_eq!(
            (dims[0].0, reference(dims[0].1)),
            ("FunctionName", Some(id)),
            "{own}"
        );
        assert_eq!(dims[1].0, "Resource", "{own}: on the alias");
        assert_eq!(
            crate::support::sub(dims[1].1),
            Some(format!("${{{id}}}:live").as_str()),
            "{own}"
        );
        assert_eq!(
            condition(alarm, &own),
            owned_condition("Sum", 60, 1, "GreaterThanThreshold", 0, "notBreaching"),
            "{own}: any error of the alias in a minute"
        );
    }
}

/// The one function that is no route function, and why: CodeDeploy's
/// pre-traffic hook, the only plain `AWS::Lambda::Function` of the
/// template. Route functions are `AWS::Serverless::Function`s (the other
/// tests: a crate each); a plain function is allowed only as the hook
/// Globals names, in Python (pipeline/pretraffic, built by its Makefile),
/// named `CodeDeployHook_<stack>-...` (what SAM's CodeDeploy role may
/// invoke), and told every function's crate (FUNCTIONS).
#[test]
fn the_only_plain_function_is_the_pre_traffic_hook() {
    let template = template();
    let hook = at(
        &template,
        &[
            "Globals",
            "Function",
            "DeploymentPreference",
            "Hooks",
            "PreTraffic",
        ],
    )
    .and_then(reference)
    .expect("the pre-traffic hook");
    let plain: Vec<&str> = resources(&template, "AWS::Lambda::Function")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        plain,
        [hook],
        "plain AWS::Lambda::Functions: only the deploy hook"
    );
    let function = resource(&template, hook);
    assert_eq!(
        text(function, &["Metadata", "BuildMethod"], hook),
        "makefile"
    );
    let code = text(function, &["Properties", "Code"], hook);
    assert!(
        read(&format!("{code}/Makefile")).contains(&format!("build-{hook}:")),
        "{code}/Makefile builds {hook}"
    );
    assert!(
        text(function, &["Properties", "Runtime"], hook).starts_with("python3."),
        "{hook}"
    );
    let name = at(function, &["Properties", "FunctionName"])
        .and_then(crate::support::sub)
        .expect("FunctionName: !Sub CodeDeployHook_${AWS::StackName}-...");
    assert!(
        name.starts_with("CodeDeployHook_${AWS::StackName}-"),
        "{hook}: {name}"
    );
    let listed = at(
        function,
        &["Properties", "Environment", "Variables", "FUNCTIONS"],
    )
    .and_then(crate::support::sub)
    .expect("FUNCTIONS: !Sub lines of `${<Function>} <crate>`");
    let mut want: Vec<String> = functions(&template)
        .into_iter()
        .map(|(id, binary, _)| format!("${{{id}}} {binary}"))
        .collect();
    let mut got: Vec<String> = listed.lines().map(str::to_owned).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{hook}: FUNCTIONS names every function's crate");
}

/// The pipeline's two environments (docs/pipeline.md, "Environments"):
/// stacks of their own whose names the deploy roles can scope (at most 26
/// characters, neither `<name>-` a prefix of the other), no managed bucket
/// (the workflow passes the environment's), unattended change sets, and a
/// gradual shift in prod.
#[test]
fn samconfig_environments_deploy_apart_and_prod_gradually() {
    let template = template();
    let config: toml::Table = toml::from_str(&read("samconfig.toml")).expect("samconfig.toml");
    let config = toml::Value::Table(config);
    let get = |path: &[&str]| {
        path.iter()
            .try_fold(&config, |v, k| v.get(k))
            .unwrap_or_else(|| panic!("samconfig.toml: {}", path.join(".")))
    };
    let allowed = strings(
        at(parameter(&template, "DeploymentType"), &["AllowedValues"]),
        "DeploymentType",
    );
    let mut stacks = Vec::new();
    for env in ["staging", "prod"] {
        let stack = get(&[env, "global", "parameters", "stack_name"])
            .as_str()
            .expect("stack_name");
        assert!(
            stack.len() <= 26,
            "{env}: {stack} (generated role names must keep the whole stack name)"
        );
        stacks.push(stack.to_owned());
        let deploy = get(&[env, "deploy", "parameters"]);
        assert!(
            deploy.get("resolve_s3").is_none(),
            "{env}: --s3-bucket is the workflow's"
        );
        assert_eq!(
            deploy.get("confirm_changeset"),
            Some(&toml::Value::Boolean(false)),
            "{env}"
        );
        assert_eq!(
            deploy.get("s3_prefix").and_then(toml::Value::as_str),
            Some(stack),
            "{env}"
        );
        let overrides: std::collections::BTreeMap<&str, &str> = deploy
            .get("parameter_overrides")
            .and_then(toml::Value::as_str)
            .unwrap_or_else(|| panic!("{env}: parameter_overrides"))
            .split_whitespace()
            .map(|kv| kv.split_once('=').expect("Name=value"))
            .collect();
        for name in overrides.keys() {
            parameter(&template, name);
        }
        let kind = overrides
            .get("DeploymentType")
            .unwrap_or_else(|| panic!("{env}: DeploymentType"));
        assert!(allowed.iter().any(|a| a == kind), "{env}: {kind}");
        if env == "prod" {
            assert_ne!(*kind, "AllAtOnce", "prod shifts gradually");
        }
    }
    let [staging, prod] = &stacks[..] else {
        unreachable!()
    };
    assert!(
        !staging.starts_with(&format!("{prod}-")) && !prod.starts_with(&format!("{staging}-")),
        "{staging}, {prod}: one deploy role's <stack>-* would cover the other's"
    );
}

/// Issue 26: the access log carries no caller (its variables cannot hash
/// the `sub`), exactly the fields docs/operations.md lists; every route of
/// the JWT authorizer requires `JwtScope`, which the streamed functions
/// require too (`JWT_SCOPES`), so ID tokens are refused everywhere.
#[test]
fn the_access_log_names_no_caller_and_every_route_requires_the_scope() {
    let template = crate::support::template();
    let api = crate::support::resource(&template, "TasksApi");
    let format = crate::support::text(
        api,
        &["Properties", "AccessLogSettings", "Format"],
        "TasksApi",
    );
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(format).expect("the access log format is JSON");
    assert!(
        !format.contains("$context.authorizer.claims"),
        "no claim (the sub) in the access log: {format}"
    );
    let docs = crate::support::read("docs/operations.md");
    let listed = docs
        .split("The API's access log")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .expect("docs/operations.md describes the access log");
    for field in fields.keys() {
        assert!(
            listed.contains(&format!("`{field}`")),
            "the access log's `{field}` is not in the docs: {listed}"
        );
    }
    assert!(listed.contains("names no caller"), "{listed}");

    let authorizer = crate::support::at(
        api,
        &[
            "Properties",
            "Auth",
            "Authorizers",
            "JwtAuthorizer",
            "AuthorizationScopes",
        ],
    )
    .expect("the authorizer requires scopes");
    let scopes = authorizer.as_sequence().expect("a list");
    assert_eq!(scopes.len(), 1, "{authorizer:?}");
    assert_eq!(crate::support::reference(&scopes[0]), Some("JwtScope"));
    let default = crate::support::text(
        &template,
        &["Parameters", "JwtScope", "Default"],
        "JwtScope",
    );
    assert_eq!(default, "aws.cognito.signin.user.admin");
    assert!(docs.contains(&format!("| `JwtScope` | `{default}` |")));
    for (id, _, function) in crate::support::functions(&template) {
        if let Some(scopes) = crate::support::at(
            function,
            &["Properties", "Environment", "Variables", "JWT_SCOPES"],
        ) {
            assert_eq!(crate::support::reference(scopes), Some("JwtScope"), "{id}");
        }
    }
}

/// Each function whose handler counts a fair share (`within_share`, read
/// from its source) gets that share's settings from the template's
/// parameters, whose defaults are the code's: the writes' for the task
/// writes, the exports' for the export; no other function gets them.
#[test]
fn fair_share_settings_reach_the_functions_that_count_them() {
    use shared::config::{
        DEFAULT_EXPORTS_PER_CALLER, DEFAULT_RATE_WINDOW_SECONDS, DEFAULT_WRITES_PER_CALLER,
    };
    let template = template();
    for (name, default) in [
        ("WritesPerCaller", DEFAULT_WRITES_PER_CALLER),
        ("ExportsPerCaller", DEFAULT_EXPORTS_PER_CALLER),
        ("RateWindowSeconds", DEFAULT_RATE_WINDOW_SECONDS),
    ] {
        let declared = parameter(&template, name);
        assert_eq!(
            number(declared.get("Default"), name),
            u64::from(default),
            "{name}'s default is shared::config's"
        );
    }
    let mut counting = Vec::new();
    for (id, binary, function) in functions(&template) {
        let source = std::fs::read_to_string(
            crate::support::repo_root().join(format!("shared/src/handlers/{binary}.rs")),
        )
        .unwrap_or_default();
        let variables = at(function, &["Properties", "Environment", "Variables"]);
        let variable = |name: &str| variables.and_then(|v| v.get(name)).and_then(reference);
        for (share, variable_name, parameter_name) in [
            ("Share::Writes", "WRITES_PER_CALLER", "WritesPerCaller"),
            ("Share::Exports", "EXPORTS_PER_CALLER", "ExportsPerCaller"),
        ] {
            let counts = source.contains(share);
            let expected = counts.then_some(parameter_name);
            assert_eq!(
                variable(variable_name),
                expected,
                "{id} ({binary}): {variable_name}"
            );
            if counts {
                counting.push(binary);
                assert_eq!(
                    variable("RATE_WINDOW_SECONDS"),
                    Some("RateWindowSeconds"),
                    "{id} ({binary}): RATE_WINDOW_SECONDS"
                );
            }
        }
    }
    counting.sort_unstable();
    assert_eq!(
        counting,
        [
            "create_task",
            "delete_task",
            "export_tasks",
            "replace_task",
            "update_task"
        ]
    );
}

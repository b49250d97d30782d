//! The production template's defaults, checked against the code they must
//! agree with: the table's protection and the local table's layout
//! (`shared::ports::table`), the functions' runtime, build and logging,
//! API Gateway's CORS (`shared::http::cors`, which serves the same CORS locally),
//! throttling and authentication, the outputs, and `samconfig.toml`.
//! (Routes and identity: `route_table.rs`; IAM: `least_privilege.rs`.)

use crate::support::{
    at, function_property, functions, intrinsic, read, reference, resource, resources, template,
    text,
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
            .find(|(_, m)| at(m, &["Properties", "FunctionName"]).and_then(reference) == Some(id))
            .unwrap_or_else(|| panic!("an event source mapping for {id}"));
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

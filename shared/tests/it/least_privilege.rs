//! Least privilege: each function's IAM policy in `template.yaml` grants
//! exactly the DynamoDB access its handler declares next to its code
//! (`shared::handlers::<function>::DYNAMODB`, `shared::handlers::audit::DYNAMODB`),
//! on the table's ARN (and the ARNs of the indexes it queries, and of the
//! stream it reads) only. Beyond DynamoDB a function may only be granted
//! `sqs:SendMessage` on the queue its own event source mapping sends
//! discarded batches to (`DestinationConfig.OnFailure`), which Lambda does
//! with the function's role. A policy that grants more, less,
//! elsewhere or in a form this test cannot read fails it; so does a handler
//! whose declaration nobody deploys. `devstack/tests/dynamodb_calls.rs`
//! checks the other side: the code calls nothing beyond its declaration.

use std::collections::BTreeSet;

use crate::support::{at, functions, get_att, one_or_many, resources, sub, template};
use serde_norway::Value;
use shared::handlers::{DynamoDbAccess, STREAM_ACTIONS, dynamodb_access};
use shared::http::routes::{FALLBACK, ROUTES};
use shared::runtime::EVENT_FUNCTIONS;

/// What a function's policies grant: `(action, resource)` pairs, with the
/// resource as `table`, `table/index/<name>`, `stream` or `queue/<id>`;
/// a grant confined to items by their partition keys (IAM's
/// `dynamodb:LeadingKeys`) as `table under <pattern>,<pattern>`.
type Grants = BTreeSet<(String, String)>;

/// What Lambda needs to send a discarded batch's record to an SQS
/// on-failure destination, with the function's role.
const ON_FAILURE_ACTION: &str = "sqs:SendMessage";

/// The only table's logical id.
fn table_id(template: &Value) -> &str {
    let tables = resources(template, "AWS::DynamoDB::Table");
    let [(id, _)] = tables[..] else {
        panic!("expected exactly one DynamoDB table, found {tables:?}");
    };
    id
}

/// `table`, `table/index/<name>`, `stream` or `queue/<id>`, for a resource
/// naming the table's ARN: `!GetAtt Table.Arn`, `!Sub
/// ${Table.Arn}/index/<name>` (no wildcard) or `!GetAtt Table.StreamArn`;
/// or an SQS queue of the template's: `!GetAtt Queue.Arn`.
fn resource_name(template: &Value, table: &str, resource: &Value, whose: &str) -> String {
    let arn = format!("{table}.Arn");
    let stream = format!("{table}.StreamArn");
    match get_att(resource) {
        Some(name) if name == arn => return "table".to_owned(),
        Some(name) if name == stream => return "stream".to_owned(),
        Some(name) => {
            if let Some(queue) = name.strip_suffix(".Arn")
                && at(template, &["Resources", queue, "Type"]).and_then(Value::as_str)
                    == Some("AWS::SQS::Queue")
            {
                return format!("queue/{queue}");
            }
        }
        _ => {}
    }
    if let Some(index) = sub(resource)
        .and_then(|s| s.strip_prefix(&format!("${{{arn}}}")))
        .and_then(|rest| rest.strip_prefix("/index/"))
        && !index.is_empty()
        && index
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return format!("table/index/{index}");
    }
    panic!(
        "{whose}: a resource must be `!GetAtt {arn}`, `!Sub ${{{arn}}}/index/<name>`, \
         `!GetAtt {stream}` or `!GetAtt <an SQS queue>.Arn` (no wildcard, no other \
         resource), got {resource:?}"
    )
}

/// Every `(action, resource)` a function's `Policies` grant. Only inline
/// statements are accepted: a SAM policy template, a managed policy or a
/// `Role` of its own could grant anything.
fn grants(template: &Value, id: &str, function: &Value) -> Grants {
    assert!(
        at(function, &["Properties", "Role"]).is_none(),
        "{id}: no Role of its own (SAM builds it from Policies)"
    );
    let table = table_id(template);
    let mut grants = Grants::new();
    let Some(policies) = at(function, &["Properties", "Policies"]) else {
        return grants;
    };
    for policy in one_or_many(policies) {
        let statements = policy.get("Statement").unwrap_or_else(|| {
            panic!("{id}: only inline `- Statement:` policies are allowed, got {policy:?}")
        });
        for statement in one_or_many(statements) {
            let whose = format!("{id} statement {statement:?}");
            for key in statement
                .as_mapping()
                .expect("a statement is a mapping")
                .keys()
            {
                let key = key.as_str().unwrap_or_default();
                assert!(
                    ["Sid", "Effect", "Action", "Resource", "Condition"].contains(&key),
                    "{whose}: unexpected {key} (NotAction and NotResource are not used)"
                );
            }
            let under = statement
                .get("Condition")
                .map(|condition| leading_keys(condition, &whose));
            assert_eq!(
                statement.get("Effect").and_then(Value::as_str),
                Some("Allow"),
                "{whose}: Effect"
            );
            let actions = one_or_many(statement.get("Action").expect("an Action"));
            let targets = one_or_many(statement.get("Resource").expect("a Resource"));
            for action in actions {
                let action = action
                    .as_str()
                    .unwrap_or_else(|| panic!("{whose}: {action:?}"));
                for target in &targets {
                    let mut name = resource_name(template, table, target, &whose);
                    if let Some(patterns) = &under {
                        assert_eq!(name, "table", "{whose}: a condition on the table only");
                        name = confined_to(&name, patterns);
                    }
                    if name.starts_with("queue/") {
                        assert_eq!(
                            action, ON_FAILURE_ACTION,
                            "{whose}: on a queue, only {ON_FAILURE_ACTION}"
                        );
                    } else {
                        assert!(
                            action.starts_with("dynamodb:") && !action.contains('*'),
                            "{whose}: {action} is no single DynamoDB action"
                        );
                    }
                    grants.insert((action.to_owned(), name));
                }
            }
        }
    }
    grants
}

/// How a grant confined to items by partition key is named here and in
/// `deployed_template.rs`: `<resource> under <pattern>,<pattern>`, sorted.
pub(crate) fn confined_to<S: AsRef<str>>(resource: &str, patterns: &[S]) -> String {
    let mut patterns: Vec<&str> = patterns.iter().map(AsRef::as_ref).collect();
    patterns.sort_unstable();
    format!("{resource} under {}", patterns.join(","))
}

/// The leading-key patterns of `access`'s confined actions.
pub(crate) fn leading_key_patterns(access: &DynamoDbAccess) -> Vec<String> {
    access.leading_keys.iter().map(|k| k.pattern()).collect()
}

/// The partition keys a statement's `Condition` confines it to: only `ForAllValues:StringLike` on
/// `dynamodb:LeadingKeys` is understood (`ForAnyValue`, or another key,
/// would not confine every item a call touches).
fn leading_keys(condition: &Value, whose: &str) -> Vec<String> {
    let mapping = condition.as_mapping().expect("a Condition is a mapping");
    let [(operator, keys)] = mapping.iter().collect::<Vec<_>>()[..] else {
        panic!("{whose}: one condition operator, got {condition:?}");
    };
    assert_eq!(
        operator.as_str(),
        Some("ForAllValues:StringLike"),
        "{whose}: only ForAllValues:StringLike confines every item"
    );
    let keys = keys.as_mapping().expect("condition keys");
    let [(key, values)] = keys.iter().collect::<Vec<_>>()[..] else {
        panic!("{whose}: one condition key, got {keys:?}");
    };
    assert_eq!(key.as_str(), Some("dynamodb:LeadingKeys"), "{whose}");
    one_or_many(values)
        .into_iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("{whose}: {v:?}"))
                .to_owned()
        })
        .collect()
}

/// What `access` needs: every action on the table and on each index, and
/// the stream actions on the stream if it reads it.
fn expected(access: DynamoDbAccess) -> Grants {
    let resources: Vec<String> = access
        .table
        .then(|| "table".to_owned())
        .into_iter()
        .chain(
            access
                .indexes
                .iter()
                .map(|index| format!("table/index/{index}")),
        )
        .collect();
    let mut grants: Grants = access
        .actions
        .iter()
        .flat_map(|action| {
            resources
                .iter()
                .map(move |resource| (action.to_string(), resource.clone()))
        })
        .collect();
    if !access.confined.is_empty() {
        let under = confined_to("table", &leading_key_patterns(&access));
        grants.extend(
            access
                .confined
                .iter()
                .map(|action| (action.to_string(), under.clone())),
        );
    }
    if access.stream {
        grants.extend(
            STREAM_ACTIONS
                .iter()
                .map(|action| (action.to_string(), "stream".to_owned())),
        );
    }
    grants
}

/// `sqs:SendMessage` on the on-failure queue of each event source mapping
/// that invokes the function `id` (Lambda sends there with its role).
fn on_failure_grants(template: &Value, id: &str) -> Grants {
    resources(template, "AWS::Lambda::EventSourceMapping")
        .into_iter()
        .filter(|(_, m)| {
            at(m, &["Properties", "FunctionName"]).and_then(crate::support::alias_of) == Some(id)
        })
        .filter_map(|(mapping, m)| {
            let destination = at(
                m,
                &[
                    "Properties",
                    "DestinationConfig",
                    "OnFailure",
                    "Destination",
                ],
            )?;
            let name = resource_name(template, table_id(template), destination, mapping);
            assert!(
                name.starts_with("queue/"),
                "{mapping}: the on-failure destination should be a queue of this template"
            );
            Some((ON_FAILURE_ACTION.to_owned(), name))
        })
        .collect()
}

/// Every function of the code: the routes', the fallback, the event ones.
fn all_functions() -> BTreeSet<&'static str> {
    ROUTES
        .iter()
        .map(|r| r.function)
        .chain([FALLBACK])
        .chain(EVENT_FUNCTIONS.iter().copied())
        .collect()
}

fn show(grants: &Grants) -> String {
    grants
        .iter()
        .map(|(action, resource)| format!("{action} on {resource}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn each_function_is_granted_exactly_its_declared_dynamodb_access() {
    let template = template();
    assert!(
        at(&template, &["Globals", "Function", "Policies"]).is_none()
            && at(&template, &["Globals", "Function", "Role"]).is_none(),
        "no Policies or Role in Globals: each function states its own"
    );
    let mut problems = Vec::new();
    for (id, binary, function) in functions(&template) {
        let Some(access) = dynamodb_access(binary) else {
            problems.push(format!(
                "shared/src/handlers/mod.rs: dynamodb_access() has no arm for {binary:?} \
                 (template.yaml deploys it as {id}): add `{binary:?} => {binary}::DYNAMODB,`"
            ));
            continue;
        };
        let granted = grants(&template, id, function);
        let mut wanted = expected(access);
        wanted.extend(on_failure_grants(&template, id));
        if granted != wanted {
            let lacking: Grants = wanted.difference(&granted).cloned().collect();
            let beyond: Grants = granted.difference(&wanted).cloned().collect();
            let mut parts = Vec::new();
            if !lacking.is_empty() {
                parts.push(format!("lacks {}", show(&lacking)));
            }
            if !beyond.is_empty() {
                parts.push(format!("grants beyond the declaration {}", show(&beyond)));
            }
            problems.push(format!(
                "template.yaml {id}'s Policies {} (shared::handlers::{binary}::DYNAMODB \
                 declares: {}; its mappings' on-failure queues included)",
                parts.join(" and "),
                show(&wanted)
            ));
        }
        if !access.uses_storage() && on_failure_grants(&template, id).is_empty() {
            assert!(
                at(function, &["Properties", "Policies"]).is_none(),
                "{id} needs no storage: no Policies at all"
            );
        }
    }
    assert!(
        problems.is_empty(),
        "policies differ from shared::handlers::<function>::DYNAMODB:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_function_declares_its_access_and_is_deployed() {
    for function in all_functions() {
        assert!(
            dynamodb_access(function).is_some(),
            "shared/src/handlers/mod.rs: dynamodb_access() knows no {function}: add \
             `{function:?} => {function}::DYNAMODB,`"
        );
    }
    assert_eq!(dynamodb_access("no_such_function"), None);
    let template = template();
    let deployed: BTreeSet<&str> = functions(&template)
        .into_iter()
        .map(|(_, binary, _)| binary)
        .collect();
    let (missing, extra) = crate::support::differences(deployed, all_functions());
    let mut problems: Vec<String> = missing
        .iter()
        .map(|f| {
            format!(
                "template.yaml deploys no {f}: an AWS::Serverless::Function with \
                 `Metadata: BuildProperties: Binary: {f}`"
            )
        })
        .collect();
    problems.extend(
        extra
            .iter()
            .map(|f| format!("template.yaml deploys {f}, which is no function of the code")),
    );
    crate::support::assert_no_problems(
        "template.yaml must deploy exactly the functions of the code",
        &problems,
    );
}

#[test]
fn declarations_name_single_actions_and_real_indexes() {
    let indexes: Vec<&str> = shared::adapters::dynamo::table::INDEXES
        .iter()
        .map(|(name, _)| *name)
        .collect();
    for function in all_functions() {
        let access = dynamodb_access(function).expect("declared");
        for action in access.actions {
            assert!(
                action.starts_with("dynamodb:") && !action.contains('*'),
                "{function}: {action}"
            );
            assert_ne!(
                *action, "dynamodb:TransactWriteItems",
                "{function}: IAM governs a transaction through its parts' actions"
            );
        }
        for index in access.indexes {
            assert!(indexes.contains(index), "{function}: no index {index}");
        }
        assert!(
            access.indexes.is_empty() || !access.actions.is_empty(),
            "{function}: an index without actions"
        );
        for action in STREAM_ACTIONS {
            assert!(
                !access.actions.contains(action),
                "{function}: {action} belongs on the stream (`stream: true`)"
            );
        }
    }
}

#[test]
fn the_checker_rejects_what_it_should() {
    // Guards the parser above: wildcards and foreign resources never pass.
    let template: Value = serde_norway::from_str(
        "Resources:
  T:
    Type: AWS::DynamoDB::Table
  Q:
    Type: AWS::SQS::Queue
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              Action: [dynamodb:GetItem]
              Resource: [!GetAtt T.Arn, !Sub '${T.Arn}/index/GSI1', !GetAtt T.StreamArn]
            - Effect: Allow
              Action: sqs:SendMessage
              Resource: !GetAtt Q.Arn
            - Effect: Allow
              Action: dynamodb:PutItem
              Resource: !GetAtt T.Arn
              Condition:
                ForAllValues:StringLike:
                  dynamodb:LeadingKeys: ['KEY#a', 'FEED#*']
  M:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      FunctionName: !Ref F.Alias
      DestinationConfig:
        OnFailure:
          Destination: !GetAtt Q.Arn
",
    )
    .expect("yaml");
    let function = crate::support::resource(&template, "F");
    let granted = grants(&template, "F", function);
    let want: Grants = [
        ("dynamodb:GetItem".to_owned(), "table".to_owned()),
        ("dynamodb:GetItem".to_owned(), "table/index/GSI1".to_owned()),
        ("dynamodb:GetItem".to_owned(), "stream".to_owned()),
        ("sqs:SendMessage".to_owned(), "queue/Q".to_owned()),
        (
            "dynamodb:PutItem".to_owned(),
            "table under FEED#*,KEY#a".to_owned(),
        ),
    ]
    .into();
    assert_eq!(granted, want);
    assert_eq!(
        on_failure_grants(&template, "F"),
        [("sqs:SendMessage".to_owned(), "queue/Q".to_owned())].into()
    );
    assert_eq!(on_failure_grants(&template, "T"), Grants::new());

    for bad in [
        "Action: dynamodb:*\n              Resource: !GetAtt T.Arn",
        "Action: dynamodb:GetItem\n              Resource: '*'",
        "Action: dynamodb:GetItem\n              Resource: !Sub '${T.Arn}/index/*'",
        "Action: dynamodb:GetItem\n              Resource: !GetAtt Other.Arn",
        "Action: s3:GetObject\n              Resource: !GetAtt T.Arn",
        "NotAction: dynamodb:GetItem\n              Resource: !GetAtt T.Arn",
        "Action: sqs:*\n              Resource: !GetAtt Q.Arn",
        "Action: sqs:ReceiveMessage\n              Resource: !GetAtt Q.Arn",
        "Action: sqs:SendMessage\n              Resource: '*'",
        "Action: sqs:SendMessage\n              Resource: !GetAtt T.Arn",
        "Action: sqs:SendMessage\n              Resource: !GetAtt Other.Arn",
        "Action: dynamodb:GetItem\n              Resource: !GetAtt Q.Arn",
        // A condition that does not confine every item touched.
        "Action: dynamodb:PutItem\n              Resource: !GetAtt T.Arn\n              \
         Condition: {ForAnyValue:StringLike: {dynamodb:LeadingKeys: ['FEED#*']}}",
        "Action: dynamodb:PutItem\n              Resource: !GetAtt T.Arn\n              \
         Condition: {ForAllValues:StringLike: {dynamodb:Attributes: ['pk']}}",
        "Action: dynamodb:PutItem\n              Resource: !Sub '${T.Arn}/index/GSI1'\n              \
         Condition: {ForAllValues:StringLike: {dynamodb:LeadingKeys: ['FEED#*']}}",
    ] {
        let yaml = format!(
            "Resources:
  T:
    Type: AWS::DynamoDB::Table
  Q:
    Type: AWS::SQS::Queue
  F:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - Statement:
            - Effect: Allow
              {bad}
"
        );
        let template: Value = serde_norway::from_str(&yaml).expect("yaml");
        let function = crate::support::resource(&template, "F").clone();
        let rejected = std::panic::catch_unwind(|| grants(&template, "F", &function)).is_err();
        assert!(rejected, "accepted: {bad}");
    }
}

/// `grants` as the docs' privilege table writes them: per resource, the
/// actions (without `dynamodb:`), resources in a fixed order.
fn render(grants: &Grants) -> String {
    let mut by_resource: std::collections::BTreeMap<(u8, &str), Vec<String>> = Default::default();
    for (action, resource) in grants {
        let rank = match resource.as_str() {
            "table" => 0,
            r if r.starts_with("table/index/") => 1,
            r if r.starts_with("table under ") => 2,
            "stream" => 3,
            _ => 4,
        };
        let action = action.strip_prefix("dynamodb:").unwrap_or(action);
        by_resource
            .entry((rank, resource))
            .or_default()
            .push(format!("`{action}`"));
    }
    let parts: Vec<String> = by_resource
        .into_iter()
        .map(|((_, resource), actions)| {
            let on = if resource == "table" {
                "the table".to_owned()
            } else if let Some(index) = resource.strip_prefix("table/") {
                format!("`{index}`")
            } else if let Some(keys) = resource.strip_prefix("table under ") {
                let keys: Vec<String> = keys.split(',').map(|k| format!("`{k}`")).collect();
                format!(
                    "the table, only items whose partition key is {}",
                    keys.join(" or ")
                )
            } else if resource == "stream" {
                "the table's stream".to_owned()
            } else {
                format!("`{resource}`")
            };
            format!("{} on {on}", actions.join(", "))
        })
        .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The privilege table of docs/operations.md ("What the stack is") is what
/// the template grants: each function's second column is its policies,
/// rendered by [`render`]; every function is in it once.
#[test]
fn the_docs_privilege_table_is_the_templates() {
    let template = template();
    let docs = crate::support::read("docs/operations.md");
    let header = "| function | what its policy grants | for |";
    let start = docs
        .find(header)
        .unwrap_or_else(|| panic!("docs/operations.md has no table headed {header}"));
    let mut documented: std::collections::BTreeMap<String, String> = Default::default();
    for row in docs[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.trim_start().starts_with('|'))
    {
        let cells: Vec<&str> = row.trim().trim_matches('|').split(" | ").collect();
        let [names, granted, _why] = cells[..] else {
            panic!("a row of three cells: {row}");
        };
        for name in names.split(", ") {
            let name = name.trim().trim_matches('`').to_owned();
            let previous = documented.insert(name.clone(), granted.trim().to_owned());
            assert!(previous.is_none(), "{name} is in the table twice");
        }
    }
    let mut problems = Vec::new();
    for (id, binary, function) in functions(&template) {
        let mut granted = grants(&template, id, function);
        granted.extend(on_failure_grants(&template, id));
        let wanted = render(&granted);
        match documented.remove(binary) {
            Some(row) if row == wanted => {}
            Some(row) => problems.push(format!(
                "{binary}: the docs say\n  {row}\nthe template grants\n  {wanted}"
            )),
            None => problems.push(format!("{binary}: no row; the template grants\n  {wanted}")),
        }
    }
    problems.extend(
        documented
            .keys()
            .map(|name| format!("{name}: a row, but no such function")),
    );
    crate::support::assert_no_problems(
        "docs/operations.md's privilege table differs from template.yaml",
        &problems,
    );
}

//! The environment `make dev` hands the functions (`scripts/dev.sh
//! --print-env`, which starts nothing): the local DynamoDB by default, and
//! with `DYNAMODB=aws` only what the developer's own AWS configuration
//! needs: no local endpoint, no dummy credentials.

use std::collections::BTreeMap;
use std::process::Command;

fn dev_env(vars: &[(&str, &str)]) -> Result<BTreeMap<String, String>, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/dev.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg("--print-env")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", "/nonexistent")
        .envs(vars.iter().copied())
        .output()
        .map_err(|e| format!("{script}: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

#[test]
fn by_default_the_functions_talk_to_the_local_dynamodb() {
    let env = dev_env(&[("DYNAMODB_PORT", "8123")]).expect("dev.sh --print-env");
    assert_eq!(
        env.get("AWS_ENDPOINT_URL_DYNAMODB").map(String::as_str),
        Some("http://127.0.0.1:8123"),
        "{env:?}"
    );
    assert_eq!(
        env.get("AWS_ACCESS_KEY_ID").map(String::as_str),
        Some("local")
    );
    assert_eq!(env.get("TABLE_NAME").map(String::as_str), Some("tasks"));
    assert_eq!(env.get("AWS_REGION").map(String::as_str), Some("us-east-1"));
}

#[test]
fn the_local_default_overrides_a_developers_profile_and_keys() {
    // A shell with AWS configured still gets the local DynamoDB: the dummy
    // keys come first in the chain, and the endpoint is local.
    let env = dev_env(&[
        ("AWS_PROFILE", "me"),
        ("AWS_ACCESS_KEY_ID", "AKIDREAL"),
        ("AWS_SESSION_TOKEN", "real"),
    ])
    .expect("dev.sh --print-env");
    assert_eq!(
        env.get("AWS_ACCESS_KEY_ID").map(String::as_str),
        Some("local")
    );
    assert!(!env.contains_key("AWS_SESSION_TOKEN"), "{env:?}");
    assert!(env.contains_key("AWS_ENDPOINT_URL_DYNAMODB"), "{env:?}");
}

#[test]
fn dynamodb_aws_leaves_credentials_and_endpoint_to_the_profile() {
    let env = dev_env(&[
        ("DYNAMODB", "aws"),
        ("AWS_PROFILE", "me"),
        ("TABLE_NAME", "task-api-TasksTable-1A2B3C"),
        // Left over in a shell from an earlier local session.
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:8000"),
    ])
    .expect("dev.sh --print-env");
    assert_eq!(env.get("AWS_PROFILE").map(String::as_str), Some("me"));
    assert_eq!(
        env.get("TABLE_NAME").map(String::as_str),
        Some("task-api-TasksTable-1A2B3C")
    );
    for absent in [
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
    ] {
        assert!(!env.contains_key(absent), "{absent}: {env:?}");
    }
}

#[test]
fn dynamodb_aws_needs_a_table() {
    let error = dev_env(&[("DYNAMODB", "aws"), ("AWS_PROFILE", "me")]).expect_err("no table");
    assert!(error.contains("TABLE_NAME"), "{error}");
    let error = dev_env(&[("DYNAMODB", "dynamo")]).expect_err("unknown mode");
    assert!(error.contains("DYNAMODB"), "{error}");
}

//! The environment `make dev` hands the functions (`scripts/dev.sh
//! --print-env`, which starts nothing): the local DynamoDB by default, and
//! with `DYNAMODB=aws` the developer's own credentials, resolved from a
//! profile into the environment only (botocore from the tools venv: `make
//! lint` installs it with SAM, or the first such run does), no local
//! endpoint, no dummy keys. Offline: the profiles here are static keys and
//! a `credential_process`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A HOME of its own with `~/.aws/config` and `~/.aws/credentials`.
struct Home(PathBuf);

impl Home {
    fn new(name: &str, config: &str, credentials: &str) -> Home {
        let dir = std::env::temp_dir().join(format!("dev-env-{}-{name}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).expect("HOME");
        std::fs::write(dir.join(".aws/config"), config).expect("config");
        std::fs::write(dir.join(".aws/credentials"), credentials).expect("credentials");
        Home(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dev_env(home: &Path, vars: &[(&str, &str)]) -> Result<BTreeMap<String, String>, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/dev.sh");
    let output = Command::new("bash")
        .arg(script)
        .arg("--print-env")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        // No instance-metadata probe when no credentials are found.
        .env("AWS_EC2_METADATA_DISABLED", "true")
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

fn get<'a>(env: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str)
}

const PROFILE_CONFIG: &str = "[default]\nregion = us-west-2\n\n[profile me]\nregion = eu-west-3\n\n\
    [profile process]\nregion = eu-central-1\ncredential_process = echo '{\"Version\":1,\"AccessKeyId\":\"ASIAPROCESS\",\"SecretAccessKey\":\"s\",\"SessionToken\":\"t\",\"Expiration\":\"2099-01-01T00:00:00Z\"}'\n";
const PROFILE_CREDENTIALS: &str = "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s\n\n\
    [me]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n";

#[test]
fn by_default_the_functions_talk_to_the_local_dynamodb() {
    // A developer's shell with AWS configured still gets the local
    // DynamoDB and dummy keys.
    let home = Home::new("local", PROFILE_CONFIG, PROFILE_CREDENTIALS);
    let env = dev_env(
        home.path(),
        &[
            ("DYNAMODB_PORT", "8123"),
            ("AWS_PROFILE", "me"),
            ("AWS_SESSION_TOKEN", "real"),
        ],
    )
    .expect("dev.sh --print-env");
    assert_eq!(
        get(&env, "AWS_ENDPOINT_URL_DYNAMODB"),
        Some("http://127.0.0.1:8123"),
        "{env:?}"
    );
    assert_eq!(get(&env, "AWS_ACCESS_KEY_ID"), Some("local"));
    assert_eq!(get(&env, "TABLE_NAME"), Some("tasks"));
    assert_eq!(get(&env, "AWS_REGION"), Some("us-east-1"));
    assert!(!env.contains_key("AWS_SESSION_TOKEN"), "{env:?}");
}

#[test]
fn dynamodb_aws_runs_on_the_profiles_credentials_and_region() {
    let home = Home::new("profile", PROFILE_CONFIG, PROFILE_CREDENTIALS);
    let env = dev_env(
        home.path(),
        &[
            ("DYNAMODB", "aws"),
            ("AWS_PROFILE", "me"),
            ("TABLE_NAME", "task-api-TasksTable-1A2B3C"),
            // Left over in a shell from an earlier local session.
            ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:8000"),
        ],
    )
    .expect("dev.sh --print-env");
    assert_eq!(get(&env, "TABLE_NAME"), Some("task-api-TasksTable-1A2B3C"));
    assert_eq!(
        get(&env, "AWS_ACCESS_KEY_ID"),
        Some("AKIDPROFILE"),
        "{env:?}"
    );
    assert_eq!(get(&env, "AWS_SECRET_ACCESS_KEY"), Some("***"));
    assert_eq!(get(&env, "AWS_REGION"), Some("eu-west-3"));
    for absent in [
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL",
        "AWS_SESSION_TOKEN",
    ] {
        assert!(!env.contains_key(absent), "{absent}: {env:?}");
    }
}

#[test]
fn dynamodb_aws_takes_temporary_credentials_and_keeps_a_set_region() {
    // What SSO and assume-role profiles give too: a session and its expiry.
    let home = Home::new("process", PROFILE_CONFIG, PROFILE_CREDENTIALS);
    let env = dev_env(
        home.path(),
        &[
            ("DYNAMODB", "aws"),
            ("AWS_PROFILE", "process"),
            ("AWS_REGION", "ap-southeast-2"),
            ("TABLE_NAME", "tasks-dev"),
        ],
    )
    .expect("dev.sh --print-env");
    assert_eq!(
        get(&env, "AWS_ACCESS_KEY_ID"),
        Some("ASIAPROCESS"),
        "{env:?}"
    );
    assert_eq!(get(&env, "AWS_SESSION_TOKEN"), Some("***"));
    assert!(
        get(&env, "AWS_CREDENTIAL_EXPIRATION").is_some_and(|e| e.starts_with("2099-01-01")),
        "{env:?}"
    );
    assert_eq!(get(&env, "AWS_REGION"), Some("ap-southeast-2"));
    assert!(!env.contains_key("AWS_ENDPOINT_URL_DYNAMODB"), "{env:?}");
}

#[test]
fn dynamodb_aws_fails_clearly_without_a_table_or_credentials() {
    let home = Home::new("errors", PROFILE_CONFIG, PROFILE_CREDENTIALS);
    let error =
        dev_env(home.path(), &[("DYNAMODB", "aws"), ("AWS_PROFILE", "me")]).expect_err("no table");
    assert!(error.contains("TABLE_NAME"), "{error}");
    let error = dev_env(
        home.path(),
        &[
            ("DYNAMODB", "aws"),
            ("AWS_PROFILE", "nobody"),
            ("TABLE_NAME", "t"),
        ],
    )
    .expect_err("unknown profile");
    assert!(error.contains("nobody"), "{error}");
    let empty = Home::new("empty", "", "");
    let error = dev_env(empty.path(), &[("DYNAMODB", "aws"), ("TABLE_NAME", "t")])
        .expect_err("no credentials");
    assert!(error.contains("no AWS credentials"), "{error}");
    let error = dev_env(home.path(), &[("DYNAMODB", "dynamo")]).expect_err("unknown mode");
    assert!(error.contains("DYNAMODB"), "{error}");
}

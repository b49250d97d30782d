//! The README and `docs/` pages: every relative link leads to a file that
//! exists (and to a heading of it, with `#anchor`), every repository path
//! they name in backticks exists, and none points outside the repository
//! (a fork has only what is in it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::support::repo_root;

fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages = vec![root.join("README.md")];
    let docs = root.join("docs");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&docs)
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    found.sort();
    pages.extend(found);
    pages
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces
/// as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(page: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(page).unwrap_or_default();
    let mut in_code = false;
    let mut anchors = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        if !in_code && line.starts_with('#') {
            anchors.insert(slug(line.trim_start_matches('#')));
        }
    }
    anchors
}

/// `(target, line)` of every `](target)` outside code blocks.
fn links(text: &str) -> Vec<(String, usize)> {
    let mut in_code = false;
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            found.push((after[..end].to_owned(), n + 1));
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn every_link_and_named_path_of_the_docs_exists() {
    let root = repo_root();
    let mut problems = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("page");
        let name = page
            .strip_prefix(&root)
            .unwrap_or(&page)
            .display()
            .to_string();
        let dir = page.parent().unwrap_or(&root).to_path_buf();
        for (target, line) in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                dir.join(path)
            };
            if !file.exists() {
                problems.push(format!("{name}:{line}: link to {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor
                && file.extension().is_some_and(|e| e == "md")
                && !anchors(&file).contains(anchor)
            {
                problems.push(format!("{name}:{line}: link to {target}: no such heading"));
            }
        }
        let mut in_code = false;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with("```") {
                in_code = !in_code;
            }
            for outside in ["CONTRACT.md", "../shared"] {
                if line.contains(outside) {
                    problems.push(format!(
                        "{name}:{}: names {outside}, which is outside the repository",
                        n + 1
                    ));
                }
            }
            if in_code {
                continue;
            }
            for (i, quoted) in line.split('`').enumerate() {
                let named = i % 2 == 1
                    && [
                        "shared/",
                        "devstack/",
                        "functions/",
                        "scripts/",
                        "events/",
                        "docs/",
                        ".ci/",
                        ".github/",
                    ]
                    .iter()
                    .any(|p| quoted.starts_with(p))
                    && !quoted.contains(['<', '*', '{', ' ', '…'])
                    && !quoted.contains("...")
                    // Cargo's `crate/feature` syntax, not a path.
                    && !quoted.contains("local-authorizer");
                if named && !root.join(quoted.trim_end_matches(['.', ',', ':'])).exists() {
                    problems.push(format!(
                        "{name}:{}: names {quoted}, which does not exist",
                        n + 1
                    ));
                }
            }
        }
    }
    crate::support::assert_no_problems("the docs point at what is not there", &problems);
}

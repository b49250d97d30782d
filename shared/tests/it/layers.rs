//! The library's layers (`shared/src/lib.rs`): every `crate::` path in a
//! module names a module of its own layer or of one below it, and no two
//! files import each other in a circle. Read from the sources, so a new
//! upward import fails here with the file and the path that broke the rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first: each may use itself and those before it.
const LAYERS: [&str; 8] = [
    "domain", "config", "ports", "adapters", "http", "runtime", "handlers", "openapi",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as its module path (`http::error`,
/// `adapters::dynamo` for `adapters/dynamo/mod.rs`).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let relative = file.strip_prefix(src()).ok()?.with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            Some((parts.join("::"), file))
        })
        .collect()
}

/// The code of a file without comments (doc links may point anywhere).
fn code(file: &Path) -> String {
    std::fs::read_to_string(file)
        .expect("source")
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a file names with `crate::a::b...` or `super::...`
/// (resolved to the longest existing module path), itself excluded.
fn imports(module: &str, file: &Path, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let text = code(file);
    let mut found = BTreeSet::new();
    let tokens: Vec<&str> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("crate::") || t.starts_with("super::"))
        .collect();
    for token in tokens {
        let mut path: Vec<&str> = Vec::new();
        let mut segments = token.split("::").filter(|s| !s.is_empty()).peekable();
        if token.starts_with("crate::") {
            segments.next();
        } else {
            // Each `super` is one module up (a `mod.rs` file is its
            // directory's module, so the same rule holds there).
            let mut base: Vec<&str> = module.split("::").collect();
            while segments.peek() == Some(&"super") {
                segments.next();
                base.pop();
            }
            path.extend(base);
        }
        path.extend(segments);
        while !path.is_empty() {
            let candidate = path.join("::");
            if known.contains_key(&candidate) {
                if candidate != module && !module.starts_with(&format!("{candidate}::")) {
                    found.insert(candidate);
                }
                break;
            }
            path.pop();
        }
    }
    found
}

fn layer(module: &str) -> Option<usize> {
    let top = module.split("::").next()?;
    LAYERS.iter().position(|l| *l == top)
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let known = modules();
    let mut upward = Vec::new();
    for (module, file) in &known {
        let Some(own) = layer(module) else { continue };
        for import in imports(module, file, &known) {
            if layer(&import).is_some_and(|target| target > own) {
                upward.push(format!("{} uses crate::{import}", file.display()));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a higher layer:\n{}",
        upward.join("\n")
    );
    // Every module is in a layer.
    let unplaced: Vec<&String> = known
        .keys()
        .filter(|m| !m.is_empty() && layer(m).is_none())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules outside the layers: {unplaced:?}"
    );
}

#[test]
fn no_circle_of_files() {
    let known = modules();
    // Parent modules only declare their children: `mod.rs` files that
    // re-export are edges too, but a module naming its own submodule is not
    // a circle (excluded in `imports`).
    let graph: BTreeMap<&String, BTreeSet<String>> = known
        .iter()
        .map(|(module, file)| (module, imports(module, file, &known)))
        .collect();
    // Depth-first search for a back edge.
    fn visit<'a>(
        node: &'a String,
        graph: &'a BTreeMap<&'a String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a String, bool>,
        stack: &mut Vec<&'a String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => {
                let start = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut circle: Vec<String> =
                    stack[start..].iter().map(|s| s.to_string()).collect();
                circle.push(node.to_string());
                return Some(circle);
            }
            None => {}
        }
        state.insert(node, false);
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some((key, _)) = graph.get_key_value(next)
                && let Some(circle) = visit(key, graph, state, stack)
            {
                return Some(circle);
            }
        }
        stack.pop();
        state.insert(node, true);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut state, &mut Vec::new()) {
            panic!("a circle of imports: {}", circle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_an_upward_import() {
    // The rule is only as good as its parser: a handler path named from
    // the domain is found, a doc comment is not.
    let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("task.rs");
    std::fs::write(
        &file,
        "//! see [`crate::handlers::get_task`]\nuse crate::http::error::ApiError;\nfn f() { super::caller::Caller::new(\"x\"); }\n",
    )
    .expect("write");
    let known = modules();
    let found = imports("domain::task", &file, &known);
    assert_eq!(
        found,
        BTreeSet::from(["http::error".to_owned(), "domain::caller".to_owned()])
    );
}

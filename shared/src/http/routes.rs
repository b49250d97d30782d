//! The route table: the one declaration of which function serves which
//! method and path. `template.yaml`, the `cargo lambda watch` router in
//! `Cargo.toml`, the `functions/` crates and the OpenAPI document's
//! operations are checked against it by `shared/tests/it/route_table.rs`; the
//! fallback function answers 404/405 from it.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: &'static str,
    /// API Gateway syntax: `{name}` matches one path segment, a final
    /// `{name+}` the rest of the path (one segment or more).
    pub path: &'static str,
    pub function: &'static str,
}

const fn route(method: &'static str, path: &'static str, function: &'static str) -> Route {
    Route {
        method,
        path,
        function,
    }
}

pub const ROUTES: &[Route] = &[
    route("GET", "/health", "health"),
    route("GET", "/me", "me"),
    route("POST", "/tasks", "create_task"),
    route("GET", "/tasks", "list_tasks"),
    route("GET", "/tasks/export", "export_tasks"),
    route("GET", "/tasks/events", "task_events"),
    route("POST", "/tasks/events/tickets", "create_ticket"),
    route("GET", "/tasks/{task_id}", "get_task"),
    route("PUT", "/tasks/{task_id}", "replace_task"),
    route("PATCH", "/tasks/{task_id}", "update_task"),
    route("DELETE", "/tasks/{task_id}", "delete_task"),
    route("GET", "/tasks/{task_id}/history", "task_history"),
    route("GET", "/openapi.json", DOCS),
    route("GET", "/docs", DOCS),
    route("GET", "/docs/{proxy+}", DOCS),
    route("GET", "/redoc", DOCS),
    route("GET", "/redoc/{proxy+}", DOCS),
];

/// The functions whose responses are streamed (Lambda's `RESPONSE_STREAM`
/// mode). API Gateway HTTP APIs buffer responses, so deployed they are
/// served through their own Function URLs, with the caller's token checked
/// by the function ([`super::identity`]); the HTTP API sends
/// their routes to the fallback, which says where to go. Locally
/// `cargo lambda watch` streams them on their routes.
pub const STREAMED: &[&str] = &["export_tasks", "task_events"];

/// Serves the OpenAPI document and the pages that render it (Swagger UI,
/// ReDoc, and their files). Its routes are public and, as in FastAPI, not
/// operations of the document itself.
pub const DOCS: &str = "docs";

/// Serves every request no route matches (API Gateway's `$default`).
pub const FALLBACK: &str = "fallback";

/// The methods the local router sends to the fallback when a path has no
/// route for them (cargo lambda watch needs each one listed). `OPTIONS`
/// too: with `--disable-cors` a preflight reaches the functions, which
/// answer it when local CORS is on ([`super::cors`]), as API Gateway does
/// deployed; otherwise it is the fallback's 405 (known path) or 404.
/// `HEAD`, `TRACE` and `QUERY` too, so that they get the contract's 405
/// with `Allow` locally (as API Gateway's `$default` route gives deployed),
/// not the local router's own 404.
pub const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "QUERY",
];

/// Whether `path` matches the `pattern` of a route.
pub fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(w), Some(h)) if w.starts_with('{') && w.ends_with("+}") => {
                // Greedy: the rest of the path, starting with a non-empty segment.
                return want.next().is_none() && !h.is_empty();
            }
            (Some(w), Some(h)) if w.starts_with('{') && w.ends_with('}') => {
                if h.is_empty() {
                    return false;
                }
            }
            (Some(w), Some(h)) if w == h => {}
            _ => return false,
        }
    }
}

/// The methods of the resource at `path` (its most specific matching
/// pattern), in table order, each once (empty: unknown path): a 405's
/// `Allow`.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    // The resource is the most specific pattern that matches: a static
    // path (`/tasks/export`) is its own resource, not `/tasks/{task_id}`
    // (whose routes still take other methods there, as API Gateway and
    // FastAPI route them).
    let matching: Vec<&Route> = ROUTES.iter().filter(|r| matches(r.path, path)).collect();
    let params = |route: &Route| route.path.matches('{').count();
    let fewest = matching.iter().map(|r| params(r)).min().unwrap_or(0);
    let mut methods: Vec<&'static str> = Vec::new();
    for route in matching.into_iter().filter(|r| params(r) == fewest) {
        if !methods.contains(&route.method) {
            methods.push(route.method);
        }
    }
    methods
}

/// The route serving `method` on `path`, as API Gateway picks it: a path
/// without parameters before one with (`/tasks/export` before
/// `/tasks/{task_id}`), which the table's order already says.
pub fn route_for(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.method == method && matches(r.path, path))
}

/// The value of the path parameter `name` that API Gateway gives the
/// route serving `method` on `path` ([`route_for`]), percent-decoded as
/// API Gateway decodes it; `None` if that route has no such parameter.
pub fn path_parameter(method: &str, path: &str, name: &str) -> Option<String> {
    let route = route_for(method, path)?;
    let mut have = path.split('/');
    for want in route.path.split('/') {
        let segment = have.next()?;
        if want == format!("{{{name}}}") {
            return Some(percent_decode(segment));
        }
        if want == format!("{{{name}+}}") {
            let rest: Vec<&str> = std::iter::once(segment).chain(have).collect();
            return Some(percent_decode(&rest.join("/")));
        }
    }
    None
}

/// `%XX` escapes decoded (invalid ones kept as they are), as UTF-8 where
/// it is, else lossily.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `function` streams its responses ([`STREAMED`]).
pub fn is_streamed(function: &str) -> bool {
    STREAMED.contains(&function)
}

/// The distinct paths of the table, in order.
pub fn paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = Vec::new();
    for route in ROUTES {
        if !paths.contains(&route.path) {
            paths.push(route.path);
        }
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_one_segment_per_parameter() {
        assert!(matches("/tasks/{task_id}", "/tasks/abc"));
        assert!(matches("/tasks", "/tasks"));
        assert!(!matches("/tasks/{task_id}", "/tasks/"));
        assert!(!matches("/tasks/{task_id}", "/tasks/a/b"));
        assert!(!matches("/tasks", "/tasks/abc"));
        assert!(!matches("/health", "/healthz"));
    }

    #[test]
    fn a_greedy_parameter_matches_the_rest_of_the_path() {
        assert!(matches("/docs/{proxy+}", "/docs/swagger-ui.css"));
        assert!(matches("/docs/{proxy+}", "/docs/a/b"));
        assert!(!matches("/docs/{proxy+}", "/docs"));
        assert!(!matches("/docs/{proxy+}", "/docs/"));
        assert!(!matches("/docs/{proxy+}", "/redoc/x"));
    }

    #[test]
    fn allowed_methods_follow_the_table() {
        assert_eq!(allowed_methods("/tasks"), ["POST", "GET"]);
        assert_eq!(
            allowed_methods("/tasks/x"),
            ["GET", "PUT", "PATCH", "DELETE"]
        );
        assert!(allowed_methods("/nope").is_empty());
        assert_eq!(allowed_methods("/docs/index.css"), ["GET"]);
        // A static path is its own resource (FastAPI's `Allow` too), even
        // though PUT, PATCH and DELETE there reach `/tasks/{task_id}`.
        assert_eq!(allowed_methods("/tasks/export"), ["GET"]);
        assert_eq!(allowed_methods("/tasks/events/tickets"), ["POST"]);
    }

    #[test]
    fn a_path_without_parameters_wins() {
        let function = |m, p| route_for(m, p).map(|r| r.function);
        assert_eq!(function("GET", "/tasks/export"), Some("export_tasks"));
        assert_eq!(function("PUT", "/tasks/export"), Some("replace_task"));
        assert_eq!(function("GET", "/tasks/abc"), Some("get_task"));
        assert_eq!(function("POST", "/tasks/abc"), None);
    }

    #[test]
    fn path_parameters_are_those_of_the_route_api_gateway_picks() {
        let param = |m, p| path_parameter(m, p, "task_id");
        assert_eq!(param("PUT", "/tasks/events").as_deref(), Some("events"));
        assert_eq!(param("DELETE", "/tasks/export").as_deref(), Some("export"));
        assert_eq!(param("GET", "/tasks/a%20b/history").as_deref(), Some("a b"));
        assert_eq!(param("GET", "/tasks/export"), None);
        assert_eq!(param("POST", "/tasks/abc"), None);
        assert_eq!(
            path_parameter("GET", "/docs/a/b.css", "proxy").as_deref(),
            Some("a/b.css")
        );
    }
}

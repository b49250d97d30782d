//! CORS, declared once and answered the same way deployed and locally.
//!
//! Deployed, API Gateway does it: `TasksApi`'s `CorsConfiguration` in
//! `template.yaml` (origins from the `AllowedOrigins` parameter, the lists
//! below) answers preflights itself and adds the headers to every response;
//! it ignores CORS headers a function returns, and the template gives the
//! functions no `CORS_ALLOWED_ORIGINS`. `shared/tests/deployment.rs` checks
//! the template's lists are these.
//!
//! Locally, `cargo lambda watch --disable-cors` leaves CORS to the
//! functions: with `CORS_ALLOWED_ORIGINS` set, `crate::runtime::respond`
//! answers a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) with 204 and the same headers, and adds
//! `Access-Control-Allow-Origin` and `Access-Control-Expose-Headers` to the
//! responses of an allowed origin. Unset (the default, as the template's),
//! there is no CORS at all and an `OPTIONS` is the fallback's 405/404.
//!
//! No credentials either way: the API takes bearer tokens, not cookies, so
//! `Access-Control-Allow-Credentials` is never sent and `*` is refused.

use lambda_http::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};

use super::headers::{PROCESS_TIME_HEADER, USER_HEADER};

/// The methods a cross-origin caller may use.
pub const ALLOW_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// The request headers a cross-origin caller may send (besides the
/// CORS-safelisted ones).
pub const ALLOW_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "idempotency-key",
    "if-match",
];
/// The response headers a cross-origin caller may read (besides the
/// CORS-safelisted ones).
pub const EXPOSE_HEADERS: &[&str] = &["etag", "location", "retry-after", PROCESS_TIME_HEADER];
/// How long a browser may cache a preflight answer.
pub const MAX_AGE_SECONDS: u32 = 600;

/// The CORS settings of a function: none, or the allowed origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Lower-case `scheme://host[:port]`; empty: CORS off.
    origins: Vec<String>,
    allow_headers: String,
}

impl Cors {
    /// CORS for `origins` (already checked by [`crate::config::parse_origins`]). With
    /// `header_identity` (local work), `X-User-Id` may be sent too.
    pub fn new(origins: Vec<String>, header_identity: bool) -> Self {
        let mut headers: Vec<&str> = ALLOW_HEADERS.to_vec();
        if header_identity {
            headers.push(USER_HEADER);
        }
        Cors {
            origins,
            allow_headers: headers.join(","),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// The request's `Origin`, if CORS is on and it is allowed.
    pub fn allowed_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?.to_ascii_lowercase();
        self.origins.contains(&text).then(|| origin.clone())
    }

    /// The answer to a preflight request, when CORS is on and `req` is one:
    /// 204, with the allowed methods and headers if its origin is allowed
    /// (without them the browser refuses the real request).
    pub fn preflight(&self, req: &Request) -> Option<Response<Body>> {
        let headers = req.headers();
        let is_preflight = self.is_enabled()
            && req.method() == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if !is_preflight {
            return None;
        }
        let mut response = Response::new(Body::Empty);
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        out.append(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = self.allowed_origin(headers) {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            insert(
                out,
                header::ACCESS_CONTROL_ALLOW_METHODS,
                &ALLOW_METHODS.join(","),
            );
            insert(
                out,
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                &self.allow_headers,
            );
            insert(
                out,
                header::ACCESS_CONTROL_MAX_AGE,
                &MAX_AGE_SECONDS.to_string(),
            );
        }
        Some(response)
    }

    /// Adds the CORS headers of an actual (non-preflight) request whose
    /// allowed origin is `origin` (from [`Cors::allowed_origin`]).
    pub fn decorate<B>(&self, origin: Option<HeaderValue>, response: &mut Response<B>) {
        if !self.is_enabled() {
            return;
        }
        let out = response.headers_mut();
        out.append(header::VARY, HeaderValue::from_static("origin"));
        if let Some(origin) = origin {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            insert(
                out,
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                &EXPOSE_HEADERS.join(","),
            );
        }
    }
}

fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_origins;

    fn request(method: Method, headers: &[(&str, &str)]) -> Request {
        let mut builder = lambda_http::http::Request::builder()
            .method(method)
            .uri("/tasks");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::Empty).expect("request")
    }

    fn header(response: &Response<Body>, name: HeaderName) -> Option<&str> {
        response.headers().get(name).and_then(|v| v.to_str().ok())
    }

    fn cors() -> Cors {
        Cors::new(
            parse_origins("http://localhost:5173, https://App.Example.com").expect("origins"),
            false,
        )
    }

    #[test]
    fn origins_are_checked_like_the_template_parameter() {
        assert_eq!(parse_origins("").expect("empty"), Vec::<String>::new());
        assert_eq!(
            parse_origins("https://A.example:8443,http://localhost").expect("two"),
            ["https://a.example:8443", "http://localhost"]
        );
        for bad in [
            "*",
            "localhost:5173",
            "https://a.example/",
            "https://a.example/app",
            "ftp://a.example",
            "https://",
            "https://a.example:port",
            "https://a.example:123456",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_preflight_from_an_allowed_origin_gets_the_lists() {
        let req = request(
            Method::OPTIONS,
            &[
                ("origin", "http://localhost:5173"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
            ],
        );
        let response = cors().preflight(&req).expect("a preflight");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            header(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("http://localhost:5173")
        );
        assert_eq!(
            header(&response, header::ACCESS_CONTROL_ALLOW_METHODS),
            Some("GET,POST,PUT,PATCH,DELETE")
        );
        assert_eq!(
            header(&response, header::ACCESS_CONTROL_ALLOW_HEADERS),
            Some("authorization,content-type,idempotency-key,if-match")
        );
        assert_eq!(
            header(&response, header::ACCESS_CONTROL_MAX_AGE),
            Some("600")
        );
        assert_eq!(
            header(&response, header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
            None
        );
    }

    #[test]
    fn origins_match_whole_and_case_insensitively() {
        let allowed = |origin: &str| {
            let req = request(Method::GET, &[("origin", origin)]);
            cors().allowed_origin(req.headers()).is_some()
        };
        assert!(allowed("https://app.example.com"));
        assert!(allowed("HTTPS://APP.EXAMPLE.COM"));
        assert!(!allowed("https://app.example.com.evil.test"));
        assert!(!allowed("https://evil.test"));
        assert!(!allowed("null"));
    }

    #[test]
    fn a_preflight_from_another_origin_gets_no_permission() {
        let req = request(
            Method::OPTIONS,
            &[
                ("origin", "https://evil.test"),
                ("access-control-request-method", "DELETE"),
            ],
        );
        let response = cors().preflight(&req).expect("still answered");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(header(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN), None);
        assert_eq!(
            header(&response, header::ACCESS_CONTROL_ALLOW_METHODS),
            None
        );
    }

    #[test]
    fn without_origins_or_preflight_headers_nothing_is_a_preflight() {
        let preflight = [
            ("origin", "http://localhost:5173"),
            ("access-control-request-method", "GET"),
        ];
        let off = Cors::default();
        assert!(
            off.preflight(&request(Method::OPTIONS, &preflight))
                .is_none()
        );
        let on = cors();
        assert!(
            on.preflight(&request(Method::OPTIONS, &preflight[..1]))
                .is_none()
        );
        assert!(on.preflight(&request(Method::GET, &preflight)).is_none());
    }

    #[test]
    fn responses_to_an_allowed_origin_expose_the_task_headers() {
        let cors = cors();
        let req = request(Method::GET, &[("origin", "http://localhost:5173")]);
        let mut response = Response::new(Body::Empty);
        cors.decorate(cors.allowed_origin(req.headers()), &mut response);
        assert_eq!(
            header(&response, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("http://localhost:5173")
        );
        assert_eq!(
            header(&response, header::ACCESS_CONTROL_EXPOSE_HEADERS),
            Some("etag,location,retry-after,x-process-time")
        );
        assert_eq!(header(&response, header::VARY), Some("origin"));

        let mut other = Response::new(Body::Empty);
        cors.decorate(None, &mut other);
        assert_eq!(header(&other, header::ACCESS_CONTROL_ALLOW_ORIGIN), None);

        let mut off = Response::new(Body::Empty);
        Cors::default().decorate(None, &mut off);
        assert!(off.headers().is_empty());
    }

    #[test]
    fn header_identity_may_send_the_user_header() {
        let cors = Cors::new(vec!["http://localhost:5173".into()], true);
        let req = request(
            Method::OPTIONS,
            &[
                ("origin", "http://localhost:5173"),
                ("access-control-request-method", "GET"),
            ],
        );
        let response = cors.preflight(&req).expect("a preflight");
        assert_eq!(
            header(&response, header::ACCESS_CONTROL_ALLOW_HEADERS),
            Some("authorization,content-type,idempotency-key,if-match,x-user-id")
        );
    }
}

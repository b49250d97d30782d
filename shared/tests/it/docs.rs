//! The docs function: the OpenAPI document and the two pages that render
//! it, with every file they load served by the function itself (nothing
//! from a CDN), driven through the same `respond` wrapper as Lambda does.

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use shared::openapi::docs;
use shared::runtime::respond;

/// The sample event (`GET /openapi.json`), or it with another path.
fn get(path: &str) -> Request {
    let file = format!("{}/../events/docs.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(file).expect("events/docs.json");
    let text = text.replace("/openapi.json", path);
    lambda_http::request::from_str(&text).expect("valid API Gateway event")
}

async fn fetch(path: &str) -> Response<Body> {
    respond(crate::support::app_with(&[], ()), docs::handle, get(path)).await
}

fn content_type(response: &Response<Body>) -> &str {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn text(response: &Response<Body>) -> String {
    match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Body::Empty => String::new(),
        #[allow(unreachable_patterns)]
        _ => String::new(),
    }
}

/// The `src`/`href` values of a page: what a browser loads for it.
fn linked_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in ["src=\"", "href=\"", "spec-url=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            if let Some(end) = rest.find('"') {
                urls.push(rest[..end].to_owned());
            }
        }
    }
    urls
}

#[tokio::test]
async fn the_sample_event_gets_the_openapi_document() {
    let response = fetch("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json");
    assert_eq!(text(&response), shared::openapi::to_json());
    let document: Value = serde_json::from_str(&text(&response)).expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");
}

#[tokio::test]
async fn both_pages_load_only_files_this_function_serves() {
    for (page, wanted) in [
        ("/docs", "docs/swagger-ui-bundle.js"),
        ("/redoc", "redoc/redoc.standalone.js"),
    ] {
        let response = fetch(page).await;
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        assert!(content_type(&response).starts_with("text/html"), "{page}");
        let html = text(&response);
        assert!(
            !html.contains("://"),
            "{page} must not load anything from another host"
        );
        let csp = r#"<meta http-equiv="Content-Security-Policy" content="default-src 'self';"#;
        assert!(
            html.contains(csp),
            "{page}: the browser itself must refuse anything from another host"
        );
        let urls = linked_urls(&html);
        assert!(urls.contains(&wanted.to_owned()), "{page}: {urls:?}");
        for url in urls {
            // Relative to the page: `/docs` + `docs/x` is `/docs/x`.
            let path = format!("/{url}");
            let file = fetch(&path).await;
            assert_eq!(file.status(), StatusCode::OK, "{page} loads {path}");
            assert!(!text(&file).is_empty(), "{path}");
        }
    }
}

#[tokio::test]
async fn swagger_ui_reads_this_apis_document_and_calls_no_validator() {
    let response = fetch("/docs/swagger-initializer.js").await;
    assert_eq!(response.status(), StatusCode::OK);
    let script = text(&response);
    assert!(script.contains(r#""url": "openapi.json""#), "{script}");
    assert!(script.contains(r#""validatorUrl": "none""#), "{script}");
    assert!(!script.contains("petstore"), "{script}");
}

#[tokio::test]
async fn the_redoc_page_reads_this_apis_document() {
    let html = text(&fetch("/redoc").await);
    assert!(
        html.contains(r#"<redoc spec-url="openapi.json">"#),
        "{html}"
    );
    let bundle = fetch("/redoc/redoc.standalone.js").await;
    assert!(content_type(&bundle).contains("javascript"));
}

#[tokio::test]
async fn unknown_files_are_404_in_fastapis_words() {
    for path in [
        "/docs/nope.js",
        "/docs/index.html",
        "/redoc/nope.js",
        "/docs/",
    ] {
        let response = fetch(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(text(&response), r#"{"detail":"Not Found"}"#, "{path}");
    }
}

/// The vendored files are stored gzip-compressed: sent as they are to a
/// client that accepts gzip, decompressed for one that does not, the same
/// bytes either way.
#[tokio::test]
async fn files_go_out_gzip_encoded_when_the_client_accepts_it() {
    use std::io::Read;
    for path in [
        "/docs/swagger-ui-bundle.js",
        "/redoc/redoc.standalone.js",
        "/docs/swagger-ui.css",
    ] {
        let plain = fetch(path).await;
        assert_eq!(plain.status(), StatusCode::OK, "{path}");
        assert!(
            plain.headers().get(header::CONTENT_ENCODING).is_none(),
            "{path}"
        );
        let plain = text(&plain);
        assert!(plain.len() > 10_000, "{path}");

        for accept in ["gzip, deflate, br", "br;q=1.0, gzip;q=0.8", "*"] {
            let mut request = get(path);
            request
                .headers_mut()
                .insert(header::ACCEPT_ENCODING, accept.parse().expect("header"));
            let response = respond(crate::support::app_with(&[], ()), docs::handle, request).await;
            assert_eq!(response.status(), StatusCode::OK);
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_ENCODING], "gzip", "{path} {accept}");
            assert_eq!(headers[header::VARY], "accept-encoding", "{path}");
            let Body::Binary(gzipped) = response.body() else {
                panic!("{path}: a gzip body is binary")
            };
            let mut unzipped = String::new();
            flate2::read::GzDecoder::new(&gzipped[..])
                .read_to_string(&mut unzipped)
                .expect("gzip");
            assert_eq!(unzipped, plain, "{path}");
        }
        let mut refused = get(path);
        refused.headers_mut().insert(
            header::ACCEPT_ENCODING,
            "gzip;q=0, identity".parse().expect("header"),
        );
        let response = respond(crate::support::app_with(&[], ()), docs::handle, refused).await;
        assert!(
            response.headers().get(header::CONTENT_ENCODING).is_none(),
            "{path} q=0"
        );
    }
}

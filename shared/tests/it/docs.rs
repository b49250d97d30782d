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

//! The API's documentation, served by one function with no caller and no
//! storage: the OpenAPI document ([`crate::openapi`]) at `/openapi.json`,
//! Swagger UI at `/docs` and ReDoc at `/redoc`. Both pages load their files
//! from this function (`/docs/<file>`, `/redoc/<file>`) and the document
//! from the same API, so they work with no internet: Swagger UI's files are
//! embedded at build time by utoipa-swagger-ui's `vendored` feature, ReDoc's
//! bundle is vendored in `shared/assets/redoc` (`scripts/vendor-redoc.sh`).
//!
//! The pages use relative URLs (`docs/…`, `openapi.json`), so they also work
//! under a path prefix such as an API Gateway stage.

use std::sync::{Arc, OnceLock};

use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};
use utoipa_swagger_ui::Config;

use crate::http::error::ApiError;
use crate::openapi;
use crate::runtime::{App, HandlerResult};

const SWAGGER_UI_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:">
  <title>Task API - Swagger UI</title>
  <link rel="stylesheet" href="docs/swagger-ui.css">
  <link rel="stylesheet" href="docs/index.css">
  <link rel="icon" type="image/png" href="docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="docs/swagger-ui-bundle.js"></script>
  <script src="docs/swagger-ui-standalone-preset.js"></script>
  <script src="docs/swagger-initializer.js"></script>
</body>
</html>
"#;

const REDOC_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta http-equiv="Content-Security-Policy" content="default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:">
  <title>Task API - ReDoc</title>
  <style>body { margin: 0; padding: 0; }</style>
</head>
<body>
  <noscript>ReDoc needs JavaScript to show the documentation.</noscript>
  <redoc spec-url="openapi.json"></redoc>
  <script src="redoc/redoc.standalone.js"></script>
</body>
</html>
"#;

/// ReDoc's standalone bundle (npm `redoc`, MIT; see the licence files
/// beside it).
const REDOC_BUNDLE: &str = include_str!("../../assets/redoc/redoc.standalone.js");

/// How long browsers may keep the pages' files (they change only with a deploy).
const ASSET_CACHE_CONTROL: &str = "public, max-age=3600";

/// `GET /openapi.json`, `/docs`, `/docs/{file}`, `/redoc`, `/redoc/{file}`.
pub async fn handle<S>(_app: &App<S>, req: Request) -> HandlerResult {
    let path = req.uri().path();
    match path {
        "/openapi.json" => Ok(text("application/json", openapi_json().to_owned(), None)),
        "/docs" => Ok(text(
            "text/html; charset=utf-8",
            SWAGGER_UI_PAGE.into(),
            None,
        )),
        "/redoc" => Ok(text("text/html; charset=utf-8", REDOC_PAGE.into(), None)),
        "/redoc/redoc.standalone.js" => Ok(text(
            "text/javascript; charset=utf-8",
            REDOC_BUNDLE.into(),
            Some(ASSET_CACHE_CONTROL),
        )),
        _ => match path.strip_prefix("/docs/") {
            Some(file) => swagger_ui_file(file),
            None => Err(ApiError::RouteNotFound),
        },
    }
}

/// The document, serialised once per cold start.
fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(openapi::to_json)
}

/// Swagger UI's configuration: the document of this API, and no call to the
/// public validator (the default badge would reach the internet).
fn swagger_config() -> Arc<Config<'static>> {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(Config::new(["openapi.json"]).validator_url("none")))
        .clone()
}

/// One of Swagger UI's files. Its own `index.html` is not served: `/docs` is
/// the page (its relative URLs differ).
fn swagger_ui_file(file: &str) -> HandlerResult {
    if file.is_empty() || file == "index.html" {
        return Err(ApiError::RouteNotFound);
    }
    let found = utoipa_swagger_ui::serve(file, swagger_config())
        .map_err(|e| ApiError::internal(format!("swagger ui file {file}: {e}")))?;
    let Some(found) = found else {
        return Err(ApiError::RouteNotFound);
    };
    let body = match String::from_utf8(found.bytes.into_owned()) {
        Ok(text) => Body::Text(text),
        Err(binary) => Body::Binary(binary.into_bytes()),
    };
    Ok(response(
        &found.content_type,
        body,
        Some(ASSET_CACHE_CONTROL),
    ))
}

fn text(content_type: &str, body: String, cache_control: Option<&str>) -> Response<Body> {
    response(content_type, Body::Text(body), cache_control)
}

fn response(content_type: &str, body: Body, cache_control: Option<&str>) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(value) = cache_control.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

//! The API's documentation, served by one function with no caller and no
//! storage: the OpenAPI document ([`crate::openapi`]) at `/openapi.json`,
//! Swagger UI at `/docs` and ReDoc at `/redoc`. Both pages load their files
//! from this function (`/docs/<file>`, `/redoc/<file>`) and the document
//! from the same API, so they work with no internet: their files (npm
//! `swagger-ui-dist` and `redoc`) are vendored in `shared/assets`
//! (`scripts/vendor-docs.sh`) gzip-compressed, and embedded as they are.
//! A client that accepts gzip (every browser) gets those bytes with
//! `Content-Encoding: gzip`; any other gets them decompressed here. Stored
//! uncompressed they made the docs binary 7.9 MB; compressed, 0.84 MB of
//! files instead of 3.1 MB.
//!
//! The pages use relative URLs (`docs/…`, `openapi.json`), so they also work
//! under a path prefix such as an API Gateway stage.

use std::io::Read;
use std::sync::OnceLock;

use lambda_http::http::{HeaderMap, HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, Response};

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

/// Swagger UI's start: this API's document, and no call to the public
/// validator (its default badge would reach the internet).
const SWAGGER_INITIALIZER: &str = r##"window.onload = function() {
  window.ui = SwaggerUIBundle({
    "url": "openapi.json",
    "dom_id": "#swagger-ui",
    "deepLinking": true,
    "layout": "StandaloneLayout",
    "validatorUrl": "none",
    presets: [
      SwaggerUIBundle.presets.apis,
      SwaggerUIStandalonePreset
    ],
    plugins: [
      SwaggerUIBundle.plugins.DownloadUrl
    ]
  });
};
"##;

/// A vendored file: its content type and bytes, gzip-compressed or not.
struct Asset {
    content_type: &'static str,
    bytes: &'static [u8],
    gzip: bool,
}

/// The files the two pages load, by path (licences beside them in
/// `shared/assets`).
fn asset(path: &str) -> Option<Asset> {
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    const PNG: &str = "image/png";
    let (content_type, bytes, gzip): (_, &'static [u8], _) = match path {
        "/redoc/redoc.standalone.js" => (
            JS,
            include_bytes!("../../assets/redoc/redoc.standalone.js.gz"),
            true,
        ),
        "/docs/swagger-ui-bundle.js" => (
            JS,
            include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js.gz"),
            true,
        ),
        "/docs/swagger-ui-standalone-preset.js" => (
            JS,
            include_bytes!("../../assets/swagger-ui/swagger-ui-standalone-preset.js.gz"),
            true,
        ),
        "/docs/swagger-ui.css" => (
            CSS,
            include_bytes!("../../assets/swagger-ui/swagger-ui.css.gz"),
            true,
        ),
        "/docs/index.css" => (
            CSS,
            include_bytes!("../../assets/swagger-ui/index.css.gz"),
            true,
        ),
        "/docs/favicon-32x32.png" => (
            PNG,
            include_bytes!("../../assets/swagger-ui/favicon-32x32.png"),
            false,
        ),
        "/docs/favicon-16x16.png" => (
            PNG,
            include_bytes!("../../assets/swagger-ui/favicon-16x16.png"),
            false,
        ),
        "/docs/swagger-initializer.js" => (JS, SWAGGER_INITIALIZER.as_bytes(), false),
        _ => return None,
    };
    Some(Asset {
        content_type,
        bytes,
        gzip,
    })
}

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
        _ => match asset(path) {
            Some(asset) => serve(asset, accepts_gzip(req.headers())),
            None => Err(ApiError::RouteNotFound),
        },
    }
}

/// The document, serialised once per cold start.
fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(openapi::to_json)
}

/// Whether `Accept-Encoding` allows gzip (`gzip` or `*`, not with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// A vendored file: compressed as stored when the client takes gzip,
/// else decompressed (text as text, so the body stays readable in logs).
fn serve(asset: Asset, gzip_ok: bool) -> HandlerResult {
    let mut response = if !asset.gzip {
        response(
            asset.content_type,
            Body::Binary(asset.bytes.to_vec()),
            Some(ASSET_CACHE_CONTROL),
        )
    } else if gzip_ok {
        let mut response = response(
            asset.content_type,
            Body::Binary(asset.bytes.to_vec()),
            Some(ASSET_CACHE_CONTROL),
        );
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        let mut decoded = String::new();
        flate2::read::GzDecoder::new(asset.bytes)
            .read_to_string(&mut decoded)
            .map_err(|e| ApiError::internal(format!("vendored asset: {e}")))?;
        text(asset.content_type, decoded, Some(ASSET_CACHE_CONTROL))
    };
    if asset.gzip {
        // Caches must key on Accept-Encoding: two bodies for one URL.
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    Ok(response)
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

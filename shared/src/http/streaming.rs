//! Streamed responses (`lambda_http::run_with_streaming_response`): the
//! body type the streaming functions answer with, built from a stream of
//! chunks, or from a buffered body for their error and preflight answers.
//! Lambda sends each chunk as it is produced, so a function's memory holds
//! one chunk at a time, not the whole response.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http_body::Frame;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use lambda_http::http::{HeaderName, HeaderValue, StatusCode};
use lambda_http::{Body, Response};

use super::error::ApiError;
use super::logging::Invocation;
use crate::adapters::xray;

/// Why a stream stopped early. Once the head (200) is sent, a failure can
/// only end the body abnormally: Lambda then signals the error to the
/// client (the chunked body ends without its last chunk), which reads it as
/// a broken transfer, never as a complete answer.
pub type StreamError = Box<dyn std::error::Error + Send + Sync>;

/// The body of a streamed response.
pub type StreamedBody = UnsyncBoxBody<Bytes, StreamError>;

/// A body that sends each item of `chunks` as it comes. The runtime polls
/// it after the handler's future is done, outside the invocation's scope:
/// each poll is put back in it, so the stream's log lines carry the
/// invocation's keys and its DynamoDB calls are traced under its segment.
pub fn from_stream<S>(chunks: S) -> StreamedBody
where
    S: Stream<Item = Result<Bytes, ApiError>> + Send + 'static,
{
    let chunks = InInvocation {
        inner: Box::pin(chunks),
        invocation: Invocation::current(),
        trace: xray::captured(),
    };
    let frames = chunks
        .map_ok(Frame::data)
        .map_err(|error| -> StreamError { Box::new(error) });
    http_body_util::StreamBody::new(frames).boxed_unsync()
}

/// A stream polled in the scope of the invocation that made it.
struct InInvocation<S> {
    inner: Pin<Box<S>>,
    invocation: Option<Arc<Invocation>>,
    trace: Option<xray::Trace>,
}

impl<S: Stream> Stream for InInvocation<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let inner = &mut this.inner;
        Invocation::sync_in(this.invocation.clone(), || {
            xray::in_trace_sync(this.trace.clone(), || inner.as_mut().poll_next(cx))
        })
    }
}

/// A buffered response (an error, a preflight) as a streamed one.
pub fn buffered(response: Response<Body>) -> Response<StreamedBody> {
    response.map(|body| body.map_err(|e| -> StreamError { e }).boxed_unsync())
}

/// A 200 streaming `body`, with these headers (content type first).
pub fn ok(
    headers: &[(HeaderName, &'static str)],
    body: StreamedBody,
) -> Result<Response<StreamedBody>, ApiError> {
    let mut response = Response::builder().status(StatusCode::OK);
    for (name, value) in headers {
        response = response.header(name, HeaderValue::from_static(value));
    }
    response.body(body).map_err(ApiError::internal)
}

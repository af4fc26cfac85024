//! One request and its reply as the routes see them: the HTTP layer
//! (`http.rs`) makes the first from the wire and writes the second to it.

use std::collections::HashMap;

use bytes::Bytes;
use hyper::Method;
use zeroize::Zeroizing;

/// One request, as the routes see it.
pub struct Req {
    pub method: Method,
    /// Path segments after the optional `/v1.NN` prefix, percent-decoded.
    pub segments: Vec<String>,
    pub query: HashMap<String, String>,
    /// The body; zeroized when the request is done (it may hold a secret).
    pub body: Zeroizing<Vec<u8>>,
    /// The `X-Registry-Auth` header (empty without one); zeroized too.
    pub registry_auth: Zeroizing<Vec<u8>>,
}

impl Req {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    /// Docker's boolean query values: `1`, `true`, `True`, …
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.query(key), Some(v) if v == "1" || v.eq_ignore_ascii_case("true"))
    }
}

/// What a route answers.
pub enum Reply {
    Json(u16, serde_json::Value),
    Empty(u16),
    /// A body with its content type (`_ping`'s `OK`).
    Raw(u16, &'static str, Vec<u8>),
    /// A body sent as it is produced (chunked): log streams.
    Stream(&'static str, ByteStream),
}

pub type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = Bytes> + Send>>;

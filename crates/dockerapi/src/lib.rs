//! The Docker Engine API facade: the subset of API 1.41 that the docker CLI's
//! `swarm`, `node`, `secret`, `config`, `service` and `network` commands use,
//! served over HTTP/1.1 on a unix socket or loopback TCP, on top of the same
//! control service the `swarmkeep` CLI calls (in process: no second path to
//! the store).
//!
//! The contract (requests, responses, status codes, error texts) is
//! `../shared/reference/docker-api.md`; object shapes come from
//! `swarmkeep_api::engine` so `docker … inspect` and `swarmkeep … inspect`
//! print the same JSON.
//!
//! Architecture invariant: a secret's payload enters only through
//! `POST /secrets/create`, is decoded from the request body straight into the
//! buffer the control service wraps in `SecretBytes` (the body buffer is
//! zeroized), and no response, error or log line carries it.

mod error;
mod exchange;
mod filters;
mod gojson;
mod http;
mod routes;
mod spec;

pub use http::{Listener, serve};

/// The API version this facade speaks (every docker CLI from 20.10 to 29.x
/// negotiates down to it).
pub const API_VERSION: &str = "1.41";
/// The oldest API version it accepts in a versioned path.
pub const MIN_API_VERSION: &str = "1.24";

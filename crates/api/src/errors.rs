//! How a control API error is shown to an operator — the one place that maps a
//! gRPC status to the text Docker prints after `Error response from daemon: `.
//!
//! swarmkit's errors reach Docker users as Go's gRPC error string
//! (`rpc error: code = AlreadyExists desc = secret x already exists`), while
//! errors the Docker daemon makes itself (lookups, "not a swarm manager") are
//! shown bare. A status carries which of the two it is in its metadata.

use tonic::{Code, Status};

const PLAIN_KEY: &str = "x-swarmkeep-plain";

/// An error shown as swarmkit's: `rpc error: code = <Code> desc = <message>`.
pub fn rpc(code: Code, message: impl Into<String>) -> Status {
    Status::new(code, message)
}

/// An error shown bare, as the Docker daemon's own errors are.
pub fn plain(code: Code, message: impl Into<String>) -> Status {
    let mut status = Status::new(code, message);
    status
        .metadata_mut()
        .insert(PLAIN_KEY, tonic::metadata::MetadataValue::from_static("1"));
    status
}

/// The message Docker would print for `status` (without the
/// `Error response from daemon: ` prefix).
pub fn docker_message(status: &Status) -> String {
    if status.metadata().contains_key(PLAIN_KEY) {
        status.message().to_string()
    } else {
        format!(
            "rpc error: code = {} desc = {}",
            go_code_name(status.code()),
            status.message()
        )
    }
}

/// Go's `codes.Code.String()` names.
fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// The HTTP status the Docker Engine API answers for a gRPC code.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::InvalidArgument | Code::OutOfRange => 400,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied | Code::Unauthenticated => 403,
        Code::FailedPrecondition => 400,
        Code::Unavailable => 503,
        Code::Unimplemented => 501,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_errors_read_like_go_grpc() {
        let s = rpc(Code::AlreadyExists, "secret db already exists");
        assert_eq!(
            docker_message(&s),
            "rpc error: code = AlreadyExists desc = secret db already exists"
        );
    }

    #[test]
    fn plain_errors_are_bare() {
        let s = plain(Code::NotFound, "secret nope not found");
        assert_eq!(docker_message(&s), "secret nope not found");
        assert_eq!(http_status(s.code()), 404);
    }
}

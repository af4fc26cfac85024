//! Errors as the Docker daemon sends them: `{"message": …}` with
//! `Content-Type: application/json` and the status code Docker uses, so the
//! CLI prints `Error response from daemon: <message>`.

use swarmkeep_api::errors::{docker_message, http_status};
use tonic::Status;

#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
}

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        Self {
            status: http_status(s.code()),
            message: docker_message(&s),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

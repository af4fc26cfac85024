//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: the tasks' output,
//! gathered from their agents through the control service, framed as
//! Docker's multiplexed stream (`[stream, 0, 0, 0, len_be32] payload`), each
//! line prefixed with the details the docker CLI reads its `name.slot.task@node`
//! prefix from.

use bytes::Bytes;
use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{LogMessage, ServiceLogsRequest};
use swarmkeep_api::timefmt::{parse_tail, rfc3339_nano_ns};

use super::{Api, call};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{Reply, Req};

/// Docker's `since`: Unix seconds, optionally with a fraction (`1700000000.5`).
fn parse_since(raw: &str) -> ApiResult<i64> {
    if raw.is_empty() || raw == "0" {
        return Ok(0);
    }
    let bad = || ApiError::bad_request(format!("invalid value for \"since\": {raw:?} is not a Unix timestamp"));
    let (secs, frac) = raw.split_once('.').unwrap_or((raw, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse().map_err(|_| bad())?
    };
    secs.checked_mul(1_000_000_000)
        .and_then(|s| s.checked_add(nanos))
        .ok_or_else(bad)
}

fn frame(m: &LogMessage, timestamps: bool, details: bool) -> Bytes {
    let mut payload = Vec::with_capacity(m.data.len() + 200);
    if timestamps {
        payload.extend_from_slice(rfc3339_nano_ns(m.timestamp_ns).as_bytes());
        payload.push(b' ');
    }
    if details {
        payload.extend_from_slice(
            format!(
                "com.docker.swarm.node.id={},com.docker.swarm.service.id={},com.docker.swarm.task.id={} ",
                m.node_id, m.service_id, m.task_id
            )
            .as_bytes(),
        );
    }
    payload.extend_from_slice(&m.data);
    if !payload.ends_with(b"\n") {
        payload.push(b'\n');
    }
    let mut out = Vec::with_capacity(payload.len() + 8);
    let stream = if m.stream == 2 { 2u8 } else { 1u8 };
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&payload);
    Bytes::from(out)
}

impl<C: Control> Api<C> {
    pub async fn logs(&self, service: &str, task: &str, req: &Req) -> ApiResult<Reply> {
        let (stdout, stderr) = (req.flag("stdout"), req.flag("stderr"));
        if !stdout && !stderr {
            return Err(ApiError::bad_request(
                "Bad parameters: you must choose at least one stream",
            ));
        }
        let tail = parse_tail(req.query("tail")).map_err(ApiError::bad_request)?;
        let since_ns = parse_since(req.query("since").unwrap_or(""))?;
        let (timestamps, details) = (req.flag("timestamps"), req.flag("details"));
        let follow = req.flag("follow");
        let stream = call!(
            self,
            service_logs,
            ServiceLogsRequest {
                service: service.to_string(),
                task: task.to_string(),
                follow,
                has_tail: tail.is_some(),
                tail: tail.unwrap_or(0),
                since_ns,
            }
        )?;
        use tokio_stream::StreamExt;
        let frames = stream
            // An error midway (the leader stepped down) ends the stream.
            .map_while(Result::ok)
            .filter(move |m| (m.stream == 2 && stderr) || (m.stream != 2 && stdout))
            .map(move |m| frame(&m, timestamps, details));
        Ok(Reply::Stream(
            "application/vnd.docker.multiplexed-stream",
            Box::pin(frames),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_seconds_and_fractions() {
        assert_eq!(parse_since("").unwrap(), 0);
        assert_eq!(parse_since("12").unwrap(), 12_000_000_000);
        assert_eq!(parse_since("12.5").unwrap(), 12_500_000_000);
        assert_eq!(parse_since("x").unwrap_err().status, 400);
        assert_eq!(parse_since("99999999999999999").unwrap_err().status, 400);
    }

    #[test]
    fn frames_are_dockers_multiplexed_stream() {
        let m = LogMessage {
            node_id: "n".into(),
            service_id: "s".into(),
            task_id: "t".into(),
            stream: 2,
            timestamp_ns: 1_500_000_000,
            data: b"hello".to_vec(),
        };
        let f = frame(&m, true, true);
        let payload = b"1970-01-01T00:00:01.5Z com.docker.swarm.node.id=n,com.docker.swarm.service.id=s,com.docker.swarm.task.id=t hello\n";
        assert_eq!(&f[..4], &[2, 0, 0, 0]);
        assert_eq!(u32::from_be_bytes([f[4], f[5], f[6], f[7]]) as usize, payload.len());
        assert_eq!(&f[8..], payload);
    }
}

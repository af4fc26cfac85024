//! `GET /events`: the swarm's events as dockerd 20.10 streams them
//! (`{"Type":"service","Action":"update","Actor":{"ID":…,"Attributes":{"name":…}},
//! "scope":"swarm","time":…,"timeNano":…}`, one JSON document per line), with
//! `since` (the kept events from then on), `until` (stop then; in the past:
//! the kept events only) and `filters` matched as dockerd's events filter
//! matches them. This daemon's containers are the agent's tasks, whose
//! lifecycle events are not streamed.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use swarmkeep_api::control::control_server::Control;
use swarmkeep_api::control::{Event, EventsRequest};

use super::{Api, call};
use crate::error::{ApiError, ApiResult};
use crate::exchange::{ByteStream, Reply, Req};
use crate::filters::Filters;

/// dockerd's `timetypes.ParseTimestamps`: `seconds[.fraction]`; `None` if not
/// given.
fn event_time(raw: &str) -> ApiResult<Option<i64>> {
    if raw.is_empty() {
        return Ok(None);
    }
    let parse = |part: &str| {
        part.parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("strconv.ParseInt: parsing {part:?}: invalid syntax")))
    };
    let (secs, frac) = match raw.split_once('.') {
        Some((s, f)) => (parse(s)?, Some(f)),
        None => (parse(raw)?, None),
    };
    let nanos = match frac {
        None => 0,
        Some(f) => {
            let n = parse(f)?;
            // As dockerd: the fraction's digits scaled to nanoseconds.
            let scale = 9 - i32::try_from(f.len()).unwrap_or(9).min(9);
            n.saturating_mul(10i64.pow(scale.max(0).unsigned_abs()))
        }
    };
    Ok(Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos)))
}

/// dockerd's `FuzzyMatch`: no value asked, one equal, or one a prefix.
fn fuzzy(filters: &Filters, key: &str, source: &str) -> bool {
    let wanted = filters.get(key);
    wanted.is_empty() || wanted.iter().any(|w| source.starts_with(w.as_str()))
}

fn exact(filters: &Filters, key: &str, source: &str) -> bool {
    let wanted = filters.get(key);
    wanted.is_empty() || wanted.iter().any(|w| w == source)
}

/// dockerd's `events.Filter.Include` for a swarm event.
fn include(filters: &Filters, e: &Event) -> bool {
    let name = e.attributes.get("name").map(String::as_str).unwrap_or("");
    let named = |key: &str| fuzzy(filters, key, &e.id) || fuzzy(filters, key, name);
    exact(filters, "event", &e.action)
        && exact(filters, "type", &e.r#type)
        && exact(filters, "scope", "swarm")
        // Only daemon events match a `daemon` filter.
        && !filters.contains("daemon")
        && ["container", "plugin", "volume", "network", "node", "service", "secret", "config"]
            .iter()
            .all(|key| named(key))
        && exact(filters, "image", &e.id)
        && filters.get("label").iter().all(|kv| match kv.split_once('=') {
            Some((k, v)) => e.attributes.get(k).is_some_and(|a| a == v),
            None => e.attributes.contains_key(kv.as_str()),
        })
}

fn line(e: &Event) -> Bytes {
    let body = serde_json::json!({
        "Type": e.r#type,
        "Action": e.action,
        "Actor": {"ID": e.id, "Attributes": e.attributes},
        "scope": "swarm",
        "time": e.time_ns.div_euclid(1_000_000_000),
        "timeNano": e.time_ns,
    });
    let mut out = serde_json::to_vec(&body).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

fn now_ns() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

impl<C: Control> Api<C> {
    pub(super) async fn events(&self, req: &Req) -> ApiResult<Reply> {
        let raw_since = req.query("since").unwrap_or("");
        let raw_until = req.query("until").unwrap_or("");
        let since = event_time(raw_since)?;
        let until = event_time(raw_until)?;
        if let Some(u) = until
            && u < since.unwrap_or(i64::MIN)
        {
            return Err(ApiError::bad_request(format!(
                "`since` time ({raw_since}) cannot be after `until` time ({raw_until})"
            )));
        }
        let filters = Filters::parse(req.query("filters"))?;
        let history = since.is_some() || until.is_some();
        let only_past = until.is_some_and(|u| u < now_ns());
        let request = EventsRequest {
            history,
            history_only: only_past,
        };
        // A node that is no swarm manager has no swarm events to show.
        let Ok(feed) = call!(self, events, request) else {
            return Ok(Reply::Stream(
                "application/json",
                Box::pin(until_deadline(until, only_past)),
            ));
        };
        // The kept events come first, then the new ones; `since` and `until`
        // choose among them, as dockerd's buffer does.
        let (since, until_ns) = (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX));
        let events = feed.filter_map(move |e| {
            let keep = e
                .ok()
                .filter(|e| include(&filters, e) && e.time_ns >= since && e.time_ns <= until_ns);
            std::future::ready(keep.map(|e| line(&e)))
        });
        let stream: ByteStream = if only_past {
            Box::pin(events)
        } else {
            Box::pin(events.take_until(Box::pin(deadline(until, false))))
        };
        Ok(Reply::Stream("application/json", stream))
    }
}

/// Resolves at `until` (never without one; at once if `only_past`).
async fn deadline(until: Option<i64>, only_past: bool) {
    match (only_past, until) {
        (true, _) => {}
        (false, Some(u)) => tokio::time::sleep(Duration::from_nanos(u64::try_from(u - now_ns()).unwrap_or(0))).await,
        (false, None) => std::future::pending::<()>().await,
    }
}

/// A stream that yields nothing and ends at `until`.
fn until_deadline(until: Option<i64>, only_past: bool) -> impl futures::Stream<Item = Bytes> + Send {
    futures::stream::once(deadline(until, only_past)).filter_map(|()| std::future::ready(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_dockerd_does() {
        assert_eq!(event_time("").unwrap(), None);
        assert_eq!(event_time("2").unwrap(), Some(2_000_000_000));
        assert_eq!(event_time("2.5").unwrap(), Some(2_500_000_000));
        assert_eq!(event_time("2.000000001").unwrap(), Some(2_000_000_001));
        assert_eq!(
            event_time("abc").unwrap_err().message,
            "strconv.ParseInt: parsing \"abc\": invalid syntax"
        );
    }

    fn event(kind: &str, action: &str, id: &str, name: &str) -> Event {
        Event {
            r#type: kind.into(),
            action: action.into(),
            id: id.into(),
            attributes: [("name".to_string(), name.to_string())].into_iter().collect(),
            time_ns: 1,
        }
    }

    #[test]
    fn filters_match_as_dockerds() {
        let f = |raw: &str| Filters::parse(Some(raw)).unwrap();
        let svc = event("service", "update", "abc123", "web");
        assert!(include(&f("{}"), &svc));
        assert!(include(&f(r#"{"type":["service"]}"#), &svc));
        assert!(!include(&f(r#"{"type":["node"]}"#), &svc));
        assert!(include(&f(r#"{"service":["we"]}"#), &svc));
        assert!(include(&f(r#"{"service":["abc"]}"#), &svc));
        assert!(!include(&f(r#"{"service":["x"]}"#), &svc));
        assert!(!include(&f(r#"{"container":["x"]}"#), &svc));
        assert!(include(&f(r#"{"event":["update"],"scope":["swarm"]}"#), &svc));
        assert!(!include(&f(r#"{"scope":["local"]}"#), &svc));
        assert!(!include(&f(r#"{"event":["create"]}"#), &svc));
        assert!(include(&f(r#"{"label":["name=web"]}"#), &svc));
        assert!(!include(&f(r#"{"label":["name=x"]}"#), &svc));
        assert!(!include(&f(r#"{"daemon":["x"]}"#), &svc));
    }
}

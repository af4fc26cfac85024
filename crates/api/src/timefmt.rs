//! Times as Docker prints them.

use prost_types::Timestamp;
use time::OffsetDateTime;

pub fn to_datetime(ts: Option<&Timestamp>) -> OffsetDateTime {
    ts.and_then(|t| {
        OffsetDateTime::from_unix_timestamp(t.seconds)
            .ok()
            .map(|d| d + time::Duration::nanoseconds(i64::from(t.nanos)))
    })
    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn to_timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

/// Go's `.999999999` fraction: nanoseconds with trailing zeros (and a bare
/// dot) removed.
fn go_fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let digits = format!("{nanos:09}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// `YYYY-MM-DD<sep>hh:mm:ss<fraction><zone>` in UTC, the shape both of Go's
/// formats below share.
fn go_layout(ts: Option<&Timestamp>, sep: char, zone: &str) -> String {
    let t = to_datetime(ts);
    format!(
        "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}{}{zone}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        go_fraction(t.nanosecond())
    )
}

/// RFC 3339 with nanoseconds, as Go's `time.RFC3339Nano` marshals it in JSON:
/// `2026-11-25T18:48:50.448292634Z`.
/// Go's `time.Duration.String()`: `0s`, `500ms`, `1.5s`, `1m30s`, `2h0m0s`.
pub fn go_duration(ns: u64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, scale) = match ns {
            n if n < 1_000 => ("ns", 1),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        let whole = ns / scale;
        let frac = ns % scale;
        let digits = match scale {
            1 => String::new(),
            1_000 => format!("{frac:03}"),
            _ => format!("{frac:06}"),
        };
        let digits = digits.trim_end_matches('0');
        return if digits.is_empty() {
            format!("{whole}{unit}")
        } else {
            format!("{whole}.{digits}{unit}")
        };
    }
    let secs = ns / 1_000_000_000;
    let fraction = go_fraction(u32::try_from(ns % 1_000_000_000).unwrap_or(0));
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}{fraction}s"),
        (0, _) => format!("{m}m{s}{fraction}s"),
        _ => format!("{h}h{m}m{s}{fraction}s"),
    }
}

pub fn rfc3339_nano(ts: Option<&Timestamp>) -> String {
    go_layout(ts, 'T', "Z")
}

/// [`rfc3339_nano`] of Unix nanoseconds (log line times).
pub fn rfc3339_nano_ns(ns: i64) -> String {
    let ts = Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: i32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0),
    };
    rfc3339_nano(Some(&ts))
}

/// Docker's `tail` of a log call: `all` (or a negative number) for every
/// line, else the last N.
pub fn parse_tail(raw: Option<&str>) -> Result<Option<u64>, String> {
    match raw {
        None | Some("") | Some("all") => Ok(None),
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n < 0 => Ok(None),
            Ok(n) => Ok(Some(n.unsigned_abs())),
            Err(_) => Err(format!("invalid value for \"tail\": {n:?}")),
        },
    }
}

/// Go's `time.Time.String()` in UTC, as Docker's `--pretty` shows it after
/// lower-casing everything but the first letter:
/// `2026-11-25 18:48:50.448292634 +0000 utc`.
pub fn pretty(ts: Option<&Timestamp>) -> String {
    go_layout(ts, ' ', " +0000 utc")
}

/// go-units' `HumanDuration` plus " ago", as the CREATED columns show it.
pub fn ago(ts: Option<&Timestamp>, now: OffsetDateTime) -> String {
    format!("{} ago", human_duration(now - to_datetime(ts)))
}

/// go-units' `HumanDuration`: `Less than a second`, `5 seconds`, `About a minute`, …
pub fn human_duration(d: time::Duration) -> String {
    let seconds = d.whole_seconds();
    let minutes = d.whole_minutes();
    let hours_rounded = (d.as_seconds_f64() / 3600.0 + 0.5) as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours_rounded == 1 {
        "About an hour".into()
    } else if hours_rounded < 48 {
        format!("{hours_rounded} hours")
    } else if hours_rounded < 24 * 7 * 2 {
        format!("{} days", hours_rounded / 24)
    } else if hours_rounded < 24 * 30 * 2 {
        format!("{} weeks", hours_rounded / 24 / 7)
    } else if hours_rounded < 24 * 365 * 2 {
        format!("{} months", hours_rounded / 24 / 30)
    } else {
        format!("{} years", d.whole_hours() / 24 / 365)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64, nanos: i32) -> Timestamp {
        Timestamp { seconds, nanos }
    }

    #[test]
    fn formats_like_go() {
        // 2026-11-25T18:48:50Z
        let t = ts(1795632530, 448292634);
        assert_eq!(rfc3339_nano(Some(&t)), "2026-11-25T18:48:50.448292634Z");
        assert_eq!(pretty(Some(&t)), "2026-11-25 18:48:50.448292634 +0000 utc");
        assert_eq!(
            rfc3339_nano(Some(&ts(1795632530, 503235600))),
            "2026-11-25T18:48:50.5032356Z"
        );
        assert_eq!(rfc3339_nano(Some(&ts(1795632530, 0))), "2026-11-25T18:48:50Z");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(500_000_000), "500ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(30_000_000_000), "30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(7_200_000_000_000), "2h0m0s");
    }

    #[test]
    fn human_durations() {
        let t = ts(1795632530, 0);
        let at = |secs: i64| to_datetime(Some(&t)) + time::Duration::seconds(secs);
        assert_eq!(ago(Some(&t), at(0)), "Less than a second ago");
        assert_eq!(ago(Some(&t), at(1)), "1 second ago");
        assert_eq!(ago(Some(&t), at(59)), "59 seconds ago");
        assert_eq!(ago(Some(&t), at(60)), "About a minute ago");
        assert_eq!(ago(Some(&t), at(300)), "5 minutes ago");
        assert_eq!(ago(Some(&t), at(3600)), "About an hour ago");
        assert_eq!(ago(Some(&t), at(3 * 86400)), "3 days ago");
    }
}

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// A point in time with millisecond precision, in UTC; what `meta.lastUpdated` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(i64);

impl Instant {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// Milliseconds since the Unix epoch.
    pub fn from_epoch_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub fn epoch_millis(self) -> i64 {
        self.0
    }

    /// RFC 3339 with milliseconds and `Z`, e.g. `2026-11-22T10:54:00.123Z` (a FHIR `instant`).
    pub fn to_rfc3339(self) -> String {
        self.as_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// The HTTP-date form used in `Last-Modified`.
    pub fn to_http_date(self) -> String {
        self.as_datetime()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
    }

    fn as_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_print_as_fhir_instants_and_http_dates() {
        let t = Instant::from_epoch_millis(1_700_000_000_123);
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.123Z");
        assert_eq!(t.to_http_date(), "Tue, 14 Nov 2023 22:13:20 GMT");
    }
}

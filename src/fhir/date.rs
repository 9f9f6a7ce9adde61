//! FHIR `date`, `dateTime` and `instant` values as half-open ranges of epoch milliseconds: a
//! value means the whole span its precision covers (`2024` is all of 2024), which is how FHIR
//! search compares dates (R4 §3.1.1.4.7).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// `[start_ms, end_ms)`: milliseconds since the Unix epoch, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateRange {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Parses a FHIR date, dateTime or instant. Values without a time zone are read as UTC.
pub fn parse_date_range(s: &str) -> Option<DateRange> {
    let s = s.trim();
    if s.len() < 4 || !s.is_char_boundary(4) {
        return None;
    }
    match s.len() {
        4 => {
            let year: i32 = s.parse().ok()?;
            let start = NaiveDate::from_ymd_opt(year, 1, 1)?;
            let end = NaiveDate::from_ymd_opt(year + 1, 1, 1)?;
            Some(day_span(start, end))
        }
        7 => {
            let year: i32 = s.get(0..4)?.parse().ok()?;
            if s.as_bytes()[4] != b'-' {
                return None;
            }
            let month: u32 = s.get(5..7)?.parse().ok()?;
            let start = NaiveDate::from_ymd_opt(year, month, 1)?;
            let end = if month == 12 {
                NaiveDate::from_ymd_opt(year + 1, 1, 1)?
            } else {
                NaiveDate::from_ymd_opt(year, month + 1, 1)?
            };
            Some(day_span(start, end))
        }
        10 => {
            let day = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            Some(day_span(day, day.succ_opt()?))
        }
        _ => parse_date_time(s),
    }
}

fn day_span(start: NaiveDate, end: NaiveDate) -> DateRange {
    DateRange {
        start_ms: midnight_ms(start),
        end_ms: midnight_ms(end),
    }
}

fn midnight_ms(d: NaiveDate) -> i64 {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
        .timestamp_millis()
}

fn parse_date_time(s: &str) -> Option<DateRange> {
    // Precision decides the span: minutes, seconds, or the given fraction of a second.
    let (body, offset) = split_offset(s);
    let precision_ms: i64 = match body.len() {
        16 => 60_000,
        19 => 1_000,
        n if n > 20 => {
            let digits = n - 20;
            10_i64.pow(3_u32.saturating_sub(digits as u32)).max(1)
        }
        _ => return None,
    };
    let naive = if body.len() == 16 {
        NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M").ok()?
    } else {
        NaiveDateTime::parse_from_str(body, "%Y-%m-%dT%H:%M:%S%.f").ok()?
    };
    let start = match offset {
        None => Utc.from_utc_datetime(&naive).timestamp_millis(),
        Some(offset) => {
            let with_offset = format!("{}{}", naive.format("%Y-%m-%dT%H:%M:%S%.f"), offset);
            DateTime::parse_from_rfc3339(&with_offset)
                .ok()?
                .timestamp_millis()
        }
    };
    if naive.year() < 1 {
        return None;
    }
    Some(DateRange {
        start_ms: start,
        end_ms: start + precision_ms,
    })
}

/// Splits `2024-01-02T03:04:05+01:00` into the local part and `+01:00` (or `Z`).
fn split_offset(s: &str) -> (&str, Option<&str>) {
    if let Some(body) = s.strip_suffix('Z') {
        return (body, Some("Z"));
    }
    if s.len() > 19 {
        let tail_start = s.len() - 6;
        if s.is_char_boundary(tail_start) {
            let tail = &s[tail_start..];
            if (tail.starts_with('+') || tail.starts_with('-')) && tail.as_bytes()[3] == b':' {
                return (&s[..tail_start], Some(tail));
            }
        }
    }
    (s, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
    }

    #[test]
    fn a_year_covers_the_whole_year() {
        let r = parse_date_range("2024").unwrap();
        assert_eq!(r.start_ms, ms("2024-01-01T00:00:00Z"));
        assert_eq!(r.end_ms, ms("2025-01-01T00:00:00Z"));
    }

    #[test]
    fn months_and_days_cover_their_span() {
        let r = parse_date_range("2024-12").unwrap();
        assert_eq!(r.end_ms, ms("2025-01-01T00:00:00Z"));
        let r = parse_date_range("2024-02-28").unwrap();
        assert_eq!(r.end_ms - r.start_ms, 86_400_000);
    }

    #[test]
    fn date_times_respect_offsets_and_precision() {
        let r = parse_date_range("2024-05-01T10:00:00+02:00").unwrap();
        assert_eq!(r.start_ms, ms("2024-05-01T08:00:00Z"));
        assert_eq!(r.end_ms - r.start_ms, 1000);
        let r = parse_date_range("2024-05-01T10:00:00.123Z").unwrap();
        assert_eq!(r.end_ms - r.start_ms, 1);
        let r = parse_date_range("2024-05-01T10:00").unwrap();
        assert_eq!(r.end_ms - r.start_ms, 60_000);
    }

    #[test]
    fn nonsense_is_not_a_date() {
        for bad in [
            "",
            "20",
            "2024-13",
            "2024-02-30",
            "yesterday",
            "2024-05-01T25:00:00Z",
            "ééé",
        ] {
            assert!(parse_date_range(bad).is_none(), "{bad}");
        }
    }
}

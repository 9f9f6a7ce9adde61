//! HL7 v2 DTM/TS values (`YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`) as FHIR dateTime. FHIR
//! needs a time zone whenever a time is given: a value without one is read in the configured
//! local offset of the sending site. Dates alone stay dates, at the precision sent.

use chrono::{FixedOffset, NaiveDate, Offset, TimeZone};

/// The time zone of the sending site, for times sent without an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteZone {
    /// This machine's zone (the `TZ` variable or the system's), daylight saving included.
    System,
    Fixed(FixedOffset),
}

impl SiteZone {
    /// The offset in force at a local date and time (the earlier one in an ambiguous hour).
    fn offset_at(self, local: chrono::NaiveDateTime) -> FixedOffset {
        match self {
            SiteZone::Fixed(offset) => offset,
            SiteZone::System => chrono::Local
                .offset_from_local_datetime(&local)
                .earliest()
                .map(|o| o.fix())
                // A time skipped by a daylight-saving jump: the offset just before it.
                .unwrap_or_else(|| chrono::Local.offset_from_utc_datetime(&local).fix()),
        }
    }
}

impl From<FixedOffset> for SiteZone {
    fn from(offset: FixedOffset) -> Self {
        SiteZone::Fixed(offset)
    }
}

/// Why an HL7 date/time could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")]
pub struct NotADateTime;

/// A DTM taken apart: its fields, how many digits were sent, and its offset.
struct Parsed<'a> {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// 4, 6, 8, 10, 12 or 14: the precision sent.
    digits: usize,
    fraction: Option<&'a str>,
    offset: FixedOffset,
}

fn parse(value: &str, local: SiteZone) -> Result<Parsed<'_>, NotADateTime> {
    let value = value.trim();
    let (stamp, zone) = match value.find(['+', '-']) {
        Some(at) => (&value[..at], Some(&value[at..])),
        None => (value, None),
    };
    let (digits, fraction) = match stamp.split_once('.') {
        Some((digits, fraction)) => (digits, Some(fraction)),
        None => (stamp, None),
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(digits) || ![4, 6, 8, 10, 12, 14].contains(&digits.len()) {
        return Err(NotADateTime);
    }
    if fraction.is_some_and(|f| !numeric(f) || digits.len() != 14) {
        return Err(NotADateTime);
    }
    let offset = match zone {
        Some(zone) => Some({
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits = &zone[1..];
            if digits.len() != 4 || !numeric(digits) {
                return Err(NotADateTime);
            }
            let hours: i32 = digits[..2].parse().map_err(|_| NotADateTime)?;
            let minutes: i32 = digits[2..].parse().map_err(|_| NotADateTime)?;
            if hours > 14 || minutes > 59 {
                return Err(NotADateTime);
            }
            FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60)).ok_or(NotADateTime)?
        }),
        None => None,
    };
    let part = |from: usize, to: usize| digits[from..to].parse::<u32>().map_err(|_| NotADateTime);
    let optional = |from: usize, to: usize, absent: u32| {
        if digits.len() >= to {
            part(from, to)
        } else {
            Ok(absent)
        }
    };
    let (year, month, day) = (part(0, 4)?, optional(4, 6, 1)?, optional(6, 8, 1)?);
    let (hour, minute, second) = (
        optional(8, 10, 0)?,
        optional(10, 12, 0)?,
        optional(12, 14, 0)?,
    );
    let local_time = NaiveDate::from_ymd_opt(year as i32, month, day)
        .and_then(|d| d.and_hms_opt(hour, minute, second))
        .ok_or(NotADateTime)?;
    Ok(Parsed {
        year,
        month,
        day,
        hour,
        minute,
        second,
        digits: digits.len(),
        fraction,
        offset: offset.unwrap_or_else(|| local.offset_at(local_time)),
    })
}

/// The FHIR dateTime for an HL7 DTM, `local` being the zone assumed when it has no offset.
pub fn to_fhir_datetime(value: &str, local: SiteZone) -> Result<String, NotADateTime> {
    let p = parse(value, local)?;
    let (year, month, day) = (p.year, p.month, p.day);
    Ok(match p.digits {
        4 => format!("{year:04}"),
        6 => format!("{year:04}-{month:02}"),
        8 => format!("{year:04}-{month:02}-{day:02}"),
        _ => {
            let fraction = p.fraction.map(|f| format!(".{f}")).unwrap_or_default();
            format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}{}",
                p.hour, p.minute, p.second, p.offset
            )
        }
    })
}

/// The first instant a DTM covers (the start of its year for `2024`), for comparing with now.
/// Dates without a time are read in the `local` offset.
pub fn earliest_instant(
    value: &str,
    local: SiteZone,
) -> Result<chrono::DateTime<chrono::Utc>, NotADateTime> {
    let p = parse(value, local)?;
    p.offset
        .with_ymd_and_hms(p.year as i32, p.month, p.day, p.hour, p.minute, p.second)
        .single()
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok_or(NotADateTime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> SiteZone {
        FixedOffset::east_opt(0).unwrap().into()
    }

    #[test]
    fn dates_keep_their_precision_and_times_get_a_zone() {
        assert_eq!(to_fhir_datetime("2024", utc()).unwrap(), "2024");
        assert_eq!(to_fhir_datetime("202401", utc()).unwrap(), "2024-01");
        assert_eq!(to_fhir_datetime("20240105", utc()).unwrap(), "2024-01-05");
        assert_eq!(
            to_fhir_datetime("202401050830", utc()).unwrap(),
            "2024-01-05T08:30:00+00:00"
        );
        let cet: SiteZone = FixedOffset::east_opt(3600).unwrap().into();
        assert_eq!(
            to_fhir_datetime("20240105083015", cet).unwrap(),
            "2024-01-05T08:30:15+01:00"
        );
        assert_eq!(
            to_fhir_datetime("20240105083015.25-0500", cet).unwrap(),
            "2024-01-05T08:30:15.25-05:00"
        );
    }

    #[test]
    fn the_earliest_instant_is_the_start_of_what_was_sent() {
        let cet: SiteZone = FixedOffset::east_opt(3600).unwrap().into();
        assert_eq!(
            earliest_instant("2024", cet).unwrap().to_rfc3339(),
            "2023-12-31T23:00:00+00:00"
        );
        assert_eq!(
            earliest_instant("202401050830-0500", cet)
                .unwrap()
                .to_rfc3339(),
            "2024-01-05T13:30:00+00:00"
        );
    }

    #[test]
    fn impossible_or_malformed_values_are_refused() {
        for bad in [
            "",
            "24",
            "2024013",
            "20240230",
            "20241305",
            "2024010525",
            "20240105086",
            "2024-01-05",
            "20240105083015+05",
            "20240105.5",
            "yesterday",
        ] {
            assert_eq!(to_fhir_datetime(bad, utc()), Err(NotADateTime), "{bad}");
        }
    }
}

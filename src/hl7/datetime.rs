//! HL7 v2 DTM/TS values (`YYYY[MM[DD[HH[MM[SS[.S…]]]]]][+/-ZZZZ]`) as FHIR dateTime. FHIR
//! needs a time zone whenever a time is given: a value without one is read in the configured
//! local offset of the sending site. Dates alone stay dates, at the precision sent.

use chrono::FixedOffset;

/// Why an HL7 date/time could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not an HL7 date/time (YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ])")]
pub struct NotADateTime;

/// The FHIR dateTime for an HL7 DTM, `local` being the offset assumed when it has none.
pub fn to_fhir_datetime(value: &str, local: FixedOffset) -> Result<String, NotADateTime> {
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
        Some(zone) => {
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
        }
        None => local,
    };
    let part = |from: usize, to: usize| digits[from..to].parse::<u32>().map_err(|_| NotADateTime);
    let year = part(0, 4)?;
    let month = if digits.len() >= 6 { part(4, 6)? } else { 1 };
    let day = if digits.len() >= 8 { part(6, 8)? } else { 1 };
    if chrono::NaiveDate::from_ymd_opt(year as i32, month, day).is_none() {
        return Err(NotADateTime);
    }
    match digits.len() {
        4 => return Ok(format!("{year:04}")),
        6 => return Ok(format!("{year:04}-{month:02}")),
        8 => return Ok(format!("{year:04}-{month:02}-{day:02}")),
        _ => {}
    }
    let hour = part(8, 10)?;
    let minute = if digits.len() >= 12 { part(10, 12)? } else { 0 };
    let second = if digits.len() >= 14 { part(12, 14)? } else { 0 };
    if hour > 23 || minute > 59 || second > 59 {
        return Err(NotADateTime);
    }
    let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}{offset}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
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
        let cet = FixedOffset::east_opt(3600).unwrap();
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

//! Durations as people write them: the unit a cohort's follow-up times are in, and a prediction
//! horizon (`5y`, `6 months`, `90d`, or a FHIR Quantity such as 5 `a`). One grammar serves the
//! command line, the `horizon` parameter of `$risk-assessment` and the model package's
//! manifest; a unit it does not know is an error, never taken as days.

use std::fmt;
use std::str::FromStr;

/// Days in a year, as survival analyses count them (a Julian year).
pub const DAYS_PER_YEAR: f64 = 365.25;

/// The unit of a time: days, weeks, months (a twelfth of a year) or years (365.25 days).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum TimeUnit {
    Days,
    Weeks,
    Months,
    Years,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DurationError {
    #[error("unknown time unit `{0}`: expected d, wk, mo or a (days, weeks, months, years)")]
    UnknownUnit(String),
    #[error(
        "`{0}` is not a duration: expected a positive number and a unit, such as 5y, 6mo or 90d"
    )]
    Malformed(String),
    #[error("`{0}` has no unit: expected a unit after the number, such as 5y, 6mo or 90d")]
    NoUnit(String),
}

impl TimeUnit {
    pub const ALL: [TimeUnit; 4] = [
        TimeUnit::Days,
        TimeUnit::Weeks,
        TimeUnit::Months,
        TimeUnit::Years,
    ];

    /// Its name in the plural, as configuration and manifests write it.
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Days => "days",
            TimeUnit::Weeks => "weeks",
            TimeUnit::Months => "months",
            TimeUnit::Years => "years",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            TimeUnit::Days => "day",
            TimeUnit::Weeks => "week",
            TimeUnit::Months => "month",
            TimeUnit::Years => "year",
        }
    }

    /// Its UCUM code (`d`, `wk`, `mo`, `a`).
    pub fn ucum(self) -> &'static str {
        match self {
            TimeUnit::Days => "d",
            TimeUnit::Weeks => "wk",
            TimeUnit::Months => "mo",
            TimeUnit::Years => "a",
        }
    }

    /// Days in one unit.
    pub fn days(self) -> f64 {
        match self {
            TimeUnit::Days => 1.0,
            TimeUnit::Weeks => 7.0,
            TimeUnit::Months => DAYS_PER_YEAR / 12.0,
            TimeUnit::Years => DAYS_PER_YEAR,
        }
    }
}

impl FromStr for TimeUnit {
    type Err = DurationError;

    /// UCUM codes (`d`, `wk`, `mo`, `a`), the short forms `w`, `m`, `y`, `yr`, and the words,
    /// singular or plural, in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "d" | "day" | "days" => Ok(TimeUnit::Days),
            "w" | "wk" | "week" | "weeks" => Ok(TimeUnit::Weeks),
            "m" | "mo" | "month" | "months" => Ok(TimeUnit::Months),
            "a" | "y" | "yr" | "year" | "years" => Ok(TimeUnit::Years),
            _ => Err(DurationError::UnknownUnit(truncated(text))),
        }
    }
}

impl TryFrom<String> for TimeUnit {
    type Error = DurationError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A prediction horizon: a positive amount of a unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Horizon {
    amount: f64,
    unit: TimeUnit,
}

impl Horizon {
    /// `amount` of `unit`; refused unless positive and finite.
    pub fn new(amount: f64, unit: TimeUnit) -> Result<Self, DurationError> {
        if amount.is_finite() && amount > 0.0 {
            Ok(Self { amount, unit })
        } else {
            Err(DurationError::Malformed(format!("{amount} {unit}")))
        }
    }

    /// `5y`, `5 years`, `6mo`, `90d`, `2 wk`; a bare number is in `bare_unit`, and refused
    /// when there is none.
    pub fn parse(text: &str, bare_unit: Option<TimeUnit>) -> Result<Self, DurationError> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let amount: f64 = number
            .parse()
            .map_err(|_| DurationError::Malformed(truncated(text)))?;
        let unit = match unit.trim() {
            "" => bare_unit.ok_or_else(|| DurationError::NoUnit(truncated(text)))?,
            unit => unit.parse()?,
        };
        Self::new(amount, unit).map_err(|_| DurationError::Malformed(truncated(text)))
    }

    pub fn amount(&self) -> f64 {
        self.amount
    }

    pub fn unit(&self) -> TimeUnit {
        self.unit
    }

    pub fn days(&self) -> f64 {
        self.amount * self.unit.days()
    }

    /// The horizon as a number of `unit`s.
    pub fn in_unit(&self, unit: TimeUnit) -> f64 {
        self.days() / unit.days()
    }

    /// "1 year", "5 years", "6 months", "90 days".
    pub fn label(&self) -> String {
        if self.amount == 1.0 {
            format!("1 {}", self.unit.singular())
        } else {
            format!("{} {}", self.amount, self.unit.name())
        }
    }
}

impl fmt::Display for Horizon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.ucum())
    }
}

/// What is quoted back of a caller's text: enough to recognise it, never a whole payload.
fn truncated(text: &str) -> String {
    text.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizons_are_read_in_one_grammar() {
        let years = |n| Horizon::new(n, TimeUnit::Years).unwrap();
        for text in ["5y", "5 y", "5a", "5 years", "5 Year", "5yr"] {
            assert_eq!(
                Horizon::parse(text, Some(TimeUnit::Days)).unwrap(),
                years(5.0),
                "{text}"
            );
        }
        let six_months = Horizon::parse("6m", Some(TimeUnit::Years)).unwrap();
        assert_eq!(
            six_months,
            Horizon::parse("6mo", Some(TimeUnit::Days)).unwrap()
        );
        assert!((six_months.in_unit(TimeUnit::Years) - 0.5).abs() < 1e-12);
        assert_eq!(
            Horizon::parse("90", Some(TimeUnit::Days)).unwrap().days(),
            90.0
        );
        assert_eq!(
            Horizon::parse("2wk", Some(TimeUnit::Days)).unwrap().days(),
            14.0
        );
        assert_eq!(
            Horizon::parse("1y", Some(TimeUnit::Days)).unwrap().days(),
            365.25
        );
    }

    #[test]
    fn an_unknown_unit_is_an_error_not_days() {
        assert_eq!(
            Horizon::parse("5 fortnights", Some(TimeUnit::Days)),
            Err(DurationError::UnknownUnit("fortnights".into()))
        );
        assert!("hours".parse::<TimeUnit>().is_err());
        assert_eq!(
            Horizon::parse("90", None),
            Err(DurationError::NoUnit("90".into()))
        );
        for bad in ["soon", "-1y", "0d", "", "y", "NaNd", "1e400d"] {
            assert!(Horizon::parse(bad, Some(TimeUnit::Days)).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_name_the_unit_as_written() {
        let label = |text| Horizon::parse(text, Some(TimeUnit::Days)).unwrap().label();
        assert_eq!(label("1y"), "1 year");
        assert_eq!(label("3y"), "3 years");
        assert_eq!(label("6m"), "6 months");
        assert_eq!(label("90"), "90 days");
        assert_eq!(label("1.5a"), "1.5 years");
    }

    #[test]
    fn units_serialise_by_name_and_refuse_unknown_ones() {
        assert_eq!(
            serde_json::to_string(&TimeUnit::Months).unwrap(),
            "\"months\""
        );
        let unit: TimeUnit = serde_json::from_str("\"years\"").unwrap();
        assert_eq!(unit, TimeUnit::Years);
        assert!(serde_json::from_str::<TimeUnit>("\"fortnights\"").is_err());
    }
}

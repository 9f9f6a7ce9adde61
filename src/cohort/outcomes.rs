//! A past cohort's outcome file: what a registry or a follow-up study knows happened to
//! patients, one row each: a CSV file whose header names `patient` (a Patient id, or
//! `system|value` of one of its identifiers), `outcome` (`progression`,
//! `no-evidence-of-disease`, `death`) and `date` (`YYYY-MM-DD`); other columns are ignored.
//! Every bad line is reported, with its number, before anything is used.

use chrono::NaiveDate;

/// What one row says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutcomeKind {
    Progression,
    NoEvidenceOfDisease,
    Death,
}

impl OutcomeKind {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "progression" | "recurrence" => Some(Self::Progression),
            "no-evidence-of-disease" | "ned" => Some(Self::NoEvidenceOfDisease),
            "death" | "died" => Some(Self::Death),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Progression => "progression",
            Self::NoEvidenceOfDisease => "no-evidence-of-disease",
            Self::Death => "death",
        }
    }
}

/// One row as read: its line, who (as written), what and when.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeRow {
    pub line: usize,
    pub patient: String,
    pub kind: OutcomeKind,
    pub date: NaiveDate,
}

/// Why a file was refused: each bad line with why (nothing was filed).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the outcome file was not filed (nothing was): {}", .0.join("; "))]
pub struct OutcomeFileError(pub Vec<String>);

/// An outcome file as read: its rows, and the lines that could not be read, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeFile {
    pub rows: Vec<OutcomeRow>,
    pub problems: Vec<String>,
}

/// The rows of an outcome file and its unreadable lines; an error when it has no usable
/// header or no rows at all.
pub fn read_outcome_file(text: &str, today: NaiveDate) -> Result<OutcomeFile, OutcomeFileError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| OutcomeFileError(vec![format!("the header cannot be read: {e}")]))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(patient), Some(outcome), Some(date)) =
        (column("patient"), column("outcome"), column("date"))
    else {
        return Err(OutcomeFileError(vec![
            "the header must name the columns patient, outcome and date".into(),
        ]));
    };
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = i + 2;
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let field = |at: usize| record.get(at).unwrap_or_default();
        let who = field(patient);
        if who.is_empty() {
            problems.push(format!("line {line}: no patient"));
            continue;
        }
        let Some(kind) = OutcomeKind::parse(field(outcome)) else {
            problems.push(format!(
                "line {line}: outcome `{}` is not one of progression, \
                 no-evidence-of-disease, death",
                field(outcome).chars().take(40).collect::<String>()
            ));
            continue;
        };
        let Ok(on) = NaiveDate::parse_from_str(field(date), "%Y-%m-%d") else {
            problems.push(format!("line {line}: the date is not YYYY-MM-DD"));
            continue;
        };
        if on > today {
            problems.push(format!("line {line}: the date {on} is in the future"));
            continue;
        }
        rows.push(OutcomeRow {
            line,
            patient: who.to_owned(),
            kind,
            date: on,
        });
    }
    if rows.is_empty() && problems.is_empty() {
        return Err(OutcomeFileError(vec!["the file has no rows".into()]));
    }
    Ok(OutcomeFile { rows, problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn every_bad_line_is_named() {
        let text = "patient,outcome,date\n\
                    p1,progression,2025-03-01\n\
                    p2,relapsed,2025-03-01\n\
                    p3,death,01/02/2025\n\
                    ,death,2025-01-01\n\
                    p4,death,2099-01-01\n";
        let file = read_outcome_file(text, day("2026-12-07")).unwrap();
        let err = &file.problems;
        assert_eq!(err.len(), 4, "{err:?}");
        assert!(err[0].starts_with("line 3: outcome `relapsed`"), "{err:?}");
        assert!(err[1].starts_with("line 4: the date"), "{err:?}");
        assert!(err[2].starts_with("line 5: no patient"), "{err:?}");
        assert!(err[3].contains("in the future"), "{err:?}");
        // The good line is read all the same, for the rest of the checks.
        assert_eq!(file.rows.len(), 1);
        assert!(read_outcome_file("who,what\np1,death\n", day("2026-12-07")).is_err());
        assert!(read_outcome_file("patient,outcome,date\n", day("2026-12-07")).is_err());
    }

    #[test]
    fn a_file_reads_its_rows_with_their_lines() {
        let text = "Patient,Outcome,Date,source\n\
                    urn:oid:1|123, Recurrence ,2025-03-01,registry\n\
                    p2,NED,2025-06-30,\n";
        let rows = read_outcome_file(text, day("2026-12-07")).unwrap().rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].patient, "urn:oid:1|123");
        assert_eq!(rows[0].kind, OutcomeKind::Progression);
        assert_eq!(rows[1].kind, OutcomeKind::NoEvidenceOfDisease);
    }
}

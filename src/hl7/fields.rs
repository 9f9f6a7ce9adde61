//! Reading fields out of a parsed segment: escape sequences decoded, the HL7 null (`""`) read
//! as empty, and every problem located by segment occurrence and field.

use hl7_parser::message::{Field, Repeat, Segment, Separators};

use super::ack::{ErrorCondition, ErrorLocation, MessageProblem};

/// One segment of a message, with its occurrence among segments of the same id (1-based).
pub struct SegmentReader<'a, 'm> {
    segment: &'a Segment<'m>,
    separators: &'a Separators,
    pub occurrence: usize,
}

impl<'a, 'm> SegmentReader<'a, 'm> {
    pub fn new(segment: &'a Segment<'m>, separators: &'a Separators, occurrence: usize) -> Self {
        Self {
            segment,
            separators,
            occurrence,
        }
    }

    pub fn name(&self) -> &'m str {
        self.segment.name
    }

    /// Field `n`, when the segment has it.
    pub fn field(&self, n: usize) -> Option<&'a Field<'m>> {
        self.segment.field(n)
    }

    /// Field `n` as sent, escape sequences and all; empty when absent or null.
    pub fn raw(&self, n: usize) -> &'m str {
        let raw = self.segment.field(n).map(|f| f.raw_value()).unwrap_or("");
        if raw == "\"\"" { "" } else { raw }
    }

    /// Component `c` of the first repetition of field `n`, decoded.
    pub fn component(&self, n: usize, c: usize) -> String {
        self.segment
            .field(n)
            .and_then(|f| f.repeat(1))
            .map(|r| self.repeat_component(r, c))
            .unwrap_or_default()
    }

    /// Field `n` (its first repetition, components included) decoded.
    pub fn text(&self, n: usize) -> String {
        self.decode(self.raw(n))
    }

    /// The non-empty repetitions of field `n`.
    pub fn repeats(&self, n: usize) -> Vec<&'a Repeat<'m>> {
        self.segment
            .field(n)
            .map(|f| {
                f.repeats()
                    .filter(|r| !r.is_empty() && r.raw_value() != "\"\"")
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Component `c` of a repetition, decoded.
    pub fn repeat_component(&self, repeat: &Repeat<'m>, c: usize) -> String {
        repeat
            .component(c)
            .map(|c| self.decode(c.raw_value()))
            .unwrap_or_default()
    }

    /// Subcomponent `s` of component `c` of a repetition, decoded.
    pub fn repeat_subcomponent(&self, repeat: &Repeat<'m>, c: usize, s: usize) -> String {
        repeat
            .component(c)
            .and_then(|c| c.subcomponent(s))
            .map(|s| self.decode(s.raw_value()))
            .unwrap_or_default()
    }

    pub fn decode(&self, raw: &str) -> String {
        if raw == "\"\"" {
            return String::new();
        }
        if !raw.contains(self.separators.escape) {
            return raw.to_owned();
        }
        self.separators.decode(raw).to_string()
    }

    pub fn at(&self, field: usize) -> ErrorLocation {
        ErrorLocation {
            segment: self.segment.name.to_owned(),
            occurrence: self.occurrence,
            field,
        }
    }

    /// A problem with field `n` of this segment; `what` names the field and the fault.
    pub fn problem(&self, condition: ErrorCondition, n: usize, what: &str) -> MessageProblem {
        MessageProblem {
            condition,
            location: Some(self.at(n)),
            text: format!("{} #{}: {what}", self.segment.name, self.occurrence),
        }
    }
}

/// A coded element (CE, CWE, CNE: identifier ^ text ^ coding system), from the components
/// starting at `first` (1 for a whole field; 4 for the alternate triplet).
pub fn coded(reader: &SegmentReader<'_, '_>, repeat: &Repeat<'_>, first: usize) -> super::Hl7Code {
    super::Hl7Code {
        code: reader.repeat_component(repeat, first).trim().to_owned(),
        display: reader.repeat_component(repeat, first + 1).trim().to_owned(),
        system: reader.repeat_component(repeat, first + 2).trim().to_owned(),
    }
}

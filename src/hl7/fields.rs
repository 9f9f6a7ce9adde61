//! Reading fields out of a segment: escape sequences decoded, the HL7 null (`""`) read as
//! empty, every problem located by segment occurrence and field.
//!
//! Fields are read lazily: the segment line is split at its field separators, and a field's
//! structure (repetitions, components, subcomponents) is found only when asked for, by
//! splitting that field's text at the next separator down, without copying or allocating.
//! That is all the structure HL7 v2 has: an escape sequence (`\F\`, `\S\` …) never holds a
//! separator, so splitting the raw text is exact, and decoding happens last, on the one value
//! read. A message carries many segments and fields the service never reads (PV1, NK1 …);
//! parsing them all made parsing most of the cost of filing a message, and building
//! hl7-parser's tree of vectors for each field read was still a third of reading a message.

use hl7_parser::message::Separators;

use super::ack::{ErrorCondition, ErrorLocation, MessageProblem};

/// One segment of a message, with its occurrence among segments of the same id (1-based).
pub struct SegmentReader<'m> {
    name: &'m str,
    /// The raw fields, `fields[n - 1]` being field `n`.
    fields: Vec<&'m str>,
    separators: Separators,
    pub occurrence: usize,
}

impl<'m> SegmentReader<'m> {
    /// Splits a segment line (not MSH, whose first field is the separator itself).
    pub fn new(line: &'m str, separators: Separators, occurrence: usize) -> Self {
        let mut parts = line.split(separators.field);
        let name = parts.next().unwrap_or_default();
        Self {
            name,
            fields: parts.collect(),
            separators,
            occurrence,
        }
    }

    pub fn name(&self) -> &'m str {
        self.name
    }

    /// Field `n` as sent, escape sequences and all; empty when absent or null.
    pub fn raw(&self, n: usize) -> &'m str {
        let raw = n
            .checked_sub(1)
            .and_then(|i| self.fields.get(i))
            .copied()
            .unwrap_or("");
        if raw == "\"\"" { "" } else { raw }
    }

    /// Whether `raw` holds no repetition, component or subcomponent separator: then it is one
    /// plain value and needs no parsing.
    fn is_simple(&self, raw: &str) -> bool {
        let s = &self.separators;
        !raw.contains([s.repetition, s.component, s.subcomponent])
    }

    /// Field `n`; `None` when absent or empty.
    pub fn field(&self, n: usize) -> Option<Field<'m>> {
        let raw = self.raw(n);
        if raw.is_empty() {
            return None;
        }
        Some(Field {
            raw,
            separators: self.separators,
        })
    }

    /// Component `c` of the first repetition of field `n`, decoded.
    pub fn component(&self, n: usize, c: usize) -> String {
        let raw = self.raw(n);
        if self.is_simple(raw) {
            return if c == 1 {
                self.decode(raw)
            } else {
                String::new()
            };
        }
        self.field(n)
            .and_then(|f| f.component(c))
            .map(|c| self.decode(c.raw_value()))
            .unwrap_or_default()
    }

    /// Field `n` (its first repetition, components included) decoded.
    pub fn text(&self, n: usize) -> String {
        self.decode(self.raw(n))
    }

    /// The non-empty repetitions of field `n`.
    pub fn repeats(&self, n: usize) -> Vec<Repeat<'m>> {
        self.field(n)
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
            .map(|s| self.decode(s))
            .unwrap_or_default()
    }

    pub fn decode(&self, raw: &str) -> String {
        if raw == "\"\"" {
            return String::new();
        }
        if !raw.contains(self.separators.escape) {
            return raw.to_owned();
        }
        decode_escapes(raw, &self.separators)
    }

    pub fn at(&self, field: usize) -> ErrorLocation {
        ErrorLocation {
            segment: self.name.to_owned(),
            occurrence: self.occurrence,
            field,
        }
    }

    /// A problem with field `n` of this segment; `what` names the field and the fault.
    pub fn problem(&self, condition: ErrorCondition, n: usize, what: &str) -> MessageProblem {
        MessageProblem {
            condition,
            location: Some(self.at(n)),
            text: format!("{} #{}: {what}", self.name, self.occurrence),
        }
    }
}

/// A value with its escape sequences (HL7 v2 §2.7) decoded: `\F\ \S\ \T\ \R\ \E\` as the
/// separators, `\X0D\` and `\.br\` as a carriage return, `\X0A\` as a line feed, other hex
/// data as its text when it is UTF-8; highlighting, character set and formatting sequences are
/// left out; an escape character that is never closed is kept as sent. (hl7-parser's decoder cut the value at
/// character counts taken for byte offsets: wrong after any non-ASCII letter, and a panic when
/// the cut fell inside one.)
pub fn decode_escapes(raw: &str, separators: &Separators) -> String {
    let escape = separators.escape;
    let mut decoded = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find(escape) {
        decoded.push_str(&rest[..start]);
        let after = &rest[start + escape.len_utf8()..];
        let Some(end) = after.find(escape) else {
            decoded.push_str(&rest[start..]);
            return decoded;
        };
        match &after[..end] {
            "F" => decoded.push(separators.field),
            "R" => decoded.push(separators.repetition),
            "S" => decoded.push(separators.component),
            "T" => decoded.push(separators.subcomponent),
            "E" => decoded.push(escape),
            "X0A" => decoded.push('\n'),
            "X0D" | ".br" => decoded.push('\r'),
            hex if hex.starts_with('X') => decoded.push_str(&hex_text(&hex[1..])),
            // Highlighting (H, N), character sets (C, M), local (Z) and formatting commands
            // change how text looks, not what it says.
            _ => {}
        }
        rest = &after[end + escape.len_utf8()..];
    }
    decoded.push_str(rest);
    decoded
}

/// The text of a `\Xhh…\` sequence: its bytes when they are UTF-8 text, else nothing.
fn hex_text(hex: &str) -> String {
    let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
        .map(|i| {
            hex.get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    match bytes {
        Some(bytes) if hex.len().is_multiple_of(2) => String::from_utf8(bytes).unwrap_or_default(),
        _ => String::new(),
    }
}

/// A field as sent (never empty): its repetitions.
#[derive(Debug, Clone, Copy)]
pub struct Field<'m> {
    raw: &'m str,
    separators: Separators,
}

impl<'m> Field<'m> {
    /// The field's text, escape sequences and all.
    pub fn raw_value(&self) -> &'m str {
        self.raw
    }

    /// Its repetitions, empty ones included.
    pub fn repeats(&self) -> impl Iterator<Item = Repeat<'m>> + use<'m> {
        let separators = self.separators;
        self.raw
            .split(separators.repetition)
            .map(move |raw| Repeat { raw, separators })
    }

    /// Component `c` (1-based) of the first repetition.
    pub fn component(&self, c: usize) -> Option<Component<'m>> {
        self.repeats().next()?.component(c)
    }

    /// Whether no repetition holds a value.
    pub fn is_empty(&self) -> bool {
        self.repeats().all(|r| r.is_empty())
    }
}

/// One repetition of a field: its components.
#[derive(Debug, Clone, Copy)]
pub struct Repeat<'m> {
    raw: &'m str,
    separators: Separators,
}

impl<'m> Repeat<'m> {
    /// The repetition's text, escape sequences and all.
    pub fn raw_value(&self) -> &'m str {
        self.raw
    }

    /// Component `c` (1-based); `None` past the last.
    pub fn component(&self, c: usize) -> Option<Component<'m>> {
        let raw = self
            .raw
            .split(self.separators.component)
            .nth(c.checked_sub(1)?)?;
        Some(Component {
            raw,
            subcomponent: self.separators.subcomponent,
        })
    }

    /// Whether it holds nothing but separators.
    pub fn is_empty(&self) -> bool {
        let s = &self.separators;
        self.raw
            .chars()
            .all(|ch| ch == s.component || ch == s.subcomponent)
    }
}

/// One component of a repetition: its subcomponents.
#[derive(Debug, Clone, Copy)]
pub struct Component<'m> {
    raw: &'m str,
    subcomponent: char,
}

impl<'m> Component<'m> {
    /// The component's text, escape sequences and all.
    pub fn raw_value(&self) -> &'m str {
        self.raw
    }

    /// Subcomponent `s` (1-based), as sent; `None` past the last.
    pub fn subcomponent(&self, s: usize) -> Option<&'m str> {
        self.raw.split(self.subcomponent).nth(s.checked_sub(1)?)
    }
}

/// A coded element (CE, CWE, CNE: identifier ^ text ^ coding system), from the components
/// starting at `first` (1 for a whole field; 4 for the alternate triplet).
pub fn coded(reader: &SegmentReader<'_>, repeat: &Repeat<'_>, first: usize) -> super::Hl7Code {
    super::Hl7Code {
        code: reader.repeat_component(repeat, first).trim().to_owned(),
        display: reader.repeat_component(repeat, first + 1).trim().to_owned(),
        system: reader.repeat_component(repeat, first + 2).trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_decode_around_any_letters() {
        let s = Separators::default();
        assert_eq!(
            decode_escapes(r"Müller\S\Straße\T\x\E\y\F\z\R\", &s),
            "Müller^Straße&x\\y|z~"
        );
        assert_eq!(decode_escapes(r"a\X0D\b\X0A\c\.br\", &s), "a\rb\nc\r");
        assert_eq!(decode_escapes(r"\H\bold\N\ \X4869\", &s), "bold Hi");
        // Found by fuzzing: a non-ASCII letter inside an escape sequence.
        assert_eq!(decode_escapes("\\\u{f0f6d}\\ok", &s), "ok");
        assert_eq!(decode_escapes(r"50\ unclosed", &s), r"50\ unclosed");
    }
}

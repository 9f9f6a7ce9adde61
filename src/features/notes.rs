//! Clinical-note text from FHIR attachments: DocumentReference.content.attachment and
//! DiagnosticReport.presentedForm, `text/plain` or `text/html`, inline (`data`, base64). The
//! EHR pull fetches attachments given by URL and puts them inline before they get here.

use base64::Engine;
use serde_json::Value;

/// Why an attachment gave no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("its content type {0} is not text/plain or text/html")]
    Unsupported(String),
    #[error("its data is not valid base64")]
    Base64,
    #[error("it has no inline data (url not fetched)")]
    NoData,
    #[error("it is empty")]
    Empty,
}

/// The text of an attachment.
pub fn attachment_text(attachment: &Value) -> Result<String, NoteError> {
    let content_type = attachment
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("text/plain");
    let mut parameters = content_type.split(';').map(str::trim);
    let media_type = parameters.next().unwrap_or_default().to_ascii_lowercase();
    let latin1 = parameters.any(|p| {
        p.to_ascii_lowercase()
            .strip_prefix("charset=")
            .is_some_and(|c| {
                matches!(
                    c.trim_matches('"'),
                    "iso-8859-1" | "latin1" | "windows-1252"
                )
            })
    });
    if media_type != "text/plain" && media_type != "text/html" {
        return Err(NoteError::Unsupported(media_type));
    }
    let data = attachment
        .get("data")
        .and_then(Value::as_str)
        .ok_or(NoteError::NoData)?;
    let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(cleaned)
        .map_err(|_| NoteError::Base64)?;
    let decoded = if latin1 {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let text = if media_type == "text/html" {
        html_to_text(&decoded)
    } else {
        decoded
    };
    let text = normalise_whitespace(&text);
    if text.is_empty() {
        Err(NoteError::Empty)
    } else {
        Ok(text)
    }
}

/// Lines trimmed, runs of blank lines and spaces collapsed.
fn normalise_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = false;
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        blank = false;
        out.push_str(&line);
    }
    out
}

/// Elements whose content is not text a reader sees.
const HIDDEN: &[&str] = &["script", "style", "head", "title", "template"];
/// Elements that end a line.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "section",
    "article",
    "blockquote",
    "pre",
    "hr",
    "dt",
    "dd",
];

/// The text a reader of an HTML (or XHTML narrative) document sees: tags dropped, block
/// elements on their own lines, table cells apart, entities decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut hidden: Option<String> = None;
    while let Some(start) = rest.find('<') {
        if hidden.is_none() {
            decode_entities(&rest[..start], &mut out);
        }
        rest = &rest[start..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let Some(end) = rest.find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match &hidden {
            Some(open) if closing && *open == name => hidden = None,
            Some(_) => {}
            None if !closing && HIDDEN.contains(&name.as_str()) && !tag.ends_with('/') => {
                hidden = Some(name);
            }
            // Markup line breaks are layout, not paragraph breaks: one is enough.
            None if BLOCKS.contains(&name.as_str()) && !out.ends_with('\n') => out.push('\n'),
            None if name == "td" || name == "th" => out.push(' '),
            None => {}
        }
    }
    if hidden.is_none() {
        decode_entities(rest, &mut out);
    }
    out
}

fn decode_entities(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest[..rest.len().min(12)].find(';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inline(content_type: &str, bytes: &[u8]) -> Value {
        json!({
            "contentType": content_type,
            "data": base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }

    #[test]
    fn plain_text_is_decoded_and_tidied() {
        let note = inline(
            "text/plain",
            b"Patient seen.\r\n\r\n\r\n  Mass   in left breast.  \n",
        );
        assert_eq!(
            attachment_text(&note).unwrap(),
            "Patient seen.\n\nMass in left breast."
        );
        // Latin-1 declared: the byte 0xE9 is é, not an invalid UTF-8 sequence.
        let note = inline("text/plain; charset=ISO-8859-1", b"caf\xe9");
        assert_eq!(attachment_text(&note).unwrap(), "café");
    }

    #[test]
    fn html_keeps_what_a_reader_sees() {
        let html = "<html><head><title>x</title><style>p{color:red}</style></head><body>\
                    <h1>Impression</h1><p>Spiculated mass &amp; <b>no</b> nodes&nbsp;seen.</p>\
                    <!-- internal --><table><tr><td>ER</td><td>positive</td></tr></table>\
                    <script>alert(1)</script>5 &lt; 7 &#233;&#x41;</body></html>";
        let text = attachment_text(&inline("text/html; charset=utf-8", html.as_bytes())).unwrap();
        assert_eq!(
            text,
            "Impression\nSpiculated mass & no nodes seen.\nER positive\n5 < 7 éA"
        );
    }

    #[test]
    fn what_gives_no_text_says_why() {
        assert_eq!(
            attachment_text(&inline("application/pdf", b"%PDF")),
            Err(NoteError::Unsupported("application/pdf".into()))
        );
        assert_eq!(
            attachment_text(&json!({"contentType": "text/plain", "data": "***"})),
            Err(NoteError::Base64)
        );
        assert_eq!(
            attachment_text(&json!({"contentType": "text/plain", "url": "Binary/1"})),
            Err(NoteError::NoData)
        );
        assert_eq!(
            attachment_text(&inline("text/html", b"<p> </p>")),
            Err(NoteError::Empty)
        );
    }
}

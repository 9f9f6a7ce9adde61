//! `multipart/related` bodies (RFC 2046 §5.1, RFC 2387) as STOW-RS sends them: parts split on
//! the boundary, each with its headers and its bytes (sliced from the body, not copied). The
//! whole body is checked before any part is used, so a broken request stores nothing.

use actix_web::web::Bytes;
use memchr::memmem;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    #[error("the Content-Type has no boundary parameter")]
    NoBoundary,
    #[error("the boundary parameter is not 1 to 70 characters")]
    InvalidBoundary,
    #[error("the body does not start with the boundary named in the Content-Type")]
    NoOpeningBoundary,
    #[error(
        "part {part} is not followed by a boundary: the body is truncated or the boundary is wrong"
    )]
    Unterminated { part: usize },
    #[error("part {part} has malformed headers")]
    MalformedHeaders { part: usize },
    #[error("the body has no parts")]
    Empty,
}

/// One body part: its media type (lower-cased, parameters kept) and its bytes.
#[derive(Debug, Clone)]
pub struct Part {
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// The `boundary` parameter of a `multipart/*` Content-Type, unquoted.
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let value = parameter(content_type, "boundary").ok_or(MultipartError::NoBoundary)?;
    if value.is_empty() || value.len() > 70 {
        return Err(MultipartError::InvalidBoundary);
    }
    Ok(value)
}

/// A parameter of a media type (`type`, `boundary`, …), unquoted; names are case-insensitive.
pub fn parameter(media_type: &str, name: &str) -> Option<String> {
    media_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Splits `body` into its parts.
pub fn parse(body: &Bytes, boundary: &str) -> Result<Vec<Part>, MultipartError> {
    let dash_boundary = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let finder = memmem::Finder::new(delimiter.as_bytes());
    // The first boundary may open the body directly, or follow a preamble and a CRLF.
    let mut pos = if body.starts_with(dash_boundary.as_bytes()) {
        dash_boundary.len()
    } else {
        finder
            .find(body)
            .map(|i| i + delimiter.len())
            .ok_or(MultipartError::NoOpeningBoundary)?
    };
    let mut parts = Vec::new();
    loop {
        let part = parts.len() + 1;
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            break; // the close delimiter; anything after it is epilogue
        }
        // Transport padding, then the line break that ends the boundary line.
        let padding = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let after = &rest[padding..];
        let line_break = if after.starts_with(b"\r\n") {
            2
        } else if after.starts_with(b"\n") {
            1
        } else {
            return Err(MultipartError::Unterminated { part: parts.len() });
        };
        let headers_start = pos + padding + line_break;
        let (headers_len, separator_len) = header_block(&body[headers_start..])
            .ok_or(MultipartError::MalformedHeaders { part })?;
        let headers = std::str::from_utf8(&body[headers_start..headers_start + headers_len])
            .map_err(|_| MultipartError::MalformedHeaders { part })?;
        let content_type =
            content_type(headers).map_err(|()| MultipartError::MalformedHeaders { part })?;
        let body_start = headers_start + headers_len + separator_len;
        let body_len = find_delimiter(&finder, &body[body_start..], delimiter.len())
            .ok_or(MultipartError::Unterminated { part })?;
        parts.push(Part {
            content_type,
            body: body.slice(body_start..body_start + body_len),
        });
        pos = body_start + body_len + delimiter.len();
    }
    if parts.is_empty() {
        return Err(MultipartError::Empty);
    }
    Ok(parts)
}

/// Where the next delimiter starts: `CRLF--boundary` followed by `--` (the close delimiter) or
/// by optional padding and a line break. Other matches are part of the body.
fn find_delimiter(
    finder: &memmem::Finder<'_>,
    bytes: &[u8],
    delimiter_len: usize,
) -> Option<usize> {
    finder.find_iter(bytes).find(|&at| {
        let after = &bytes[at + delimiter_len..];
        let padding = after
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        after.starts_with(b"--")
            || after[padding..].starts_with(b"\r\n")
            || after[padding..].starts_with(b"\n")
    })
}

/// The length of a part's header block and of the blank line that ends it. A part without
/// headers starts with the blank line itself.
fn header_block(bytes: &[u8]) -> Option<(usize, usize)> {
    if bytes.starts_with(b"\r\n") {
        return Some((0, 2));
    }
    if bytes.starts_with(b"\n") {
        return Some((0, 1));
    }
    let crlf = memmem::find(bytes, b"\r\n\r\n").map(|i| (i, 4));
    let lf = memmem::find(bytes, b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn content_type(headers: &str) -> Result<Option<String>, ()> {
    let mut found = None;
    for line in headers.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or(())?;
        if name.trim().eq_ignore_ascii_case("content-type") {
            found = Some(value.trim().to_ascii_lowercase());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Bytes {
        Bytes::from(s.replace('\n', "\r\n"))
    }

    #[test]
    fn parts_are_split_on_the_boundary_with_their_media_types() {
        let b = body(
            "preamble\n--XYZ\nContent-Type: application/dicom\n\nfirst\n--XYZ  \n\nsecond\n--XYZ--\nepilogue",
        );
        let parts = parse(&b, "XYZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type.as_deref(), Some("application/dicom"));
        assert_eq!(&parts[0].body[..], b"first");
        assert_eq!(parts[1].content_type, None);
        assert_eq!(&parts[1].body[..], b"second");
    }

    #[test]
    fn binary_bodies_keep_their_line_breaks() {
        let mut raw = b"--b\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
        raw.extend_from_slice(b"\r\n\x00\r\n--bx\r\n");
        raw.extend_from_slice(b"\r\n--b--\r\n");
        let parts = parse(&Bytes::from(raw), "b").unwrap();
        assert_eq!(&parts[0].body[..], b"\r\n\x00\r\n--bx\r\n");
    }

    #[test]
    fn a_missing_close_delimiter_is_an_error() {
        let b = body("--XYZ\nContent-Type: application/dicom\n\nfirst");
        assert_eq!(
            parse(&b, "XYZ").unwrap_err(),
            MultipartError::Unterminated { part: 1 }
        );
    }

    #[test]
    fn a_wrong_boundary_is_an_error() {
        let b = body("--ABC\n\nfirst\n--ABC--");
        assert_eq!(
            parse(&b, "XYZ").unwrap_err(),
            MultipartError::NoOpeningBoundary
        );
        assert_eq!(
            parse(&body("--XYZ--"), "XYZ").unwrap_err(),
            MultipartError::Empty
        );
    }

    #[test]
    fn the_boundary_and_type_come_from_the_content_type() {
        let ct = r#"multipart/related; type="application/dicom"; boundary="a b""#;
        assert_eq!(boundary(ct).unwrap(), "a b");
        assert_eq!(parameter(ct, "TYPE").as_deref(), Some("application/dicom"));
        assert_eq!(
            boundary("multipart/related").unwrap_err(),
            MultipartError::NoBoundary
        );
    }
}

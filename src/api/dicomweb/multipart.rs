//! `multipart/related` bodies (RFC 2046 §5.1, RFC 2387) as STOW-RS sends them: parts split on
//! the boundary as the body arrives, each with its headers and its bytes, so that a request of
//! many instances holds one at a time rather than the whole body.

use actix_web::web::{Bytes, BytesMut};
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

/// Splits a whole `body` into its parts (the streaming reader, fed at once).
pub fn parse(body: &Bytes, boundary: &str) -> Result<Vec<Part>, MultipartError> {
    let mut reader = PartReader::new(boundary);
    reader.push(body);
    let mut parts = Vec::new();
    while let Some(part) = reader.next_part()? {
        parts.push(part);
    }
    reader.finish()?;
    Ok(parts)
}

/// Longest header block of a part; a longer one is malformed (no STOW-RS part needs more).
const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Where the reader is in the body.
#[derive(Debug)]
enum Position {
    /// Before the first boundary: the preamble, skipped (`trimmed`: some of it already was, so
    /// the body no longer starts at the buffer's start).
    Preamble { trimmed: bool },
    /// Just after a boundary: the close delimiter's `--`, or padding and a line break.
    AfterBoundary,
    /// In a part's header block.
    Headers,
    /// In a part's bytes; `scanned` of them are known not to start a delimiter.
    Body {
        content_type: Option<String>,
        scanned: usize,
    },
    /// After the close delimiter: the epilogue, ignored.
    Closed,
}

/// Reads the parts of a `multipart/related` body as its bytes arrive: only the part being read
/// is held, not the whole body. [`PartReader::push`] what has arrived, take the parts it
/// completes with [`PartReader::next_part`], and call [`PartReader::finish`] at the end.
#[derive(Debug)]
pub struct PartReader {
    dash_boundary: Vec<u8>,
    finder: memmem::Finder<'static>,
    delimiter_len: usize,
    buffer: BytesMut,
    position: Position,
    parts: usize,
}

impl PartReader {
    pub fn new(boundary: &str) -> Self {
        let delimiter = format!("\r\n--{boundary}");
        Self {
            dash_boundary: format!("--{boundary}").into_bytes(),
            delimiter_len: delimiter.len(),
            finder: memmem::Finder::new(delimiter.as_bytes()).into_owned(),
            buffer: BytesMut::new(),
            position: Position::Preamble { trimmed: false },
            parts: 0,
        }
    }

    /// Bytes that arrived.
    pub fn push(&mut self, bytes: &[u8]) {
        if !matches!(self.position, Position::Closed) {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// The next complete part; `None` until more bytes arrive (or after the close delimiter).
    pub fn next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        loop {
            match &mut self.position {
                Position::Preamble { trimmed } => {
                    // The first boundary may open the body directly, or follow a preamble
                    // and a CRLF.
                    let opening = self.dash_boundary.len();
                    let at_start = !*trimmed;
                    if at_start
                        && self.buffer.len() < opening
                        && self.dash_boundary.starts_with(&self.buffer)
                    {
                        return Ok(None);
                    }
                    if at_start && self.buffer.starts_with(&self.dash_boundary) {
                        let _ = self.buffer.split_to(opening);
                    } else if let Some(at) = self.finder.find(&self.buffer) {
                        let _ = self.buffer.split_to(at + self.delimiter_len);
                    } else {
                        // Only the preamble's tail can still start the delimiter.
                        let keep = self.delimiter_len - 1;
                        if self.buffer.len() > keep {
                            let _ = self.buffer.split_to(self.buffer.len() - keep);
                            *trimmed = true;
                        }
                        return Ok(None);
                    }
                    self.position = Position::AfterBoundary;
                }
                Position::AfterBoundary => {
                    if self.buffer.len() < 2 {
                        return Ok(None);
                    }
                    if self.buffer.starts_with(b"--") {
                        self.buffer = BytesMut::new();
                        self.position = Position::Closed;
                        continue;
                    }
                    // Transport padding, then the line break that ends the boundary line.
                    let padding = self
                        .buffer
                        .iter()
                        .take_while(|b| **b == b' ' || **b == b'\t')
                        .count();
                    let after = &self.buffer[padding..];
                    let line_break = if after.starts_with(b"\r\n") {
                        2
                    } else if after.starts_with(b"\n") {
                        1
                    } else if after.is_empty() || after == b"\r" {
                        return Ok(None);
                    } else {
                        return Err(MultipartError::Unterminated { part: self.parts });
                    };
                    let _ = self.buffer.split_to(padding + line_break);
                    self.position = Position::Headers;
                }
                Position::Headers => {
                    let part = self.parts + 1;
                    let Some((headers_len, separator_len)) = header_block(&self.buffer) else {
                        if self.buffer.len() > MAX_HEADER_BYTES {
                            return Err(MultipartError::MalformedHeaders { part });
                        }
                        return Ok(None);
                    };
                    let headers = std::str::from_utf8(&self.buffer[..headers_len])
                        .map_err(|_| MultipartError::MalformedHeaders { part })?;
                    let content_type = content_type(headers)
                        .map_err(|()| MultipartError::MalformedHeaders { part })?;
                    let _ = self.buffer.split_to(headers_len + separator_len);
                    self.position = Position::Body {
                        content_type,
                        scanned: 0,
                    };
                }
                Position::Body {
                    content_type,
                    scanned,
                } => match find_delimiter(&self.finder, &self.buffer, *scanned, self.delimiter_len)
                {
                    Delimiter::At(at) => {
                        let part = Part {
                            content_type: content_type.take(),
                            body: self.buffer.split_to(at).freeze(),
                        };
                        let _ = self.buffer.split_to(self.delimiter_len);
                        self.parts += 1;
                        self.position = Position::AfterBoundary;
                        return Ok(Some(part));
                    }
                    Delimiter::NotBefore(at) => {
                        *scanned = at;
                        return Ok(None);
                    }
                },
                Position::Closed => return Ok(None),
            }
        }
    }

    /// The body has ended: an error unless the close delimiter was read after at least one
    /// part (call after [`PartReader::next_part`] has taken every part).
    pub fn finish(&self) -> Result<(), MultipartError> {
        match self.position {
            Position::Closed if self.parts == 0 => Err(MultipartError::Empty),
            Position::Closed => Ok(()),
            Position::Preamble { .. } => Err(MultipartError::NoOpeningBoundary),
            Position::AfterBoundary => Err(MultipartError::Unterminated { part: self.parts }),
            Position::Headers => Err(MultipartError::MalformedHeaders {
                part: self.parts + 1,
            }),
            Position::Body { .. } => Err(MultipartError::Unterminated {
                part: self.parts + 1,
            }),
        }
    }

    /// Bytes kept that no part returned so far holds.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Parts read so far.
    pub fn parts_read(&self) -> usize {
        self.parts
    }
}

/// Where a part's bytes end, as far as what has arrived tells.
#[derive(Debug, PartialEq, Eq)]
enum Delimiter {
    /// The delimiter starts here.
    At(usize),
    /// None starts before this offset; what follows needs more bytes to tell.
    NotBefore(usize),
}

/// Looks for the next delimiter from `from`: `CRLF--boundary` followed by `--` (the close
/// delimiter) or by optional padding and a line break. Other matches are part of the body.
fn find_delimiter(
    finder: &memmem::Finder<'_>,
    bytes: &[u8],
    from: usize,
    delimiter_len: usize,
) -> Delimiter {
    for at in finder.find_iter(&bytes[from..]).map(|i| i + from) {
        let after = &bytes[at + delimiter_len..];
        let padding = after
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let rest = &after[padding..];
        if after.starts_with(b"--") || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return Delimiter::At(at);
        }
        if after.is_empty() || after == b"-" || rest.is_empty() || rest == b"\r" {
            // `CRLF--boundary` at the end of what has arrived: undecided.
            return Delimiter::NotBefore(at);
        }
    }
    // A delimiter may still start in the last bytes, cut short.
    Delimiter::NotBefore(from.max(bytes.len().saturating_sub(delimiter_len - 1)))
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

    type Read = Result<Vec<(Option<String>, Vec<u8>)>, MultipartError>;

    /// Reads `body` fed in the given pieces, as the endpoint does.
    fn read_in_pieces(pieces: &[&[u8]], boundary: &str) -> Read {
        let mut reader = PartReader::new(boundary);
        let mut parts = Vec::new();
        for piece in pieces {
            reader.push(piece);
            while let Some(part) = reader.next_part()? {
                parts.push((part.content_type, part.body.to_vec()));
            }
        }
        reader.finish()?;
        Ok(parts)
    }

    #[test]
    fn a_body_read_in_pieces_gives_the_parts_of_the_whole() {
        let mut binary = b"--b\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
        binary.extend_from_slice(b"\r\n--b \x00\r\n--bx\r\n-\r\n--");
        binary.extend_from_slice(b"\r\n--b \t\r\n\r\nsecond\r\n--b--");
        let bodies: Vec<(Vec<u8>, &str)> = vec![
            (body("preamble\n--XYZ\nContent-Type: application/dicom\n\nfirst\n--XYZ  \n\nsecond\n--XYZ--\nepilogue").to_vec(), "XYZ"),
            (b"--XYZ\n\nlf only\n--XYZ--".to_vec(), "XYZ"),
            (b"x--XYZ\r\n--XYZ\r\n\r\nafter a preamble that holds the dash-boundary\r\n--XYZ--".to_vec(), "XYZ"),
            (binary, "b"),
            // Broken: no close delimiter, a wrong boundary, no parts, malformed headers.
            (body("--XYZ\nContent-Type: application/dicom\n\nfirst").to_vec(), "XYZ"),
            (body("--ABC\n\nfirst\n--ABC--").to_vec(), "XYZ"),
            (b"--XYZ--".to_vec(), "XYZ"),
            (b"--XYZ\r\nno colon\r\n\r\nbody\r\n--XYZ--".to_vec(), "XYZ"),
            (b"--XYZ\r\n\r\nfirst\r\n--XYZ".to_vec(), "XYZ"),
            (b"--XYZjunk".to_vec(), "XYZ"),
        ];
        for (whole, boundary) in &bodies {
            let expected = read_in_pieces(&[whole], boundary);
            let parsed: Read = parse(&Bytes::from(whole.clone()), boundary).map(|parts| {
                parts
                    .into_iter()
                    .map(|p| (p.content_type, p.body.to_vec()))
                    .collect()
            });
            assert_eq!(parsed, expected);
            for cut in 0..=whole.len() {
                let (a, b) = whole.split_at(cut);
                assert_eq!(
                    read_in_pieces(&[a, b], boundary),
                    expected,
                    "cut at {cut} of {:?}",
                    String::from_utf8_lossy(whole)
                );
            }
            let bytes: Vec<&[u8]> = whole.chunks(1).collect();
            assert_eq!(read_in_pieces(&bytes, boundary), expected);
        }
        // The pieces hold one part at a time: a long preamble is not kept either.
        let mut reader = PartReader::new("XYZ");
        for _ in 0..1000 {
            reader.push(&[b'p'; 1024]);
            assert!(reader.next_part().unwrap().is_none());
        }
        assert!(reader.buffer.len() < 64);
    }

    #[test]
    fn an_endless_header_block_is_malformed() {
        let mut reader = PartReader::new("XYZ");
        reader.push(b"--XYZ\r\nX-Long: ");
        for _ in 0..20 {
            reader.push(&[b'h'; 1024]);
        }
        assert_eq!(
            reader.next_part().unwrap_err(),
            MultipartError::MalformedHeaders { part: 1 }
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

//! Declared lengths checked before the parser takes memory for them. dicom-parser reserves a
//! value's declared length before it reads the value, so a few bytes declaring a 4 GiB element
//! would take 4 GiB. This walks every element header of a data set (nested sequences, items and
//! encapsulated pixel data fragments included) and refuses any defined length larger than what
//! is left of the bytes. It reads headers only and allocates nothing but its nesting stack.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};

use super::DicomError;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: u16 = 0xE000;
const ITEM_DELIMITATION: u16 = 0xE00D;
const SEQUENCE_DELIMITATION: u16 = 0xE0DD;
/// Deeper nesting than this is refused (real files nest a handful of levels).
const MAX_DEPTH: usize = 64;

/// How a data set is encoded: by its transfer syntax.
#[derive(Clone, Copy, Debug)]
pub struct Encoding {
    pub explicit_vr: bool,
    pub big_endian: bool,
}

impl Encoding {
    pub const IMPLICIT_LITTLE: Encoding = Encoding {
        explicit_vr: false,
        big_endian: false,
    };
    pub const EXPLICIT_LITTLE: Encoding = Encoding {
        explicit_vr: true,
        big_endian: false,
    };
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Container {
    Sequence,
    Item,
    /// The items of encapsulated pixel data: raw fragments, not data elements.
    Fragments,
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    container: Container,
    /// Where a defined-length container ends.
    end: Option<usize>,
    explicit_vr: bool,
}

impl Encoding {
    /// The encoding of data sets in the transfer syntax `uid`; `None` for a deflated one, whose
    /// bytes are compressed and cannot be walked.
    pub fn of_transfer_syntax(ts: &dicom_encoding::TransferSyntax) -> Option<Encoding> {
        if matches!(ts.codec(), dicom_encoding::Codec::Dataset(_)) {
            return None;
        }
        Some(match ts.uid().trim_end_matches('\0') {
            IMPLICIT_VR_LITTLE_ENDIAN => Encoding::IMPLICIT_LITTLE,
            EXPLICIT_VR_BIG_ENDIAN => Encoding {
                explicit_vr: true,
                big_endian: true,
            },
            _ => Encoding::EXPLICIT_LITTLE,
        })
    }
}

const IMPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";

/// Where the data set starts in a Part 10 file's bytes after `DICM`: past the file meta group
/// (explicit VR little endian), whose lengths are checked on the way.
pub fn meta_group_end(bytes: &[u8]) -> Result<usize, DicomError> {
    let mut walk = Walk {
        bytes,
        pos: 0,
        limit: bytes.len(),
        big_endian: false,
    };
    while bytes.get(walk.pos..walk.pos + 2) == Some(&[0x02, 0x00]) {
        let tag = walk.tag()?;
        let vr = walk.vr()?;
        let length = if has_long_length(vr) {
            walk.take::<2>()?;
            walk.u32()?
        } else {
            u32::from(walk.u16()?)
        };
        if length == UNDEFINED {
            return Err(walk.refuse("an undefined length in the file meta group"));
        }
        walk.pos = walk.within(tag, length)?;
    }
    Ok(walk.pos)
}

/// Checks every declared length of the data set in `bytes`. Trailing bytes after the last
/// complete element (zero padding some devices write, or a tail too short to be an element)
/// are allowed.
pub fn check_declared_lengths(bytes: &[u8], encoding: Encoding) -> Result<(), DicomError> {
    check_declared_lengths_until(bytes, encoding, None).map(|_| ())
}

/// [`check_declared_lengths`] up to the top-level element `until` (what a reader that stops
/// there will read). Returns where the data set ends: before any trailing padding.
pub fn check_declared_lengths_until(
    bytes: &[u8],
    encoding: Encoding,
    until: Option<Tag>,
) -> Result<usize, DicomError> {
    let mut walk = Walk {
        bytes,
        pos: 0,
        limit: bytes.len(),
        big_endian: encoding.big_endian,
    };
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        while let Some(frame) = stack.last() {
            match frame.end {
                Some(end) if end == walk.pos => {
                    stack.pop();
                }
                Some(end) if end < walk.pos => {
                    return Err(walk.refuse("an element runs past the end of its sequence or item"));
                }
                _ => break,
            }
        }
        // Nothing may run past the innermost container of defined length: dicom-parser, which
        // may take that container whole as one value, would resume at its end.
        walk.limit = stack
            .iter()
            .rev()
            .find_map(|f| f.end)
            .unwrap_or(bytes.len());
        if walk.pos == walk.limit && walk.limit < bytes.len() {
            return Err(walk.refuse(
                "a sequence or item of undefined length runs past the end of its container",
            ));
        }
        if walk.pos == bytes.len() || (stack.is_empty() && walk.rest_is_padding()) {
            return Ok(walk.pos);
        }
        let explicit_vr = stack.last().map_or(encoding.explicit_vr, |f| f.explicit_vr);
        let in_fragments = stack.last().map(|f| f.container) == Some(Container::Fragments);
        let tag = walk.tag()?;
        if stack.is_empty() && until.is_some_and(|until| tag >= until) {
            return Ok(bytes.len());
        }
        if tag.group() == 0xFFFE {
            let length = walk.u32()?;
            // Where a data set's elements are read (the top level, an item), dicom-parser takes
            // an item for an element: a value of its length, or a sequence when undefined
            // (found by fuzzing: walked as an item here, it put the two out of step).
            let reads_elements = matches!(
                stack.last(),
                None | Some(Frame {
                    container: Container::Item,
                    ..
                })
            );
            match tag.element() {
                ITEM if reads_elements && length == UNDEFINED => {
                    push(&mut stack, &walk, Container::Sequence, None, explicit_vr)?;
                }
                ITEM if reads_elements => {
                    walk.pos = walk.within(tag, length)?;
                }
                ITEM if length == UNDEFINED => {
                    if in_fragments {
                        return Err(walk.refuse("a pixel data fragment of undefined length"));
                    }
                    push(&mut stack, &walk, Container::Item, None, explicit_vr)?;
                }
                ITEM => {
                    let end = walk.within(tag, length)?;
                    if in_fragments {
                        walk.pos = end;
                    } else {
                        push(&mut stack, &walk, Container::Item, Some(end), explicit_vr)?;
                    }
                }
                ITEM_DELIMITATION | SEQUENCE_DELIMITATION => {
                    // As dicom-parser reads them, so that this walk stays in step with it.
                    let top = stack.last().map(|f| (f.container, f.end.is_none()));
                    match (tag.element(), top) {
                        (ITEM_DELIMITATION, Some((Container::Item, true))) => {
                            stack.pop();
                        }
                        // Outside any sequence dicom-parser skips it, length and all; where
                        // items are expected it reads it as an item header.
                        (ITEM_DELIMITATION, None | Some((Container::Sequence, _)))
                        | (ITEM_DELIMITATION, Some((Container::Fragments, _))) => {}
                        (ITEM_DELIMITATION, Some((Container::Item, false))) => {
                            return Err(
                                walk.refuse("an item delimiter inside an item of defined length")
                            );
                        }
                        (_, Some((Container::Sequence | Container::Fragments, true))) => {
                            stack.pop();
                        }
                        (_, Some((Container::Sequence | Container::Fragments, false))) => {}
                        // Where a data set's elements are read (the top level, an item),
                        // dicom-parser takes a sequence delimiter for an element with a value
                        // of its declared length (found by fuzzing: one declaring 0xFFFFFFFE
                        // bytes had it reserve 4 GiB), or a sequence when undefined.
                        (_, None | Some((Container::Item, _))) => {
                            if length == UNDEFINED {
                                return Err(walk.refuse("a stray delimiter of undefined length"));
                            }
                            walk.pos = walk.within(tag, length)?;
                        }
                    }
                }
                _ => return Err(walk.refuse("an unknown item tag")),
            }
            continue;
        }
        let (vr, length) = if explicit_vr {
            let vr = walk.vr()?;
            let length = if has_long_length(vr) {
                walk.take::<2>()?; // reserved
                walk.u32()?
            } else {
                u32::from(walk.u16()?)
            };
            (Some(vr), length)
        } else {
            (None, walk.u32()?)
        };
        if length == UNDEFINED {
            match vr {
                _ if tag == tags::PIXEL_DATA => {
                    push(&mut stack, &walk, Container::Fragments, None, explicit_vr)?;
                }
                // An undefined-length UN (a sequence in implicit VR, PS3.5 6.2.2, CP-246):
                // dicom-parser would take it as a 4 GiB value and reserve that much before
                // failing, so it is refused here.
                Some(VR::UN) => {
                    return Err(walk.refuse(
                        "an undefined-length UN value (CP-246), which this reader does not take",
                    ));
                }
                Some(VR::SQ) | None => {
                    push(&mut stack, &walk, Container::Sequence, None, explicit_vr)?;
                }
                Some(_) => {
                    return Err(
                        walk.refuse("an undefined length on a value that is not a sequence")
                    );
                }
            }
            continue;
        }
        let end = walk.within(tag, length)?;
        let vr = vr.or_else(|| vr_in_dictionary(tag));
        // dicom-parser reads a binary number's value in whole numbers and goes on from there:
        // a length that is not a multiple of the number's size would have it read the rest
        // of the data set out of step with this walk, where no length was checked.
        if let Some(size) = vr.and_then(number_size)
            && !(length as usize).is_multiple_of(size)
        {
            return Err(walk.refuse("a binary value whose length is not a multiple of its size"));
        }
        let sequence = vr == Some(VR::SQ);
        if sequence {
            push(
                &mut stack,
                &walk,
                Container::Sequence,
                Some(end),
                explicit_vr,
            )?;
        } else {
            walk.pos = end;
        }
    }
}

fn push(
    stack: &mut Vec<Frame>,
    walk: &Walk<'_>,
    container: Container,
    end: Option<usize>,
    explicit_vr: bool,
) -> Result<(), DicomError> {
    if stack.len() >= MAX_DEPTH {
        return Err(walk.refuse("sequences nested too deep"));
    }
    stack.push(Frame {
        container,
        end,
        explicit_vr,
    });
    Ok(())
}

/// VRs whose explicit encoding has two reserved bytes and a 32-bit length (PS3.5 7.1.2).
fn has_long_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::SV
            | VR::UC
            | VR::UN
            | VR::UR
            | VR::UT
            | VR::UV
    )
}

/// The VR an implicit-VR reader gives `tag`: the standard dictionary's, and of a choice
/// ("US or SS or OW") the one dicom-encoding's decoder takes (`VirtualVr::relaxed`: US or
/// OW, both read two bytes at a time). Skipping the choices let an odd length there put the
/// reader out of step with this walk, onto a 1 GiB length nobody had checked.
fn vr_in_dictionary(tag: Tag) -> Option<VR> {
    Some(StandardDataDictionary.by_tag(tag)?.vr().relaxed())
}

/// The size of one number of a binary VR (values are read as whole numbers of it).
fn number_size(vr: VR) -> Option<usize> {
    match vr {
        VR::US | VR::SS | VR::OW => Some(2),
        VR::UL | VR::SL | VR::FL | VR::AT | VR::OL | VR::OF => Some(4),
        VR::FD | VR::SV | VR::UV | VR::OD | VR::OV => Some(8),
        _ => None,
    }
}

struct Walk<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Where the innermost container of defined length ends (else the end of the bytes).
    limit: usize,
    big_endian: bool,
}

impl Walk<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DicomError> {
        let bytes: [u8; N] = self
            .bytes
            .get(self.pos..self.pos + N)
            .and_then(|slice| slice.try_into().ok())
            .ok_or_else(|| self.refuse("the data set ends inside an element header"))?;
        self.pos += N;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, DicomError> {
        let b = self.take::<2>()?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&mut self) -> Result<u32, DicomError> {
        let b = self.take::<4>()?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn tag(&mut self) -> Result<Tag, DicomError> {
        let group = self.u16()?;
        let element = self.u16()?;
        Ok(Tag(group, element))
    }

    fn vr(&mut self) -> Result<VR, DicomError> {
        let chars = self.take::<2>()?;
        VR::from_binary(chars).ok_or_else(|| self.refuse("an unknown value representation"))
    }

    /// The end of a value of `length` bytes starting here, refused when fewer bytes remain.
    fn within(&self, tag: Tag, length: u32) -> Result<usize, DicomError> {
        let remaining = self.limit.saturating_sub(self.pos);
        let length = length as usize;
        if length > remaining {
            return Err(DicomError::DeclaredLength {
                tag: format!("({:04X},{:04X})", tag.group(), tag.element()),
                declared: length as u64,
                remaining: remaining as u64,
            });
        }
        Ok(self.pos + length)
    }

    /// What follows is padding, not an element: zeros, or fewer bytes than an element header.
    fn rest_is_padding(&self) -> bool {
        let rest = &self.bytes[self.pos..];
        rest.len() < 8 || rest.iter().all(|&b| b == 0)
    }

    fn refuse(&self, what: &'static str) -> DicomError {
        DicomError::MalformedElement {
            what,
            offset: self.pos as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPLICIT_LITTLE: Encoding = Encoding::EXPLICIT_LITTLE;

    fn explicit(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(vr);
        if has_long_length(VR::from_binary(*vr).unwrap()) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        } else {
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    fn header(tag: (u16, u16), length: u32) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
        out
    }

    #[test]
    fn a_well_formed_data_set_with_sequences_and_fragments_passes() {
        let mut data = explicit((0x0008, 0x0060), b"CS", b"CT");
        // A defined-length sequence of one defined-length item.
        let inner = explicit((0x0008, 0x0100), b"SH", b"1234");
        let mut item = header((0xFFFE, ITEM), inner.len() as u32);
        item.extend_from_slice(&inner);
        data.extend(explicit((0x0008, 0x1140), b"SQ", &item));
        // Encapsulated pixel data: an empty offset table and one fragment.
        data.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00]);
        data.extend_from_slice(b"OB\0\0");
        data.extend_from_slice(&UNDEFINED.to_le_bytes());
        data.extend(header((0xFFFE, ITEM), 0));
        data.extend(header((0xFFFE, ITEM), 4));
        data.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xD9]);
        data.extend(header((0xFFFE, SEQUENCE_DELIMITATION), 0));
        let end = data.len();
        // Trailing padding, and a tail too short to be an element, are where it ends.
        let mut padded = data.clone();
        padded.extend_from_slice(&[0; 16]);
        assert_eq!(
            check_declared_lengths_until(&padded, EXPLICIT_LITTLE, None).unwrap(),
            end
        );
        let mut tail = data.clone();
        tail.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            check_declared_lengths_until(&tail, EXPLICIT_LITTLE, None).unwrap(),
            end
        );
    }

    #[test]
    fn a_length_beyond_the_bytes_is_refused_before_reading() {
        let mut data = explicit((0x0008, 0x0060), b"CS", b"CT");
        data.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00]);
        data.extend_from_slice(b"OW\0\0");
        data.extend_from_slice(&0xF000_0000u32.to_le_bytes());
        data.extend_from_slice(&[0; 8]);
        let error = check_declared_lengths(&data, EXPLICIT_LITTLE).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("(7FE0,0010) declares 4026531840 bytes"),
            "{error}"
        );
    }

    #[test]
    fn a_length_hidden_inside_a_sequence_item_or_fragment_is_found() {
        // Implicit VR: a sequence known from the dictionary, an item, an element in it.
        let mut inner = header((0x0008, 0x0100), 0x7FFF_0000);
        inner.extend_from_slice(b"1234");
        let mut item = header((0xFFFE, ITEM), UNDEFINED);
        item.extend_from_slice(&inner);
        let mut data = header((0x0008, 0x1140), UNDEFINED);
        data.extend_from_slice(&item);
        assert!(check_declared_lengths(&data, Encoding::IMPLICIT_LITTLE).is_err());

        let mut fragments = header((0x7FE0, 0x0010), UNDEFINED);
        fragments.extend(header((0xFFFE, ITEM), 0));
        fragments.extend(header((0xFFFE, ITEM), 0xF000_0000));
        fragments.extend_from_slice(&[0; 4]);
        assert!(check_declared_lengths(&fragments, Encoding::IMPLICIT_LITTLE).is_err());
    }

    #[test]
    fn a_dimse_command_declaring_a_huge_element_is_refused() {
        // 22 bytes: (0000,0002) UI declaring 0xF0000000 bytes, then a few.
        let mut command = header((0x0000, 0x0002), 0xF000_0000);
        command.extend_from_slice(b"1.2.840.10008");
        command.push(0);
        assert_eq!(command.len(), 22);
        assert!(check_declared_lengths(&command, Encoding::IMPLICIT_LITTLE).is_err());
    }

    #[test]
    fn an_undefined_length_un_is_refused_before_the_parser_reserves_4_gib_for_it() {
        // (4453,100C) UN of undefined length, as GDCM writes an unknown private sequence.
        let mut data = vec![0x53, 0x44, 0x0C, 0x10, b'U', b'N', 0, 0];
        data.extend_from_slice(&UNDEFINED.to_le_bytes());
        data.extend(header((0xFFFE, ITEM), UNDEFINED));
        data.extend(header((0xFFFE, ITEM_DELIMITATION), 0));
        data.extend(header((0xFFFE, SEQUENCE_DELIMITATION), 0));
        let error = check_declared_lengths(&data, EXPLICIT_LITTLE).unwrap_err();
        assert!(error.to_string().contains("undefined-length UN"), "{error}");
    }

    #[test]
    fn a_number_whose_length_is_not_a_multiple_of_its_size_is_refused() {
        // Found by fuzzing: (0000,0000) UL declared 18 bytes long; the parser read 16, took the
        // next two bytes as the start of a tag and then an element "4 GiB" long.
        let mut command = header((0x0000, 0x1102), 0);
        command.extend(header((0x0000, 0x0000), 18));
        command.extend([0u8; 18]);
        let refused = check_declared_lengths(&command, Encoding::IMPLICIT_LITTLE).unwrap_err();
        assert!(refused.to_string().contains("multiple"), "{refused}");
        let mut whole = header((0x0000, 0x0000), 4);
        whole.extend([0u8; 4]);
        assert!(check_declared_lengths(&whole, Encoding::IMPLICIT_LITTLE).is_ok());
    }

    #[test]
    fn a_number_of_a_tag_with_a_choice_of_vrs_is_checked_as_the_reader_reads_it() {
        // Found by fuzzing: (0028,1200) "US or SS or OW" declared 1 byte long in an implicit
        // VR command; the reader read it as 2-byte numbers, came out of step, and reserved
        // 1 GiB for a length this walk never saw.
        let mut command = header((0x0028, 0x1200), 1);
        command.push(0x10);
        command.extend(header((0x0112, 0x0000), 0));
        let refused = check_declared_lengths(&command, Encoding::IMPLICIT_LITTLE).unwrap_err();
        assert!(refused.to_string().contains("multiple"), "{refused}");
        let mut whole = header((0x0028, 0x1200), 2);
        whole.extend([0x10, 0x00]);
        assert!(check_declared_lengths(&whole, Encoding::IMPLICIT_LITTLE).is_ok());
    }

    #[test]
    fn a_stray_delimiter_is_checked_as_the_element_the_reader_takes_it_for() {
        // Found by fuzzing: a sequence delimiter at the top level declaring 0xFFFFFFFE bytes,
        // which dicom-parser read as a value of that length.
        let mut data = header((0x0008, 0x0016), 4);
        data.extend_from_slice(b"1.2\0");
        data.extend(header((0xFFFE, SEQUENCE_DELIMITATION), 0xFFFF_FFFE));
        data.extend_from_slice(&[0; 4]);
        let refused = check_declared_lengths(&data, Encoding::IMPLICIT_LITTLE).unwrap_err();
        assert!(refused.to_string().contains("4294967294"), "{refused}");
        // Stray, with a length that fits: its value is skipped like any other.
        let mut fits = header((0x0008, 0x0016), 4);
        fits.extend_from_slice(b"1.2\0");
        fits.extend(header((0xFFFE, SEQUENCE_DELIMITATION), 8));
        fits.extend(header((0x0008, 0x0018), 0));
        fits.extend(header((0x0008, 0x0060), 2));
        fits.extend_from_slice(b"CT");
        assert_eq!(
            check_declared_lengths_until(&fits, Encoding::IMPLICIT_LITTLE, None).unwrap(),
            fits.len()
        );
        // A stray item delimiter at the top level is skipped whole, length and all, as
        // dicom-parser skips it: what follows is read as elements, and checked.
        let mut skipped = header((0x0008, 0x0016), 4);
        skipped.extend_from_slice(b"1.2\0");
        skipped.extend(header((0xFFFE, ITEM_DELIMITATION), 8));
        skipped.extend(header((0x0008, 0x0018), 0xE0DD_FFFE));
        let refused = check_declared_lengths(&skipped, Encoding::IMPLICIT_LITTLE).unwrap_err();
        assert!(refused.to_string().contains("(0008,0018)"), "{refused}");
    }

    #[test]
    fn an_item_where_elements_are_read_is_taken_as_a_value_as_the_parser_takes_it() {
        // Found by fuzzing (an RT Plan): an item at the top level declaring 12 bytes, over a
        // sequence header and half the next element's header. dicom-parser skipped the item as
        // one value and read on from its end, mid-header: a 540 MB length this walk, which had
        // gone into the item, never saw.
        let mut data = header((0x0008, 0x0016), 4);
        data.extend_from_slice(b"1.2\0");
        data.extend(header((0xFFFE, ITEM), 12));
        data.extend(header((0x300A, 0x0130), UNDEFINED));
        data.extend(header((0x300A, 0x0134), 4));
        data.extend_from_slice(b"0.0 ");
        let refused = check_declared_lengths(&data, Encoding::IMPLICIT_LITTLE).unwrap_err();
        assert!(refused.to_string().contains("(0004,0000)"), "{refused}");
        // A sequence of undefined length may not run past the item of defined length holding it.
        let mut inner = header((0x300A, 0x0130), UNDEFINED);
        inner.extend(header((0xFFFE, ITEM), 0));
        let mut item = header((0xFFFE, ITEM), inner.len() as u32);
        item.extend(inner);
        item.extend(header((0xFFFE, SEQUENCE_DELIMITATION), 0));
        let mut sequence = header((0x300A, 0x0010), item.len() as u32);
        sequence.extend(item);
        assert!(check_declared_lengths(&sequence, Encoding::IMPLICIT_LITTLE).is_err());
    }

    #[test]
    fn truncated_headers_and_runaway_nesting_are_refused() {
        let mut cut = explicit((0x0008, 0x0060), b"CS", b"CT");
        cut.extend_from_slice(&[0x08, 0x00, 0x70, 0x00, b'L', b'O', 0x20, 0x00, b'G']);
        assert!(check_declared_lengths(&cut, EXPLICIT_LITTLE).is_err());
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend(header((0x0008, 0x1140), UNDEFINED));
            deep.extend(header((0xFFFE, ITEM), UNDEFINED));
        }
        deep.extend_from_slice(&[1, 0, 0, 0]);
        assert!(check_declared_lengths(&deep, Encoding::IMPLICIT_LITTLE).is_err());
    }
}

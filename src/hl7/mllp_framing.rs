//! MLLP, the Minimal Lower Layer Protocol that carries HL7 v2 over TCP (HL7 v2.5.1, Appendix C):
//! each message is framed as `<VT> message <FS><CR>` (0x0B … 0x1C 0x0D). Several messages may
//! follow one another on a connection. Framing only: what is inside a frame is checked by the
//! HL7 layer.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Start of a frame: vertical tab.
pub const START_BLOCK: u8 = 0x0b;
/// End of a frame's content: file separator, followed by [`CARRIAGE_RETURN`].
pub const END_BLOCK: u8 = 0x1c;
pub const CARRIAGE_RETURN: u8 = 0x0d;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// Bytes outside a frame: the peer is not speaking MLLP, or a frame was cut short.
    #[error("{0} bytes arrived outside an MLLP frame (expected 0x0B to start one)")]
    OutsideFrame(usize),
    /// `head` holds the message's first `limit` bytes, enough to answer its MSH.
    #[error("a message longer than the limit of {limit} bytes")]
    TooLong { limit: usize, head: Vec<u8> },
    #[error("the connection closed inside a frame, after {0} bytes of message")]
    Truncated(usize),
}

/// What [`read_frame`] found next on a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message's bytes, without the framing characters.
    Message(Vec<u8>),
    /// The peer closed the connection between frames.
    Closed,
}

/// Reads the next frame. Whitespace between frames (some senders add a line feed) is skipped;
/// any other byte outside a frame is an error. A frame whose content exceeds `limit` bytes is
/// read to its end and refused with [`FrameError::TooLong`], so that the connection stays in step
/// and the sender can be told.
pub async fn read_frame<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Frame, FrameError> {
    // Between frames.
    let mut stray = 0usize;
    loop {
        let buffer = reader.fill_buf().await?;
        let Some(&byte) = buffer.first() else {
            return if stray == 0 {
                Ok(Frame::Closed)
            } else {
                Err(FrameError::OutsideFrame(stray))
            };
        };
        reader.consume(1);
        match byte {
            START_BLOCK if stray == 0 => break,
            START_BLOCK => return Err(FrameError::OutsideFrame(stray)),
            b'\r' | b'\n' | b' ' | b'\t' => {}
            _ => stray += 1,
        }
    }
    // Inside a frame: up to <FS><CR>. A lone <FS> not followed by <CR> is taken as content
    // (it is not legal HL7 content either, and the HL7 layer will say so).
    let mut message = Vec::new();
    let mut too_long = false;
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Err(FrameError::Truncated(message.len()));
        }
        let (taken, end) = match memchr::memchr(END_BLOCK, buffer) {
            Some(at) => (at, true),
            None => (buffer.len(), false),
        };
        let room = limit - message.len();
        message.extend_from_slice(&buffer[..taken.min(room)]);
        too_long |= taken > room;
        reader.consume(taken);
        if !end {
            continue;
        }
        reader.consume(1); // <FS>
        let next = reader.fill_buf().await?;
        match next.first() {
            Some(&CARRIAGE_RETURN) => {
                reader.consume(1);
                return finish(message, too_long, limit);
            }
            // Some senders end a frame with <FS> alone before closing.
            None => return finish(message, too_long, limit),
            Some(_) => {
                if message.len() < limit {
                    message.push(END_BLOCK);
                } else {
                    too_long = true;
                }
            }
        }
    }
}

fn finish(message: Vec<u8>, too_long: bool, limit: usize) -> Result<Frame, FrameError> {
    if too_long {
        Err(FrameError::TooLong {
            limit,
            head: message,
        })
    } else {
        Ok(Frame::Message(message))
    }
}

/// Writes one message as an MLLP frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &[u8],
) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(message.len() + 3);
    framed.push(START_BLOCK);
    framed.extend_from_slice(message);
    framed.extend_from_slice(&[END_BLOCK, CARRIAGE_RETURN]);
    writer.write_all(&framed).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(parts: &[&[u8]]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for part in parts {
            bytes.push(START_BLOCK);
            bytes.extend_from_slice(part);
            bytes.extend_from_slice(&[END_BLOCK, CARRIAGE_RETURN]);
        }
        bytes
    }

    async fn read_all(bytes: &[u8], limit: usize) -> Vec<Result<Frame, String>> {
        let mut reader = tokio::io::BufReader::with_capacity(7, bytes);
        let mut frames = Vec::new();
        loop {
            let frame = read_frame(&mut reader, limit).await;
            let done = matches!(frame, Ok(Frame::Closed) | Err(FrameError::Truncated(_)));
            frames.push(frame.map_err(|e| e.to_string()));
            if done || frames.len() > 10 {
                return frames;
            }
        }
    }

    #[tokio::test]
    async fn several_messages_on_one_connection_are_read_in_order() {
        let bytes = framed(&[b"MSH|^~\\&|A\rPID|1", b"MSH|^~\\&|B"]);
        let frames = read_all(&bytes, 1024).await;
        assert_eq!(
            frames,
            vec![
                Ok(Frame::Message(b"MSH|^~\\&|A\rPID|1".to_vec())),
                Ok(Frame::Message(b"MSH|^~\\&|B".to_vec())),
                Ok(Frame::Closed),
            ]
        );
    }

    #[tokio::test]
    async fn line_feeds_between_frames_and_a_final_bare_end_block_are_accepted() {
        let mut bytes = framed(&[b"one"]);
        bytes.extend_from_slice(b"\n\r\n");
        bytes.extend_from_slice(&[START_BLOCK, b't', b'w', b'o', END_BLOCK]);
        let frames = read_all(&bytes, 1024).await;
        assert_eq!(frames[0], Ok(Frame::Message(b"one".to_vec())));
        assert_eq!(frames[1], Ok(Frame::Message(b"two".to_vec())));
        assert_eq!(frames[2], Ok(Frame::Closed));
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_and_the_next_one_still_read() {
        let big = vec![b'x'; 100];
        let bytes = framed(&[&big, b"small"]);
        let frames = read_all(&bytes, 50).await;
        assert_eq!(
            frames[0],
            Err("a message longer than the limit of 50 bytes".into())
        );
        assert_eq!(frames[1], Ok(Frame::Message(b"small".to_vec())));
    }

    #[tokio::test]
    async fn bytes_outside_a_frame_and_a_cut_frame_are_errors() {
        let frames = read_all(b"GET / HTTP/1.1\r\n", 1024).await;
        assert!(matches!(&frames[0], Err(e) if e.contains("outside an MLLP frame")));
        let frames = read_all(&[START_BLOCK, b'M', b'S'], 1024).await;
        assert_eq!(
            frames[0],
            Err("the connection closed inside a frame, after 2 bytes of message".into())
        );
    }

    #[tokio::test]
    async fn a_written_frame_reads_back() {
        let mut bytes = Vec::new();
        write_frame(&mut bytes, b"MSH|^~\\&|ACK").await.unwrap();
        assert_eq!(bytes, framed(&[b"MSH|^~\\&|ACK"]));
    }
}

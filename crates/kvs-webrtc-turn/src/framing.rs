//! RFC 6062 / RFC 8656 §12.5 framing of STUN messages and ChannelData on a stream (TCP, and
//! TLS's plaintext): a STUN message is its 20-byte header plus its length; ChannelData is its
//! 4-byte header plus its length, padded to a multiple of 4 bytes on a stream.
//!
//! turn-client-proto 0.7 neither pads the ChannelData it sends over TCP nor skips the padding
//! of what it receives, so a stream to an RFC-conformant server (coturn) loses its framing at
//! the first ChannelData whose length is not a multiple of 4. Framing here, and handing it
//! whole unpadded frames, fixes both directions.

use crate::error::AllocationError;

/// The largest frame: a STUN header and a 16-bit length.
const MAX_FRAME: usize = 20 + u16::MAX as usize;

/// Cuts a byte stream into frames.
#[derive(Debug, Default)]
pub(crate) struct StreamFramer {
    buffer: Vec<u8>,
}

impl StreamFramer {
    /// More bytes of the stream.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete frame, without its padding; `Ok(None)` until one is complete.
    ///
    /// # Errors
    /// When the stream cannot be framed (bytes that start neither a STUN message nor
    /// ChannelData, or a STUN length that is not a multiple of 4): nothing after them can be
    /// trusted; the connection must go.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Vec<u8>>, AllocationError> {
        let Some(&first) = self.buffer.first() else {
            return Ok(None);
        };
        if self.buffer.len() < 4 {
            return Ok(None);
        }
        let length = usize::from(u16::from_be_bytes([self.buffer[2], self.buffer[3]]));
        let (frame, consumed) = match first >> 6 {
            0b00 => {
                if length % 4 != 0 {
                    return Err(unframeable(format!(
                        "a STUN message length of {length} (not a multiple of 4)"
                    )));
                }
                (20 + length, 20 + length)
            }
            0b01 => (4 + length, (4 + length).next_multiple_of(4)),
            _ => {
                return Err(unframeable(format!(
                    "a frame starting with byte {first:#04x} (neither STUN nor ChannelData)"
                )))
            }
        };
        debug_assert!(consumed <= MAX_FRAME + 3);
        if self.buffer.len() < consumed {
            return Ok(None);
        }
        let rest = self.buffer.split_off(consumed);
        let mut whole = std::mem::replace(&mut self.buffer, rest);
        whole.truncate(frame);
        Ok(Some(whole))
    }
}

/// Whether a datagram is one well-formed frame: a STUN message whose header length is exactly
/// the rest of the datagram (a multiple of 4), or ChannelData whose length fits, followed by at
/// most 3 bytes of padding. The STUN parser underneath is lenient about the header length, and
/// MESSAGE-INTEGRITY cannot notice a changed length (its check rewrites that field), so a
/// datagram that lies about its length is dropped here.
pub(crate) fn is_whole_datagram(datagram: &[u8]) -> bool {
    if datagram.len() < 4 {
        return false;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    match datagram[0] >> 6 {
        0b00 => length % 4 == 0 && datagram.len() == 20 + length,
        0b01 => datagram.len() >= 4 + length && datagram.len() - (4 + length) < 4,
        _ => false,
    }
}

/// Pad ChannelData to a multiple of 4 bytes for a stream (STUN messages already are).
pub(crate) fn pad_for_stream(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.first().is_some_and(|b| b >> 6 == 0b01) {
        frame.resize(frame.len().next_multiple_of(4), 0);
    }
    frame
}

fn unframeable(what: String) -> AllocationError {
    AllocationError::Connection {
        reason: format!("the TURN server sent {what}; the stream cannot be framed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel_data(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x40, 0x00];
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    fn stun(attributes_len: u16) -> Vec<u8> {
        let mut frame = vec![0x01, 0x01];
        frame.extend_from_slice(&attributes_len.to_be_bytes());
        frame.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        frame.extend_from_slice(&[7; 12]);
        frame.extend(std::iter::repeat_n(0xab, usize::from(attributes_len)));
        frame
    }

    #[test]
    fn padded_channel_data_and_stun_come_out_whole_and_unpadded_however_the_stream_is_cut() {
        let frames = [
            channel_data(b"odd"),
            stun(8),
            channel_data(b"four"),
            channel_data(b""),
        ];
        let stream: Vec<u8> = frames.iter().cloned().flat_map(pad_for_stream).collect();
        assert_eq!(
            stream.len(),
            8 + 28 + 8 + 4,
            "3 is padded to 4; 4 and 0 need nothing"
        );
        for piece in 1..=stream.len() {
            let mut framer = StreamFramer::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(piece) {
                framer.push(chunk);
                while let Some(frame) = framer.next_frame().unwrap() {
                    out.push(frame);
                }
            }
            assert_eq!(out, frames, "pieces of {piece}");
        }
    }

    #[test]
    fn a_datagram_must_be_exactly_one_frame() {
        assert!(is_whole_datagram(&stun(8)));
        assert!(is_whole_datagram(&channel_data(b"odd")));
        assert!(is_whole_datagram(&pad_for_stream(channel_data(b"odd"))));
        let mut lying = stun(8);
        lying[3] = 0;
        assert!(
            !is_whole_datagram(&lying),
            "header says 0 attribute bytes, 8 follow"
        );
        assert!(!is_whole_datagram(&stun(8)[..24]), "cut short");
        assert!(!is_whole_datagram(&channel_data(b"odd")[..5]), "cut short");
        let mut long = channel_data(b"odd");
        long.extend_from_slice(&[0; 4]);
        assert!(!is_whole_datagram(&long), "more than padding after it");
        assert!(!is_whole_datagram(&[0x80, 0, 0, 0]), "RTP, not TURN");
    }

    #[test]
    fn bytes_that_are_neither_stun_nor_channel_data_break_the_stream() {
        let mut framer = StreamFramer::default();
        framer.push(&[0x80, 0, 0, 4, 1, 2, 3, 4]);
        let err = framer.next_frame().unwrap_err().to_string();
        assert!(
            err.contains("0x80") && err.contains("neither STUN nor ChannelData"),
            "{err}"
        );
        let mut framer = StreamFramer::default();
        framer.push(&stun(6)[..4]);
        let err = framer.next_frame().unwrap_err().to_string();
        assert!(err.contains("length of 6"), "{err}");
    }
}

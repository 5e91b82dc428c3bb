//! Opus packets out of an Ogg Opus stream (RFC 3533 pages, RFC 7845 mapping), read
//! incrementally so that it works on pipes (`ffmpeg ... -f opus -` into stdin) as well as files.
//!
//! Only the first logical stream is read; pages of other streams (a multiplexed file) are
//! skipped. Every page's CRC is checked.

use std::io::Read;
use std::time::Duration;

use crate::error::MediaError;
use crate::opus;

const EXPECTED: &str = "an Ogg Opus stream";
/// The largest page RFC 3533 allows: 27 + 255 + 255 × 255 bytes.
const MAX_PAGE: usize = 27 + 255 + 255 * 255;
/// A packet spanning pages is refused beyond this (Opus packets are at most a few KB).
const MAX_PACKET: usize = 1 << 20;

/// What the `OpusHead` packet says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channels (1 or 2 for the mapping WebRTC uses).
    pub channels: u8,
    /// Samples (at 48 kHz) to discard from the start of the decoded output.
    pub pre_skip: u16,
    /// The input's original sample rate (informational).
    pub input_sample_rate: u32,
}

/// One Opus packet with its place in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusPacket {
    /// The packet, as RTP carries it.
    pub data: Vec<u8>,
    /// When it starts, from the stream's first packet (sum of the earlier packets' durations).
    pub timestamp: Duration,
    /// How many 48 kHz samples it decodes to.
    pub samples: u32,
}

/// Reads Opus packets from an Ogg Opus stream.
#[derive(Debug)]
pub struct OggOpusReader<R> {
    input: R,
    head: OpusHead,
    serial: u32,
    /// Complete packets of the current page not yet returned.
    ready: std::collections::VecDeque<Vec<u8>>,
    /// A packet continued on the next page.
    partial: Vec<u8>,
    samples_so_far: u64,
    page_number: u64,
}

struct Page {
    serial: u32,
    continued: bool,
    /// (packet bytes, complete?) in order; at most the last one is incomplete.
    segments: Vec<(Vec<u8>, bool)>,
}

impl<R: Read> OggOpusReader<R> {
    /// Read the stream's two header packets (`OpusHead`, `OpusTags`).
    ///
    /// # Errors
    /// [`MediaError::Empty`] for no data, [`MediaError::WrongFormat`] when the data is not Ogg
    /// or the Ogg stream is not Opus (the error names the codec found), and the errors of
    /// [`OggOpusReader::next_packet`].
    pub fn new(input: R) -> Result<Self, MediaError> {
        let mut reader = Self {
            input,
            head: OpusHead {
                channels: 0,
                pre_skip: 0,
                input_sample_rate: 0,
            },
            serial: 0,
            ready: Default::default(),
            partial: Vec::new(),
            samples_so_far: 0,
            page_number: 0,
        };
        let first = match reader.read_page()? {
            Some(page) => page,
            None => return Err(MediaError::Empty { expected: EXPECTED }),
        };
        reader.serial = first.serial;
        reader.take_segments(first)?;
        let head = reader
            .next_raw_packet()?
            .ok_or_else(|| MediaError::Truncated {
                what: "the Ogg stream's first packet".into(),
            })?;
        reader.head = parse_head(&head)?;
        let tags = reader
            .next_raw_packet()?
            .ok_or_else(|| MediaError::Truncated {
                what: "the Ogg Opus header (no OpusTags packet)".into(),
            })?;
        if !tags.starts_with(b"OpusTags") {
            return Err(MediaError::Corrupt {
                what: "the second packet of the Ogg Opus stream is not OpusTags".into(),
            });
        }
        Ok(reader)
    }

    /// The stream's `OpusHead`.
    pub fn head(&self) -> OpusHead {
        self.head
    }

    /// The next audio packet, or `None` at the end of the stream.
    ///
    /// # Errors
    /// [`MediaError::Truncated`] when the input ends inside a page or a packet,
    /// [`MediaError::Corrupt`] for a bad page (CRC, version, lacing) or a packet that is not
    /// valid Opus, [`MediaError::Io`] when reading fails.
    pub fn next_packet(&mut self) -> Result<Option<OpusPacket>, MediaError> {
        loop {
            let Some(data) = self.next_raw_packet()? else {
                return Ok(None);
            };
            if data.is_empty() {
                continue; // a zero-length packet carries nothing (RFC 7845 §3: allowed)
            }
            let samples = opus::packet_samples(&data).ok_or_else(|| MediaError::Corrupt {
                what: format!(
                    "an invalid Opus packet (TOC byte {:#04x}, {} bytes) in page {}",
                    data[0],
                    data.len(),
                    self.page_number
                ),
            })?;
            let timestamp = Duration::from_micros(
                self.samples_so_far * 1_000_000 / u64::from(opus::SAMPLE_RATE),
            );
            self.samples_so_far += u64::from(samples);
            return Ok(Some(OpusPacket {
                data,
                timestamp,
                samples,
            }));
        }
    }

    fn next_raw_packet(&mut self) -> Result<Option<Vec<u8>>, MediaError> {
        loop {
            if let Some(packet) = self.ready.pop_front() {
                return Ok(Some(packet));
            }
            match self.read_page()? {
                Some(page) if page.serial == self.serial => self.take_segments(page)?,
                Some(_) => continue, // another logical stream
                None if self.partial.is_empty() => return Ok(None),
                None => {
                    return Err(MediaError::Truncated {
                        what: "an Opus packet continued on a page that never came".into(),
                    })
                }
            }
        }
    }

    fn take_segments(&mut self, page: Page) -> Result<(), MediaError> {
        if !page.continued && !self.partial.is_empty() {
            return Err(MediaError::Corrupt {
                what: format!(
                    "page {} does not continue the packet the previous page left open",
                    self.page_number
                ),
            });
        }
        for (bytes, complete) in page.segments {
            self.partial.extend_from_slice(&bytes);
            if self.partial.len() > MAX_PACKET {
                return Err(MediaError::Corrupt {
                    what: format!("an Ogg packet larger than {MAX_PACKET} bytes"),
                });
            }
            if complete {
                self.ready.push_back(std::mem::take(&mut self.partial));
            }
        }
        Ok(())
    }

    /// The next page, or `None` at a clean end of input (between pages).
    fn read_page(&mut self) -> Result<Option<Page>, MediaError> {
        let mut header = [0u8; 27];
        let got = crate::error::read_up_to(&mut self.input, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < 4 || &header[..4] != b"OggS" {
            return Err(if self.page_number == 0 {
                MediaError::WrongFormat {
                    expected: EXPECTED,
                    found: crate::error::describe_start(&header[..got]),
                }
            } else {
                MediaError::Corrupt {
                    what: format!(
                        "no Ogg page (capture pattern OggS) after page {}",
                        self.page_number
                    ),
                }
            });
        }
        if got < header.len() {
            return Err(MediaError::Truncated {
                what: "an Ogg page header".into(),
            });
        }
        if header[4] != 0 {
            return Err(MediaError::Corrupt {
                what: format!("Ogg version {} (only 0 exists)", header[4]),
            });
        }
        let continued = header[5] & 0x01 != 0;
        let serial = u32::from_le_bytes([header[14], header[15], header[16], header[17]]);
        let crc = u32::from_le_bytes([header[22], header[23], header[24], header[25]]);
        let segment_count = usize::from(header[26]);
        let mut lacing = vec![0u8; segment_count];
        if crate::error::read_up_to(&mut self.input, &mut lacing)? < segment_count {
            return Err(MediaError::Truncated {
                what: "an Ogg page's segment table".into(),
            });
        }
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        debug_assert!(27 + segment_count + body_len <= MAX_PAGE);
        let mut body = vec![0u8; body_len];
        if crate::error::read_up_to(&mut self.input, &mut body)? < body_len {
            return Err(MediaError::Truncated {
                what: format!(
                    "Ogg page {} ({body_len} bytes of data announced)",
                    self.page_number + 1
                ),
            });
        }
        let mut check = header;
        check[22..26].fill(0);
        let computed = crc32(crc32(crc32(0, &check), &lacing), &body);
        if computed != crc {
            return Err(MediaError::Corrupt {
                what: format!(
                    "Ogg page {} fails its CRC check (stored {crc:#010x}, computed {computed:#010x})",
                    self.page_number + 1
                ),
            });
        }
        self.page_number += 1;
        let mut segments = Vec::new();
        let mut offset = 0;
        let mut current = Vec::new();
        for &l in &lacing {
            current.extend_from_slice(&body[offset..offset + usize::from(l)]);
            offset += usize::from(l);
            if l < 255 {
                segments.push((std::mem::take(&mut current), true));
            }
        }
        if lacing.last() == Some(&255) {
            segments.push((current, false));
        }
        Ok(Some(Page {
            serial,
            continued,
            segments,
        }))
    }
}

fn parse_head(packet: &[u8]) -> Result<OpusHead, MediaError> {
    if !packet.starts_with(b"OpusHead") {
        return Err(MediaError::WrongFormat {
            expected: EXPECTED,
            found: format!("an Ogg stream of {}", codec_of_first_packet(packet)),
        });
    }
    if packet.len() < 19 {
        return Err(MediaError::Truncated {
            what: "the OpusHead packet".into(),
        });
    }
    if packet[8] >> 4 != 0 {
        return Err(MediaError::Corrupt {
            what: format!("OpusHead version {} (only 0.x is defined)", packet[8]),
        });
    }
    let channels = packet[9];
    if channels == 0 {
        return Err(MediaError::Corrupt {
            what: "OpusHead declares 0 channels".into(),
        });
    }
    Ok(OpusHead {
        channels,
        pre_skip: u16::from_le_bytes([packet[10], packet[11]]),
        input_sample_rate: u32::from_le_bytes([packet[12], packet[13], packet[14], packet[15]]),
    })
}

/// Names the codec of an Ogg stream from its first packet, for error messages.
fn codec_of_first_packet(packet: &[u8]) -> String {
    let known: [(&[u8], &str); 5] = [
        (b"\x01vorbis", "Vorbis"),
        (b"Speex   ", "Speex"),
        (b"\x7fFLAC", "FLAC"),
        (b"\x80theora", "Theora"),
        (b"OggPCM", "PCM"),
    ];
    known
        .iter()
        .find(|(magic, _)| packet.starts_with(magic))
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| {
            format!(
                "an unknown codec (first bytes {:02x?})",
                &packet[..packet.len().min(8)]
            )
        })
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04c1_1db7
            } else {
                r << 1
            };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
};

/// The Ogg CRC-32 (polynomial 0x04c11db7, not reflected, no final XOR), continued from `crc`.
fn crc32(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = (crc << 8) ^ CRC_TABLE[usize::from(((crc >> 24) as u8) ^ b)];
    }
    crc
}

/// Write pages for tests and tools: one Ogg Opus stream, one packet per page.
#[derive(Debug)]
pub struct OggOpusWriter<W: std::io::Write> {
    output: W,
    serial: u32,
    sequence: u32,
    granule: u64,
}

impl<W: std::io::Write> OggOpusWriter<W> {
    /// Start a stream: writes `OpusHead` (`channels`, 48 kHz, no pre-skip) and `OpusTags`.
    ///
    /// # Errors
    /// When writing fails.
    pub fn new(output: W, channels: u8) -> std::io::Result<Self> {
        let mut writer = Self {
            output,
            serial: 0x4b56_5321,
            sequence: 0,
            granule: 0,
        };
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, channels, 0, 0]);
        head.extend_from_slice(&opus::SAMPLE_RATE.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        writer.page(&head, 0x02, 0)?;
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&7u32.to_le_bytes());
        tags.extend_from_slice(b"kvs-rs");
        tags.push(b'0');
        tags.extend_from_slice(&0u32.to_le_bytes());
        writer.page(&tags, 0, 0)?;
        Ok(writer)
    }

    /// Append one packet (at most 255 × 255 − 1 bytes) on a page of its own.
    ///
    /// # Errors
    /// When writing fails or the packet is too large for one page.
    pub fn write_packet(&mut self, packet: &[u8], end_of_stream: bool) -> std::io::Result<()> {
        self.granule += u64::from(opus::packet_samples(packet).unwrap_or(0));
        let flags = if end_of_stream { 0x04 } else { 0 };
        self.page(packet, flags, self.granule)
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.output
    }

    fn page(&mut self, packet: &[u8], flags: u8, granule: u64) -> std::io::Result<()> {
        let mut lacing = vec![255u8; packet.len() / 255];
        lacing.push((packet.len() % 255) as u8);
        if lacing.len() > 255 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "packet too large for one Ogg page",
            ));
        }
        let mut page = b"OggS".to_vec();
        page.push(0);
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&self.serial.to_le_bytes());
        page.extend_from_slice(&self.sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        page.extend_from_slice(packet);
        let crc = crc32(0, &page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        self.sequence += 1;
        self.output.write_all(&page)
    }
}

#[cfg(test)]
mod tests;

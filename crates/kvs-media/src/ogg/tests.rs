use super::*;
use crate::sample;

fn all_packets(data: &[u8]) -> Result<(OpusHead, Vec<OpusPacket>), MediaError> {
    let mut reader = OggOpusReader::new(data)?;
    let mut packets = Vec::new();
    while let Some(p) = reader.next_packet()? {
        packets.push(p);
    }
    Ok((reader.head(), packets))
}

/// The granule position of the stream's last page, read independently of the reader.
fn last_granule(data: &[u8]) -> u64 {
    let at = data.windows(4).rposition(|w| w == b"OggS").unwrap();
    u64::from_le_bytes(data[at + 6..at + 14].try_into().unwrap())
}

#[test]
fn the_sample_yields_20_ms_packets_that_add_up_to_the_last_granule() {
    let (head, packets) = all_packets(sample::OPUS).unwrap();
    assert_eq!(head.channels, 1);
    assert_eq!(head.input_sample_rate, 48_000);
    assert!(packets.iter().all(|p| p.samples == 960));
    let total: u64 = packets.iter().map(|p| u64::from(p.samples)).sum();
    // The last page's granule is the end of the audio: the last packet may be trimmed.
    let granule = last_granule(sample::OPUS);
    assert!(
        total >= granule && total - granule < 960,
        "{total} vs granule {granule}"
    );
    assert!(total >= 3 * 48_000);
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(p.timestamp, Duration::from_millis(20 * i as u64));
    }
}

#[test]
fn packets_spanning_segments_and_pages_come_back_whole() {
    let packets: Vec<Vec<u8>> = (0..5u8)
        .map(|i| {
            let mut p = vec![0xF8]; // CELT 20 ms
            p.extend(std::iter::repeat_n(i, 254 + 255 * usize::from(i)));
            p
        })
        .collect();
    let mut writer = OggOpusWriter::new(Vec::new(), 2).unwrap();
    for (i, p) in packets.iter().enumerate() {
        writer.write_packet(p, i == packets.len() - 1).unwrap();
    }
    let bytes = writer.into_inner();
    let (head, read) = all_packets(&bytes).unwrap();
    assert_eq!(head.channels, 2);
    let read: Vec<Vec<u8>> = read.into_iter().map(|p| p.data).collect();
    assert_eq!(read, packets);
}

fn err_of(data: &[u8]) -> MediaError {
    all_packets(data).expect_err("bad input is refused")
}

#[test]
fn empty_input_is_refused() {
    assert!(matches!(err_of(&[]), MediaError::Empty { .. }));
}

#[test]
fn non_ogg_input_is_named() {
    let e = err_of(sample::H264);
    assert!(matches!(e, MediaError::WrongFormat { .. }), "{e:?}");
    assert!(
        e.to_string().contains("found an H.264 Annex-B stream"),
        "{e}"
    );
    assert!(err_of(sample::MKV).to_string().contains("Matroska"));
}

#[test]
fn ogg_that_is_not_opus_is_named() {
    let mut writer = OggOpusWriter {
        output: Vec::new(),
        serial: 1,
        sequence: 0,
        granule: 0,
    };
    writer
        .page(b"\x01vorbis\0\0\0\0\x02\x44\xac\0\0", 0x02, 0)
        .unwrap();
    let e = err_of(&writer.into_inner());
    assert!(matches!(e, MediaError::WrongFormat { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "expected an Ogg Opus stream, found an Ogg stream of Vorbis"
    );
}

#[test]
fn a_truncated_stream_is_refused() {
    // Cut just before, and inside, a page in the middle.
    let data = sample::OPUS;
    let pages: Vec<usize> = data
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"OggS")
        .map(|(i, _)| i)
        .collect();
    assert!(pages.len() >= 4, "{} pages", pages.len());
    let tenth = pages[pages.len() / 2];
    let e = err_of(&data[..tenth - 10]);
    assert!(matches!(e, MediaError::Truncated { .. }), "{e:?}");
    let e = err_of(&data[..tenth + 10]);
    assert!(matches!(e, MediaError::Truncated { .. }), "{e:?}");
}

#[test]
fn a_damaged_page_fails_its_crc() {
    let mut data = sample::OPUS.to_vec();
    let n = data.len();
    data[n / 2] ^= 0x40;
    let e = err_of(&data);
    assert!(e.to_string().contains("CRC"), "{e}");
}

#[test]
fn an_invalid_opus_packet_is_refused() {
    let mut writer = OggOpusWriter::new(Vec::new(), 1).unwrap();
    writer.write_packet(&[0xF8, 1, 2], false).unwrap();
    writer.write_packet(&[0xFB, 0], true).unwrap(); // code 3, zero frames
    let e = err_of(&writer.into_inner());
    assert!(e.to_string().contains("invalid Opus packet"), "{e}");
}

use std::io::Read;
use std::time::Duration;

use super::*;
use crate::sample;

/// A reader that hands out at most `step` bytes per call, like a pipe.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn read_all(data: &[u8], step: usize) -> Result<Vec<AccessUnit>, MediaError> {
    let mut reader = AnnexBReader::new(Trickle { data, step }, 25);
    let mut out = Vec::new();
    while let Some(unit) = reader.next_access_unit()? {
        out.push(unit);
    }
    Ok(out)
}

#[test]
fn the_sample_reads_as_its_75_access_units_however_it_is_chunked() {
    let expected = h264::access_units(sample::H264);
    for step in [1, 7, 4096, usize::MAX] {
        let units = read_all(sample::H264, step).unwrap();
        assert_eq!(units.len(), 75, "step {step}");
        for (i, (got, want)) in units.iter().zip(&expected).enumerate() {
            assert_eq!(got.data, *want, "unit {i}, step {step}");
            assert_eq!(got.timestamp, Duration::from_millis(40 * i as u64));
            assert_eq!(got.keyframe, i % 25 == 0, "unit {i}");
        }
    }
}

fn expect_err(data: &[u8]) -> MediaError {
    read_all(data, 3).expect_err("bad input is refused")
}

#[test]
fn an_empty_input_is_refused() {
    let e = expect_err(&[]);
    assert!(matches!(e, MediaError::Empty { .. }), "{e:?}");
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn other_formats_are_named() {
    let e = expect_err(sample::OPUS);
    assert!(matches!(e, MediaError::WrongFormat { .. }), "{e:?}");
    assert!(e.to_string().contains("found an Ogg file"), "{e}");
    let e = expect_err(sample::MKV);
    assert!(e.to_string().contains("Matroska"), "{e}");
    let e = expect_err(b"hello, world, this is text");
    assert!(e.to_string().contains("data starting with"), "{e}");
}

/// Found by the `annexb_reader` fuzz target (issue #25): the start was judged on its first 5
/// bytes, so a pipe handing out small reads named other bytes than a file read at once, and an
/// MP4 (told by bytes 4..8) piped in was "data starting with ...".
#[test]
fn a_wrong_start_is_named_the_same_however_it_is_chunked() {
    let found = [0x00, 0x00, 0x56, 0x00, 0x41, 0x01, 0x65, 0x88];
    let whole = read_all(&found, usize::MAX)
        .expect_err("not Annex-B")
        .to_string();
    for step in 1..8 {
        let chunked = read_all(&found, step).expect_err("not Annex-B").to_string();
        assert_eq!(chunked, whole, "step {step}");
    }
    // Found next: a start code after more than 8 zeros is a start code, however it is read.
    let mut zeros_then_stream = vec![0u8; 12];
    zeros_then_stream.extend_from_slice(&[0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 1, 0x65, 0x88]);
    let read = |step| {
        read_all(&zeros_then_stream, step)
            .map(|u| u.len())
            .map_err(|e| e.to_string())
    };
    let whole = read(usize::MAX);
    for step in 1..8 {
        assert_eq!(read(step), whole, "step {step}");
    }
    let mp4 = b"\0\0\0\x18ftypisom\0\0\x02\0";
    for step in [1, 3, 5, usize::MAX] {
        let e = read_all(mp4, step).expect_err("not Annex-B");
        assert!(e.to_string().contains("MP4"), "step {step}: {e}");
    }
}

#[test]
fn h265_is_recognised() {
    // VPS, SPS of an HEVC stream.
    let e = expect_err(&[
        0, 0, 0, 1, 0x40, 0x01, 0x0c, 0x01, 0, 0, 0, 1, 0x42, 0x01, 0x01,
    ]);
    assert!(e.to_string().contains("H.265"), "{e}");
}

#[test]
fn a_forbidden_bit_is_refused() {
    let e = expect_err(&[0, 0, 0, 1, 0xe5, 0x88, 0x80, 0, 0, 1, 0x41, 0x9a]);
    assert!(e.to_string().contains("forbidden bit"), "{e}");
}

#[test]
fn a_truncated_nal_unit_is_refused() {
    // The sample, cut right after the header byte of a slice NAL unit.
    let units = h264::access_units(sample::H264);
    let mut data = units[..3].concat();
    data.extend_from_slice(&[0, 0, 0, 1, 0x41]);
    let mut reader = AnnexBReader::new(&data[..], 25);
    for _ in 0..2 {
        reader.next_access_unit().unwrap().unwrap();
    }
    // Without the byte after its header the cut slice cannot start a picture: it ends the
    // third access unit, which is refused.
    let e = reader.next_access_unit().unwrap_err();
    assert!(matches!(e, MediaError::Truncated { .. }), "{e:?}");
    assert!(e.to_string().contains("no data"), "{e}");
}

#[test]
fn parameter_sets_without_a_picture_at_the_end_are_a_truncation() {
    let mut data = h264::access_units(sample::H264)[1].to_vec();
    data.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0, 0, 0, 1, 0x68, 0xce]);
    let e = read_all(&data, 5).unwrap_err();
    assert!(matches!(e, MediaError::Truncated { .. }), "{e:?}");
}

#[test]
fn no_boundary_within_the_limit_is_refused_without_reading_everything() {
    let mut data = vec![0, 0, 0, 1, 0x65, 0x88];
    data.extend(std::iter::repeat_n(0xff, 1 << 20));
    let mut reader = AnnexBReader::new(&data[..], 25).with_max_access_unit(256 << 10);
    let e = reader.next_access_unit().unwrap_err();
    assert!(
        e.to_string()
            .contains("no access unit boundary within 262144 bytes"),
        "{e}"
    );
}

#[test]
fn read_errors_surface() {
    struct Broken;
    impl Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "gone"))
        }
    }
    let e = AnnexBReader::new(Broken, 25)
        .next_access_unit()
        .unwrap_err();
    assert!(matches!(e, MediaError::Io(_)), "{e:?}");
}

use super::*;
use crate::sample;

fn all(data: &[u8]) -> Result<(Tracks, Vec<Frame>), MediaError> {
    let mut reader = MkvReader::new(data)?;
    let mut frames = Vec::new();
    while let Some(f) = reader.next_frame()? {
        frames.push(f);
    }
    Ok((reader.tracks().clone(), frames))
}

#[test]
fn the_sample_gives_back_the_same_access_units_and_opus_packets() {
    let (tracks, frames) = all(sample::MKV).unwrap();
    assert!(
        tracks.video.is_some() && tracks.audio.is_some(),
        "{tracks:?}"
    );
    let video: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.kind == FrameKind::Video)
        .collect();
    let audio: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.kind == FrameKind::Audio)
        .collect();
    // The same pictures as the raw H.264 (ffmpeg -c copy keeps the bitstream).
    let raw = h264::access_units(sample::H264);
    assert_eq!(video.len(), raw.len());
    for (i, (got, want)) in video.iter().zip(&raw).enumerate() {
        let units = |b: &[u8]| {
            h264::nal_units(b)
                .iter()
                .map(|u| u.to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(units(&got.data), units(want), "frame {i}");
        assert_eq!(got.keyframe, h264::is_keyframe(want), "frame {i}");
        let since_first = got.timestamp - video[0].timestamp;
        assert_eq!(
            since_first,
            Duration::from_millis(40 * i as u64),
            "frame {i}"
        );
    }
    // The same Opus packets as the Ogg file.
    let mut ogg = crate::ogg::OggOpusReader::new(sample::OPUS).unwrap();
    let mut packets = Vec::new();
    while let Some(p) = ogg.next_packet().unwrap() {
        packets.push(p.data);
    }
    let got: Vec<Vec<u8>> = audio.iter().map(|f| f.data.clone()).collect();
    assert_eq!(got, packets);
}

#[test]
fn a_pipe_like_reader_works_too() {
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(13);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let mut reader = MkvReader::new(Trickle(sample::MKV)).unwrap();
    let mut n = 0;
    while reader.next_frame().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, all(sample::MKV).unwrap().1.len());
}

#[test]
fn bad_input_is_named() {
    assert!(matches!(all(&[]), Err(MediaError::Empty { .. })));
    let e = all(sample::H264).unwrap_err();
    assert!(
        e.to_string().contains("expected a Matroska/WebM file"),
        "{e}"
    );
    let e = all(&sample::MKV[..sample::MKV.len() / 2]).unwrap_err();
    assert!(matches!(e, MediaError::Truncated { .. }), "{e:?}");
    let e = all(&sample::MKV[..40]).unwrap_err();
    assert!(matches!(e, MediaError::Truncated { .. }), "{e:?}");
}

#[test]
fn keyframes_without_parameter_sets_get_those_of_codec_private() {
    // A file as some muxers write it: SPS and PPS only in the avcC, not in band.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out-of-band.mkv");
    let aus = h264::access_units(sample::H264);
    let first = h264::nal_units(aus[0]);
    let video = crate::mkv::VideoParams {
        width: 320,
        height: 240,
        sps: first[0].to_vec(),
        pps: first[1].to_vec(),
    };
    let mut writer = crate::mkv::MkvWriter::create(&path, &video).unwrap();
    for (i, au) in aus.iter().take(30).enumerate() {
        let units: Vec<&[u8]> = h264::nal_units(au)
            .into_iter()
            .filter(|u| !matches!(h264::nal_type(u), h264::NAL_SPS | h264::NAL_PPS))
            .collect();
        let ts = 40 * i as i64;
        writer
            .write_frame(
                crate::mkv::VIDEO_TRACK,
                ts,
                ts + 40,
                h264::is_keyframe(au),
                &crate::mkv::annex_b_to_avcc(&units),
            )
            .unwrap();
    }
    writer.finish().unwrap();
    let (_, frames) = all(&std::fs::read(&path).unwrap()).unwrap();
    let keyframes: Vec<&Frame> = frames.iter().filter(|f| f.keyframe).collect();
    assert_eq!(keyframes.len(), 2);
    for frame in keyframes {
        let types: Vec<u8> = h264::nal_units(&frame.data)
            .iter()
            .map(|u| h264::nal_type(u))
            .collect();
        assert_eq!(&types[..2], [h264::NAL_SPS, h264::NAL_PPS], "{types:?}");
    }
    let other = frames.iter().find(|f| !f.keyframe).unwrap();
    assert!(h264::nal_units(&other.data)
        .iter()
        .all(|u| h264::nal_type(u) == h264::NAL_SLICE));
}

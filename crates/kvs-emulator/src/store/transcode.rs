//! Opus to AAC-LC, as the service transcodes the audio of a WebRTC storage session before it
//! keeps it in the stream (track 2, `A_AAC`).
//!
//! The libraries, and why:
//! - **Opus decoding: libopus** through the `opus` crate. libopus is the reference decoder and
//!   the one browsers use; its `opusic-sys` builds the bundled libopus source with `cmake`, so a
//!   fresh machine needs no `libopus-dev` (pure-Rust decoders exist but are young; symphonia has
//!   no Opus decoder).
//! - **AAC encoding: Fraunhofer FDK AAC** through the `fdk-aac` crate, whose `-sys` crate
//!   compiles the bundled FDK sources with the C compiler cargo already uses. It is the encoder
//!   Android ships and the best-regarded AAC-LC encoder; Debian does not package it (its
//!   licence keeps it out of `main`), so a crate that brings the source is the only way to
//!   have it without a spawned binary. The alternatives: FFmpeg's native AAC encoder through
//!   `ffmpeg-next` needs the `libav*-dev` packages and a binding that matches Debian's FFmpeg;
//!   no pure-Rust AAC encoder is mature. The FDK licence allows use and redistribution of the
//!   source; the emulator is a test tool that is not published (`publish = false`).
//!
//! Timing: the decoded PCM runs on its own sample clock from the first packet's producer
//! timestamp. A packet that arrives later than the clock expects (loss, a pause) is preceded
//! by silence up to [`MAX_FILLED_GAP_MS`]; a longer gap moves the clock instead. Access unit
//! `k` carries samples from `k * 1024 - delay` on, `delay` being the encoder's, so audio stays
//! in step with video.

use kvs_media::mkv::AacParams;

/// The sample rate of both codecs here (Opus always decodes at 48 kHz).
const SAMPLE_RATE: u32 = 48_000;
/// Channels decoded and encoded.
const CHANNELS: usize = 2;
/// Samples per channel in one AAC-LC access unit.
const AAC_FRAME: usize = 1024;
/// Bit rate of the AAC track (the service does not publish its own).
const AAC_BIT_RATE: u32 = 128_000;
/// The longest Opus packet: 120 ms at 48 kHz.
const MAX_OPUS_SAMPLES: usize = 5760;
/// A gap in the audio up to this long is filled with silence; a longer one moves the clock.
pub(crate) const MAX_FILLED_GAP_MS: i64 = 2_000;
/// A gap shorter than this is jitter of the millisecond timestamps, not missing audio.
const GAP_TOLERANCE_MS: i64 = 30;

/// Why the transcoder could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TranscodeError {
    /// libopus refused to create a decoder.
    #[error("the Opus decoder could not be created")]
    Decoder(#[source] opus::Error),
    /// FDK refused the encoder settings.
    #[error("the AAC encoder could not be created ({0})")]
    Encoder(String),
}

/// One AAC access unit and its producer timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AacFrame {
    /// Producer timestamp in ms since the epoch.
    pub timestamp_ms: i64,
    /// The raw access unit.
    pub data: Vec<u8>,
}

/// Decodes one session's Opus packets and encodes AAC-LC access units.
pub(crate) struct OpusToAac {
    decoder: opus::Decoder,
    encoder: fdk_aac::enc::Encoder,
    params: AacParams,
    /// Encoder delay in samples per channel.
    delay: i64,
    /// Producer time of input sample 0, once the first packet came.
    origin_ms: Option<i64>,
    samples_in: u64,
    units_out: u64,
    /// Interleaved PCM waiting for a whole access unit.
    pcm: Vec<i16>,
    decoded: Vec<i16>,
    encoded: Vec<u8>,
    /// Packets libopus refused.
    bad_packets: u64,
}

impl std::fmt::Debug for OpusToAac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusToAac")
            .field("params", &self.params)
            .field("samples_in", &self.samples_in)
            .field("units_out", &self.units_out)
            .finish_non_exhaustive()
    }
}

impl OpusToAac {
    /// A transcoder to 48 kHz stereo AAC-LC.
    pub(crate) fn new() -> Result<Self, TranscodeError> {
        use fdk_aac::enc::{
            AudioObjectType, BitRate, ChannelMode, Encoder, EncoderParams, Transport,
        };
        let decoder = opus::Decoder::new(SAMPLE_RATE, opus::Channels::Stereo)
            .map_err(TranscodeError::Decoder)?;
        let encoder = Encoder::new(EncoderParams {
            bit_rate: BitRate::Cbr(AAC_BIT_RATE),
            sample_rate: SAMPLE_RATE,
            transport: Transport::Raw,
            channels: ChannelMode::Stereo,
            audio_object_type: AudioObjectType::Mpeg4LowComplexity,
        })
        .map_err(|e| TranscodeError::Encoder(e.to_string()))?;
        let info = encoder
            .info()
            .map_err(|e| TranscodeError::Encoder(e.to_string()))?;
        let config_len = (info.confSize as usize).min(info.confBuf.len());
        let params = AacParams {
            audio_specific_config: info.confBuf[..config_len].to_vec(),
            sample_rate: SAMPLE_RATE,
            channels: CHANNELS as u8,
        };
        Ok(Self {
            decoder,
            encoder,
            params,
            delay: i64::from(info.nDelay),
            origin_ms: None,
            samples_in: 0,
            units_out: 0,
            pcm: Vec::with_capacity(4 * AAC_FRAME * CHANNELS),
            decoded: vec![0; MAX_OPUS_SAMPLES * CHANNELS],
            encoded: vec![0; 8 * 1024],
            bad_packets: 0,
        })
    }

    /// The AAC track's parameters (its AudioSpecificConfig among them).
    pub(crate) fn params(&self) -> &AacParams {
        &self.params
    }

    /// Opus packets libopus could not decode (skipped; the gap is filled with silence).
    pub(crate) fn bad_packets(&self) -> u64 {
        self.bad_packets
    }

    /// One Opus packet at producer time `timestamp_ms`; appends the access units it completed.
    pub(crate) fn push(&mut self, timestamp_ms: i64, packet: &[u8], out: &mut Vec<AacFrame>) {
        let origin = *self.origin_ms.get_or_insert(timestamp_ms);
        let expected = origin + (self.samples_in * 1000 / u64::from(SAMPLE_RATE)) as i64;
        let gap = timestamp_ms - expected;
        if gap > MAX_FILLED_GAP_MS {
            self.origin_ms = Some(origin + gap);
        } else if gap > GAP_TOLERANCE_MS {
            let missing = gap as usize * SAMPLE_RATE as usize / 1000;
            self.pcm.resize(self.pcm.len() + missing * CHANNELS, 0);
            self.samples_in += missing as u64;
        }
        match self.decoder.decode(packet, &mut self.decoded, false) {
            Ok(samples) => {
                let samples = samples.min(MAX_OPUS_SAMPLES);
                self.pcm
                    .extend_from_slice(&self.decoded[..samples * CHANNELS]);
                self.samples_in += samples as u64;
            }
            Err(e) => {
                self.bad_packets += 1;
                tracing::debug!(error = %e, "an Opus packet could not be decoded; skipped");
            }
        }
        self.encode_whole_units(out);
    }

    fn encode_whole_units(&mut self, out: &mut Vec<AacFrame>) {
        let unit = AAC_FRAME * CHANNELS;
        let mut consumed_total = 0;
        while self.pcm.len() - consumed_total >= unit {
            let input = &self.pcm[consumed_total..consumed_total + unit];
            let info = match self.encoder.encode(input, &mut self.encoded) {
                Ok(info) => info,
                Err(e) => {
                    tracing::warn!(error = %e, "the AAC encoder refused a frame; it is skipped");
                    consumed_total += unit;
                    continue;
                }
            };
            // FDK takes whole frames; never loop on a call that consumed nothing.
            consumed_total += info.input_consumed.clamp(1, unit);
            if info.output_size > 0 {
                let first_sample = self.units_out as i64 * AAC_FRAME as i64 - self.delay;
                let origin = self.origin_ms.unwrap_or(0);
                out.push(AacFrame {
                    timestamp_ms: origin + first_sample * 1000 / i64::from(SAMPLE_RATE),
                    data: self.encoded[..info.output_size.min(self.encoded.len())].to_vec(),
                });
                self.units_out += 1;
            }
        }
        self.pcm.drain(..consumed_total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20 ms Opus packets of a `hz` tone (mono, as the sample clip), from libopus's encoder.
    fn tone_packets(hz: f64, seconds: usize) -> Vec<Vec<u8>> {
        let mut encoder =
            opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Audio)
                .unwrap();
        let mut packets = Vec::new();
        for p in 0..seconds * 50 {
            let pcm: Vec<i16> = (0..960)
                .map(|i| {
                    let t = (p * 960 + i) as f64 / f64::from(SAMPLE_RATE);
                    ((2.0 * std::f64::consts::PI * hz * t).sin() * 12_000.0) as i16
                })
                .collect();
            packets.push(encoder.encode_vec(&pcm, 4000).unwrap());
        }
        packets
    }

    /// Frequency of a tone from its zero crossings.
    fn frequency(pcm: &[i16], rate: f64) -> f64 {
        let crossings = pcm.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        crossings as f64 / 2.0 / (pcm.len() as f64 / rate)
    }

    fn transcode(packets: &[Vec<u8>], start_ms: i64) -> (OpusToAac, Vec<AacFrame>) {
        let mut t = OpusToAac::new().unwrap();
        let mut out = Vec::new();
        for (i, packet) in packets.iter().enumerate() {
            t.push(start_ms + i as i64 * 20, packet, &mut out);
        }
        (t, out)
    }

    #[test]
    fn a_tone_comes_out_as_aac_lc_of_the_same_frequency() {
        let (t, units) = transcode(&tone_packets(440.0, 3), 1_000_000);
        // AudioSpecificConfig: AAC-LC (2), 48 kHz (index 3), 2 channels.
        assert_eq!(t.params().audio_specific_config, [0x11, 0x90]);
        let expected_units = 3 * 48_000 / 1024;
        assert!(
            (expected_units - 3..=expected_units).contains(&units.len()),
            "{} units for 3 s",
            units.len()
        );
        let mut decoder = fdk_aac::dec::Decoder::new(fdk_aac::dec::Transport::Raw);
        decoder
            .config_raw(&t.params().audio_specific_config)
            .unwrap();
        let mut mono = Vec::new();
        let mut pcm = vec![0i16; AAC_FRAME * CHANNELS];
        for unit in &units {
            decoder.fill(&unit.data).unwrap();
            decoder.decode_frame(&mut pcm).unwrap();
            mono.extend(pcm.chunks(CHANNELS).map(|c| c[0]));
        }
        // Skip the encoder's priming, measure the rest.
        let hz = frequency(&mono[4096..], 48_000.0);
        assert!((hz - 440.0).abs() < 3.0, "{hz} Hz");
    }

    #[test]
    fn access_units_are_stamped_on_the_sample_clock_from_the_first_packet() {
        let (t, units) = transcode(&tone_packets(440.0, 1), 5_000);
        let delay = t.delay;
        for (k, unit) in units.iter().enumerate() {
            let expected = 5_000 + (k as i64 * 1024 - delay) * 1000 / 48_000;
            assert_eq!(unit.timestamp_ms, expected, "unit {k}");
        }
        assert!(
            units[0].timestamp_ms < 5_000,
            "the first unit holds the encoder's priming"
        );
    }

    #[test]
    fn a_short_gap_is_filled_with_silence_and_a_long_one_moves_the_clock() {
        let packets = tone_packets(440.0, 2);
        let mut t = OpusToAac::new().unwrap();
        let mut out = Vec::new();
        for (i, packet) in packets[..10].iter().enumerate() {
            t.push(i as i64 * 20, packet, &mut out);
        }
        // 10 packets (200 ms) lost, then the next one.
        t.push(400, &packets[20], &mut out);
        assert_eq!(t.samples_in, 21 * 960, "the 200 ms gap was filled");
        // A pause of 10 s: the clock jumps instead of 10 s of silence.
        t.push(10_420, &packets[21], &mut out);
        assert_eq!(t.samples_in, 22 * 960);
        assert_eq!(t.origin_ms, Some(10_420 - 21 * 20));
        t.push(10_440, b"\xff\xff\xff not opus", &mut out);
        assert_eq!(t.bad_packets(), 1);
    }
}

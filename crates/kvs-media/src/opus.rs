//! How long an Opus packet plays, from its TOC byte (RFC 6716 §3.1).

use std::time::Duration;

/// Opus always runs at 48 kHz in RTP and Ogg (RFC 7587, RFC 7845).
pub const SAMPLE_RATE: u32 = 48_000;

/// The longest packet Opus allows: 120 ms.
pub const MAX_PACKET_SAMPLES: u32 = 5_760;

/// The number of 48 kHz samples an Opus packet decodes to, or `None` when the packet is empty,
/// its frame count byte is missing, or it would exceed 120 ms (not a valid Opus packet).
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame_samples: u32 = match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(packet.get(1)? & 0x3f),
    };
    let samples = frame_samples * frames;
    (frames > 0 && samples <= MAX_PACKET_SAMPLES).then_some(samples)
}

/// [`packet_samples`] as a duration.
pub fn packet_duration(packet: &[u8]) -> Option<Duration> {
    packet_samples(packet).map(samples_to_duration)
}

/// 48 kHz samples as a duration.
pub fn samples_to_duration(samples: u32) -> Duration {
    Duration::from_micros(u64::from(samples) * 1_000_000 / u64::from(SAMPLE_RATE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_toc_byte() {
        // CELT fullband 20 ms, one frame (what ffmpeg's libopus writes by default).
        assert_eq!(packet_samples(&[0xF8, 0xFF, 0xFE]), Some(960));
        // SILK 60 ms (config 3), two frames (code 1): 120 ms.
        assert_eq!(packet_samples(&[(3 << 3) | 1, 0]), Some(5760));
        // CELT 2.5 ms (config 16), code 3 with 4 frames.
        assert_eq!(packet_samples(&[(16 << 3) | 3, 4]), Some(480));
        // Hybrid 10 ms (config 12).
        assert_eq!(packet_samples(&[12 << 3]), Some(480));
        assert_eq!(packet_duration(&[0xF8]), Some(Duration::from_millis(20)));
    }

    #[test]
    fn invalid_packets_have_no_duration() {
        assert_eq!(packet_samples(&[]), None);
        // Code 3 without its frame count byte.
        assert_eq!(packet_samples(&[0xFB]), None);
        // Code 3 with zero frames.
        assert_eq!(packet_samples(&[0xFB, 0]), None);
        // 60 ms × 3 frames = 180 ms: more than Opus allows.
        assert_eq!(packet_samples(&[(3 << 3) | 3, 3]), None);
    }
}

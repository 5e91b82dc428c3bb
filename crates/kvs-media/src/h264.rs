//! Just enough H.264 for ingestion: NAL units in Annex-B data, access-unit boundaries in a
//! stream, and the profile and resolution in a sequence parameter set, as the service checks them.

/// NAL unit type of an IDR slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// The NAL units of an Annex-B access unit (start codes removed).
pub fn nal_units(annex_b: &[u8]) -> Vec<&[u8]> {
    NalUnits::new(annex_b).collect()
}

/// Where the start codes (`00 00 01`) of `data` are, in order (SIMD-searched by `memchr`:
/// this scan is on the hot path of every frame).
fn start_codes(data: &[u8]) -> memchr::memmem::FindIter<'_, 'static> {
    memchr::memmem::find_iter(data, &[0, 0, 1])
}

/// The NAL units of an Annex-B byte string, without their start codes: what [`nal_units`]
/// collects.
#[derive(Debug)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    codes: std::iter::Peekable<memchr::memmem::FindIter<'a, 'static>>,
    /// No start code at all: the whole input is one unit.
    bare: bool,
}

impl<'a> NalUnits<'a> {
    /// The units of `annex_b`.
    pub fn new(annex_b: &'a [u8]) -> Self {
        let mut codes = start_codes(annex_b).peekable();
        let bare = codes.peek().is_none() && !annex_b.is_empty();
        Self {
            data: annex_b,
            codes,
            bare,
        }
    }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if std::mem::take(&mut self.bare) {
            return Some(self.data);
        }
        loop {
            let payload_start = self.codes.next()? + 3;
            let next = self.codes.peek().copied();
            let mut end = next.unwrap_or(self.data.len());
            // A 4-byte start code leaves a zero byte at the end of the previous unit.
            while next.is_some() && end > payload_start && self.data[end - 1] == 0 {
                end -= 1;
            }
            if end > payload_start {
                return Some(&self.data[payload_start..end]);
            }
        }
    }
}

/// NAL unit type of a non-IDR slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// Splits an Annex-B byte stream (a `.h264` file, an encoder's output) into access units, each
/// with its start codes, as a WebRTC sender takes them: one picture per unit, with the parameter
/// sets, SEI or delimiter in front of it.
///
/// A new access unit starts at an access unit delimiter, SPS, PPS or SEI that follows a slice,
/// and at a slice whose `first_mb_in_slice` is 0 after another slice (H.264 §7.4.1.2.3, for
/// streams without arbitrary slice order). Data before the first start code is ignored.
pub fn access_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = AccessUnitStarts::new(stream).peekable();
    let mut units = Vec::new();
    while let Some(start) = starts.next() {
        let end = starts.peek().copied().unwrap_or(stream.len());
        units.push(&stream[start..end]);
    }
    units
}

/// Where the first access unit of `stream` ends, if it is known to be complete: the offset of
/// the next one's start, or the end of `stream` when `at_end` (no more data will come). Scans
/// only as far as that start, for a reader that takes one unit at a time.
pub fn first_access_unit_end(stream: &[u8], at_end: bool) -> Option<usize> {
    let mut starts = AccessUnitStarts::new(stream);
    starts.next()?;
    match starts.next() {
        Some(next) => Some(next),
        None if at_end => Some(stream.len()),
        None => None,
    }
}

/// The offsets where the access units of a stream begin (see [`access_units`] for the rule).
#[derive(Debug)]
struct AccessUnitStarts<'a> {
    stream: &'a [u8],
    codes: memchr::memmem::FindIter<'a, 'static>,
    started: bool,
    seen_slice: bool,
}

impl<'a> AccessUnitStarts<'a> {
    fn new(stream: &'a [u8]) -> Self {
        Self {
            stream,
            codes: start_codes(stream),
            started: false,
            seen_slice: false,
        }
    }
}

impl Iterator for AccessUnitStarts<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let stream = self.stream;
        loop {
            let i = self.codes.next()?;
            // Include the leading zero of a 4-byte start code in the unit it starts.
            let code_start = if i > 0 && stream[i - 1] == 0 {
                i - 1
            } else {
                i
            };
            let kind = stream.get(i + 3).map(|b| b & 0x1f).unwrap_or(0);
            let is_slice = kind == NAL_SLICE || kind == NAL_IDR;
            let begins_picture = match kind {
                NAL_AUD | NAL_SPS | NAL_PPS | NAL_SEI => self.seen_slice,
                // first_mb_in_slice is ue(v); 0 is coded as a single 1 bit.
                _ if is_slice => {
                    self.seen_slice && stream.get(i + 4).is_some_and(|b| b & 0x80 != 0)
                }
                _ => false,
            };
            let starts_unit = !std::mem::replace(&mut self.started, true) || begins_picture;
            if begins_picture {
                self.seen_slice = false;
            }
            self.seen_slice |= is_slice;
            if starts_unit {
                return Some(code_start);
            }
        }
    }
}

/// Whether an Annex-B access unit holds an IDR slice (a decoder can start there).
pub fn is_keyframe(access_unit: &[u8]) -> bool {
    nal_units(access_unit)
        .iter()
        .any(|unit| nal_type(unit) == NAL_IDR)
}

/// The type of a NAL unit (low five bits of its first byte).
pub fn nal_type(unit: &[u8]) -> u8 {
    unit.first().map(|b| b & 0x1f).unwrap_or(0)
}

/// What a sequence parameter set says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// The `constraint_set0..5` flags byte (bit 7 = constraint_set0).
    pub constraint_flags: u8,
    /// `level_idc` (31 = level 3.1).
    pub level_idc: u8,
    /// Width in pixels, after cropping.
    pub width: u32,
    /// Height in pixels, after cropping.
    pub height: u32,
}

impl Sps {
    /// The profile's name as the service lists it, or `None` for a profile it does not accept.
    pub fn allowed_profile(&self) -> Option<&'static str> {
        profile_name(self.profile_idc, self.constraint_flags)
    }
}

/// Map `profile_idc` and constraint flags to the names the service accepts (§5.1).
pub fn profile_name(profile_idc: u8, constraints: u8) -> Option<&'static str> {
    let set1 = constraints & 0x40 != 0;
    let set4 = constraints & 0x08 != 0;
    let set5 = constraints & 0x04 != 0;
    match profile_idc {
        66 if set1 => Some("constrained-baseline"),
        66 => Some("baseline"),
        77 if set1 => Some("constrained-baseline"),
        77 => Some("main"),
        100 if set4 && set5 => Some("constrained-high"),
        100 if set4 => Some("progressive-high"),
        100 => Some("high"),
        _ => None,
    }
}

struct BitReader {
    data: Vec<u8>,
    pos: usize,
}

impl BitReader {
    fn bit(&mut self) -> Option<u32> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(bit))
    }

    fn bits(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |acc, _| Some(acc << 1 | self.bit()?))
    }

    fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i32> {
        let k = self.ue()?;
        Some(if k % 2 == 1 {
            k.div_ceil(2) as i32
        } else {
            -((k / 2) as i32)
        })
    }
}

fn unescape(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len());
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Parse a sequence parameter set NAL unit (including its one-byte header).
pub fn parse_sps(unit: &[u8]) -> Option<Sps> {
    if nal_type(unit) != NAL_SPS || unit.len() < 4 {
        return None;
    }
    let mut r = BitReader {
        data: unescape(&unit[1..]),
        pos: 0,
    };
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = 0;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? == 1 {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i32, 8i32);
                    for _ in 0..size {
                        if next != 0 {
                            // delta_scale is in -128..=127; more is not an SPS.
                            let delta = r.se()?;
                            if !(-128..=127).contains(&delta) {
                                return None;
                            }
                            next = (last + delta + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?;
        }
        1 => {
            r.bit()?;
            r.se()?;
            r.se()?;
            let cycle = r.ue()?;
            if cycle > 255 {
                return None;
            }
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = r.ue()? + 1;
    let height_map_units = r.ue()? + 1;
    let frame_mbs_only = r.bit()?;
    if frame_mbs_only == 0 {
        r.bit()?;
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_l, mut crop_r, mut crop_t, mut crop_b) = (0, 0, 0, 0);
    if r.bit()? == 1 {
        crop_l = r.ue()?;
        crop_r = r.ue()?;
        crop_t = r.ue()?;
        crop_b = r.ue()?;
    }
    let chroma_array_type = if separate_colour_plane == 1 {
        0
    } else {
        chroma_format_idc
    };
    let (sub_w, sub_h): (u32, u32) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_unit_x = if chroma_array_type == 0 { 1 } else { sub_w };
    let crop_unit_y = if chroma_array_type == 0 {
        2 - frame_mbs_only
    } else {
        sub_h * (2 - frame_mbs_only)
    };
    // In u64: every value read is below 2^32, so no product here overflows; a size that does
    // not fit u32 is not an SPS.
    let [crop_l, crop_r, crop_t, crop_b] = [crop_l, crop_r, crop_t, crop_b].map(u64::from);
    let width =
        (u64::from(width_mbs) * 16).checked_sub(u64::from(crop_unit_x) * (crop_l + crop_r))?;
    let height = (u64::from(2 - frame_mbs_only) * u64::from(height_map_units) * 16)
        .checked_sub(u64::from(crop_unit_y) * (crop_t + crop_b))?;
    let width = u32::try_from(width).ok()?;
    let height = u32::try_from(height).ok()?;
    Some(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xe0, 0x1f];

    /// Bits written MSB first, with Exp-Golomb codes, to build SPSs by hand.
    #[derive(Default)]
    struct Bits(Vec<bool>);

    impl Bits {
        fn put(&mut self, value: u64, n: u32) -> &mut Self {
            for i in (0..n).rev() {
                self.0.push(value >> i & 1 == 1);
            }
            self
        }
        fn ue(&mut self, value: u64) -> &mut Self {
            let v = value + 1;
            let len = 64 - v.leading_zeros();
            self.put(0, len - 1).put(v, len)
        }
        fn se(&mut self, value: i64) -> &mut Self {
            let k = if value > 0 { 2 * value - 1 } else { -2 * value };
            self.ue(k as u64)
        }
        /// The bits after a NAL header, padded with a stop bit, without emulation prevention
        /// (no run of zero bytes is written here).
        fn sps(&mut self) -> Vec<u8> {
            self.put(1, 1);
            while !self.0.len().is_multiple_of(8) {
                self.0.push(false);
            }
            let mut out = vec![0x67];
            out.extend(
                self.0
                    .chunks(8)
                    .map(|c| c.iter().fold(0u8, |a, &b| a << 1 | u8::from(b))),
            );
            out
        }
    }

    /// Found by the `h264_sps` fuzz target (issue #25): crop offsets near 2^32 overflowed the
    /// size computation (a panic in debug builds, a wrapped size in release).
    #[test]
    fn huge_crop_offsets_are_not_an_sps_and_do_not_overflow() {
        let found = [
            0x67, 0x42, 0xc4, 0xba, 0x1e, 0xd9, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00,
            0x03, 0x03, 0x20, 0xf1, 0x62, 0xe4,
        ];
        let _ = parse_sps(&found);
        // Baseline, 320x240 in macroblocks, cropping on with 2^32 - 2 on the left.
        let mut bits = Bits::default();
        bits.put(66, 8)
            .put(0, 8)
            .put(31, 8)
            .ue(0)
            .ue(0)
            .ue(0)
            .ue(0)
            .ue(1)
            .put(0, 1);
        bits.ue(19).ue(14).put(1, 1).put(1, 1).put(1, 1);
        bits.ue(u64::from(u32::MAX) - 1).ue(0).ue(0).ue(0).put(0, 1);
        assert_eq!(parse_sps(&bits.sps()), None);
    }

    /// Found by the `h264_sps` fuzz target's neighbours: a scaling list delta far outside
    /// -128..=127 overflowed `last + delta`.
    #[test]
    fn a_scaling_delta_out_of_range_is_not_an_sps_and_does_not_overflow() {
        let mut bits = Bits::default();
        // High profile, chroma 4:2:0, 8 bit, scaling matrix present, the first list present.
        bits.put(100, 8)
            .put(0, 8)
            .put(40, 8)
            .ue(0)
            .ue(1)
            .ue(0)
            .ue(0)
            .put(0, 1)
            .put(1, 1);
        bits.put(1, 1).se(i64::from(i32::MAX));
        assert_eq!(parse_sps(&bits.sps()), None);
    }

    #[test]
    fn a_hand_built_sps_reads_its_size() {
        let mut bits = Bits::default();
        bits.put(66, 8)
            .put(0, 8)
            .put(31, 8)
            .ue(0)
            .ue(0)
            .ue(0)
            .ue(0)
            .ue(1)
            .put(0, 1);
        bits.ue(19).ue(14).put(1, 1).put(1, 1).put(0, 1).put(0, 1);
        let sps = parse_sps(&bits.sps()).expect("an SPS");
        assert_eq!((sps.width, sps.height), (320, 240));
    }
    const PPS: &[u8] = &[0x68, 0xce];

    fn nal(code4: bool, unit: &[u8]) -> Vec<u8> {
        let mut out = if code4 {
            vec![0, 0, 0, 1]
        } else {
            vec![0, 0, 1]
        };
        out.extend_from_slice(unit);
        out
    }

    #[test]
    fn access_units_follow_pictures_not_nal_units() {
        // (NAL units end in a non-zero byte, as rbsp_trailing_bits guarantee.)
        // AU 1: SPS PPS IDR(two slices: first_mb 0, then first_mb != 0); AU 2: P slice;
        // AU 3: AUD + P slice; AU 4: SEI + IDR.
        let parts = [
            nal(true, SPS),
            nal(true, PPS),
            nal(false, &[0x65, 0x88, 0x80]),
            nal(false, &[0x65, 0x40, 0x80]), // first_mb_in_slice = 1: same picture
            nal(false, &[0x41, 0x9a, 0x80]),
            nal(true, &[0x09, 0xf0]),
            nal(false, &[0x41, 0x9b, 0x80]),
            nal(false, &[0x06, 0x05, 0x01]),
            nal(false, &[0x65, 0x88, 0x11]),
        ];
        let stream: Vec<u8> = parts.concat();
        let units = access_units(&stream);
        let expected: Vec<Vec<u8>> = vec![
            parts[..4].concat(),
            parts[4].clone(),
            parts[5..7].concat(),
            parts[7..].concat(),
        ];
        assert_eq!(
            units,
            expected.iter().map(Vec::as_slice).collect::<Vec<_>>()
        );
        assert_eq!(
            units.iter().map(|u| is_keyframe(u)).collect::<Vec<_>>(),
            [true, false, false, true]
        );
        // Together they are the whole stream: nothing lost between units.
        assert_eq!(units.concat(), stream);
    }

    #[test]
    fn garbage_and_truncation_do_not_panic() {
        assert!(access_units(&[]).is_empty());
        assert!(
            access_units(&[1, 2, 3]).is_empty(),
            "no start code, no unit"
        );
        assert_eq!(access_units(&[0, 0, 1]), [&[0u8, 0, 1][..]]);
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 % 5) as u8).collect();
            let _ = access_units(&data);
            let _ = nal_units(&data);
            let _ = parse_sps(&data);
        }
    }

    #[test]
    fn the_sample_clip_splits_into_its_75_frames() {
        let data = crate::sample::H264;
        let units = access_units(data);
        assert_eq!(units.len(), 75, "3 s at 25 fps");
        assert!(is_keyframe(units[0]));
        assert_eq!(units.concat(), data);
    }

    // SPS of the sample clip (sample/testsrc-320x240-25fps-3s.h264 (x264, constrained baseline 3.0), with
    // its emulation-prevention bytes.
    const SPS_320X240: [u8; 24] = [
        0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
        0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x62, 0xe4, 0x80,
    ];

    #[test]
    fn splits_annex_b_with_3_and_4_byte_start_codes() {
        let au = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let units = nal_units(&au);
        assert_eq!(
            units,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
        assert_eq!(
            units.iter().map(|u| nal_type(u)).collect::<Vec<_>>(),
            vec![7, 8, 5]
        );
    }

    #[test]
    fn parses_profile_and_resolution() {
        let sps = parse_sps(&SPS_320X240).expect("valid SPS");
        assert_eq!((sps.width, sps.height), (320, 240));
        assert_eq!(sps.allowed_profile(), Some("constrained-baseline"));
        assert_eq!(sps.level_idc, 30);
    }

    #[test]
    fn profile_names_follow_the_service_list() {
        assert_eq!(profile_name(100, 0x0c), Some("constrained-high"));
        assert_eq!(profile_name(100, 0x08), Some("progressive-high"));
        assert_eq!(profile_name(100, 0), Some("high"));
        assert_eq!(profile_name(110, 0), None, "High 10 is not accepted");
        assert_eq!(profile_name(88, 0), None, "Extended is not accepted");
    }

    #[test]
    fn truncated_sps_is_rejected_without_panicking() {
        for n in 0..SPS_320X240.len() - 3 {
            let _ = parse_sps(&SPS_320X240[..n]);
        }
    }

    // The byte-at-a-time splitters these replaced, kept as the reference of the SIMD search.
    fn byte_loop_nal_units(annex_b: &[u8]) -> Vec<&[u8]> {
        let mut units = Vec::new();
        let mut starts = Vec::new();
        let mut i = 0;
        while i + 3 <= annex_b.len() {
            if annex_b[i] == 0 && annex_b[i + 1] == 0 && annex_b[i + 2] == 1 {
                starts.push((i, i + 3));
                i += 3;
            } else {
                i += 1;
            }
        }
        if starts.is_empty() {
            if !annex_b.is_empty() {
                units.push(annex_b);
            }
            return units;
        }
        for (n, &(_, payload_start)) in starts.iter().enumerate() {
            let mut end = starts.get(n + 1).map(|&(s, _)| s).unwrap_or(annex_b.len());
            // A 4-byte start code leaves a zero byte at the end of the previous unit.
            while end > payload_start && annex_b[end - 1] == 0 && n + 1 < starts.len() {
                end -= 1;
            }
            if end > payload_start {
                units.push(&annex_b[payload_start..end]);
            }
        }
        units
    }

    fn byte_loop_access_units(stream: &[u8]) -> Vec<&[u8]> {
        let mut units = Vec::new();
        let mut start = None::<usize>;
        let mut seen_slice = false;
        let mut i = 0;
        while i + 3 <= stream.len() {
            if stream[i] != 0 || stream[i + 1] != 0 || stream[i + 2] != 1 {
                i += 1;
                continue;
            }
            // Include the leading zero of a 4-byte start code in the unit it starts.
            let code_start = if i > 0 && stream[i - 1] == 0 {
                i - 1
            } else {
                i
            };
            let header = stream.get(i + 3).copied();
            let kind = header.map(|b| b & 0x1f).unwrap_or(0);
            let is_slice = kind == NAL_SLICE || kind == NAL_IDR;
            let begins_picture = match kind {
                NAL_AUD | NAL_SPS | NAL_PPS | NAL_SEI => seen_slice,
                // first_mb_in_slice is ue(v); 0 is coded as a single 1 bit.
                _ if is_slice => seen_slice && stream.get(i + 4).is_some_and(|b| b & 0x80 != 0),
                _ => false,
            };
            match start {
                None => start = Some(code_start),
                Some(s) if begins_picture => {
                    units.push(&stream[s..code_start]);
                    start = Some(code_start);
                    seen_slice = false;
                }
                Some(_) => {}
            }
            seen_slice |= is_slice;
            i += 3;
        }
        if let Some(s) = start {
            units.push(&stream[s..]);
        }
        units
    }

    /// Inputs for the comparison: the sample, its pieces cut anywhere, and bytes changed
    /// everywhere (start codes made and broken), deterministically.
    fn comparison_inputs() -> Vec<Vec<u8>> {
        let sample = crate::sample::H264;
        let mut inputs = vec![
            sample.to_vec(),
            Vec::new(),
            vec![0, 0, 1],
            vec![0, 0, 0, 1, 0x65],
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let start = (x as usize) % sample.len();
            let len = ((x >> 20) as usize) % 4000;
            let mut piece = sample[start..(start + len).min(sample.len())].to_vec();
            if !piece.is_empty() {
                let at = ((x >> 40) as usize) % piece.len();
                piece[at] = [0, 1, 0x65, 0x41, 0x67][(x >> 60) as usize % 5];
            }
            inputs.push(piece);
        }
        inputs
    }

    #[test]
    fn the_simd_splitters_split_as_the_byte_loops_did() {
        for input in comparison_inputs() {
            assert_eq!(
                nal_units(&input),
                byte_loop_nal_units(&input),
                "{input:02x?}"
            );
            assert_eq!(
                access_units(&input),
                byte_loop_access_units(&input),
                "{input:02x?}"
            );
        }
    }

    #[test]
    fn the_first_unit_ends_where_the_second_begins_or_at_the_end() {
        for input in comparison_inputs() {
            let units = byte_loop_access_units(&input);
            let expected_open = units
                .first()
                .map(|u| u.as_ptr() as usize - input.as_ptr() as usize + u.len());
            // With more data to come, only a unit followed by another is complete.
            let expected = if units.len() > 1 { expected_open } else { None };
            assert_eq!(first_access_unit_end(&input, false), expected);
            assert_eq!(first_access_unit_end(&input, true), expected_open);
        }
    }
}

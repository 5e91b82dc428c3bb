//! What happens to video on its way into WebRTC, sans-IO: a session starts at a keyframe (and
//! starts over at one when the storage peer asks), and every keyframe carries the SPS and PPS
//! in front of it so that each stored fragment decodes on its own (protocol notes §5.3).

use kvs_media::h264::{self, NAL_IDR, NAL_PPS, NAL_SPS};

const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// What to do with an access unit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Prepared {
    /// Send these bytes (the access unit, with parameter sets put in front of a keyframe that
    /// lacked them).
    Send {
        /// Annex-B bytes.
        data: Vec<u8>,
        /// Whether it is a keyframe.
        keyframe: bool,
    },
    /// Drop it: the receiver waits for a keyframe and this is not one.
    WaitForKeyframe,
}

/// The video track's state across access units.
#[derive(Debug, Default)]
pub(crate) struct VideoPrep {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    waiting_for_keyframe: bool,
}

impl VideoPrep {
    /// From now on, drop frames until a keyframe.
    pub(crate) fn wait_for_keyframe(&mut self) {
        self.waiting_for_keyframe = true;
    }

    /// Whether frames are being dropped until a keyframe.
    #[cfg(test)]
    pub(crate) fn is_waiting_for_keyframe(&self) -> bool {
        self.waiting_for_keyframe
    }

    /// The last SPS seen, for the profile the answer should select.
    pub(crate) fn sps(&self) -> Option<&[u8]> {
        self.sps.as_deref()
    }

    /// Remember parameter sets from `access_unit` without sending it.
    pub(crate) fn observe(&mut self, access_unit: &[u8]) {
        for unit in h264::nal_units(access_unit) {
            match h264::nal_type(unit) {
                NAL_SPS => self.sps = Some(unit.to_vec()),
                NAL_PPS => self.pps = Some(unit.to_vec()),
                _ => {}
            }
        }
    }

    /// Decide about one access unit (Annex-B).
    pub(crate) fn prepare(&mut self, access_unit: &[u8]) -> Prepared {
        let units = h264::nal_units(access_unit);
        let keyframe = units.iter().any(|u| h264::nal_type(u) == NAL_IDR);
        let has_sps = units.iter().any(|u| h264::nal_type(u) == NAL_SPS);
        let has_pps = units.iter().any(|u| h264::nal_type(u) == NAL_PPS);
        self.observe(access_unit);
        if !keyframe {
            if self.waiting_for_keyframe {
                return Prepared::WaitForKeyframe;
            }
            return Prepared::Send {
                data: access_unit.to_vec(),
                keyframe,
            };
        }
        self.waiting_for_keyframe = false;
        let mut data = Vec::with_capacity(access_unit.len() + 64);
        for (present, cached) in [(has_sps, &self.sps), (has_pps, &self.pps)] {
            if let (false, Some(set)) = (present, cached) {
                data.extend_from_slice(&START_CODE);
                data.extend_from_slice(set);
            }
        }
        data.extend_from_slice(access_unit);
        Prepared::Send { data, keyframe }
    }
}

/// The SDP `profile-level-id` of an SPS (profile_idc, constraint flags, level_idc).
pub(crate) fn profile_level_id(sps: &[u8]) -> Option<u32> {
    let parsed = h264::parse_sps(sps)?;
    Some(
        u32::from(parsed.profile_idc) << 16
            | u32::from(parsed.constraint_flags) << 8
            | u32::from(parsed.level_idc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units() -> Vec<Vec<u8>> {
        h264::access_units(kvs_media::sample::H264)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect()
    }

    fn strip_parameter_sets(au: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for unit in h264::nal_units(au) {
            if !matches!(h264::nal_type(unit), NAL_SPS | NAL_PPS) {
                out.extend_from_slice(&START_CODE);
                out.extend_from_slice(unit);
            }
        }
        out
    }

    #[test]
    fn a_keyframe_without_parameter_sets_gets_the_last_ones_in_front() {
        let aus = units();
        let mut prep = VideoPrep::default();
        assert!(matches!(
            prep.prepare(&aus[0]),
            Prepared::Send { keyframe: true, .. }
        ));
        let bare = strip_parameter_sets(&aus[25]);
        assert!(h264::is_keyframe(&bare));
        let Prepared::Send { data, keyframe } = prep.prepare(&bare) else {
            panic!("a keyframe is sent");
        };
        assert!(keyframe);
        let types: Vec<u8> = h264::nal_units(&data)
            .iter()
            .map(|u| h264::nal_type(u))
            .collect();
        assert_eq!(&types[..2], [NAL_SPS, NAL_PPS], "{types:?}");
        assert!(types.contains(&NAL_IDR));
    }

    #[test]
    fn a_keyframe_that_has_them_is_sent_unchanged() {
        let aus = units();
        let mut prep = VideoPrep::default();
        assert_eq!(
            prep.prepare(&aus[0]),
            Prepared::Send {
                data: aus[0].clone(),
                keyframe: true
            }
        );
    }

    #[test]
    fn after_a_keyframe_request_frames_wait_for_the_next_keyframe() {
        let aus = units();
        let mut prep = VideoPrep::default();
        prep.wait_for_keyframe();
        assert_eq!(prep.prepare(&aus[1]), Prepared::WaitForKeyframe);
        assert!(prep.is_waiting_for_keyframe());
        assert!(matches!(
            prep.prepare(&aus[25]),
            Prepared::Send { keyframe: true, .. }
        ));
        assert!(matches!(
            prep.prepare(&aus[26]),
            Prepared::Send {
                keyframe: false,
                ..
            }
        ));
    }

    #[test]
    fn the_profile_level_id_comes_from_the_sps() {
        let aus = units();
        let mut prep = VideoPrep::default();
        prep.observe(&aus[0]);
        // x264 constrained baseline, level 3.0.
        assert_eq!(profile_level_id(prep.sps().unwrap()), Some(0x42c01e));
    }
}

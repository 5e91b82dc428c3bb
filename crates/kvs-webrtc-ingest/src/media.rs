//! What happens to video on its way into WebRTC, sans-IO: a session starts at a keyframe (and
//! starts over at one when the storage peer asks), and every keyframe carries the SPS and PPS
//! in front of it so that each stored fragment decodes on its own (protocol notes §5.3).

use kvs_media::h264::{self, NAL_PPS, NAL_SPS};

use crate::source::Picture;

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

    /// Remember the parameter sets of a picture without sending it (its NAL units are read
    /// only when its reader saw parameter sets in it).
    pub(crate) fn observe(&mut self, picture: &Picture) {
        if picture.parameter_sets {
            self.cache_parameter_sets(&picture.data);
        }
    }

    fn cache_parameter_sets(&mut self, access_unit: &[u8]) -> (bool, bool) {
        let (mut has_sps, mut has_pps) = (false, false);
        for unit in h264::NalUnits::new(access_unit) {
            match h264::nal_type(unit) {
                NAL_SPS => {
                    self.sps = Some(unit.to_vec());
                    has_sps = true;
                }
                NAL_PPS => {
                    self.pps = Some(unit.to_vec());
                    has_pps = true;
                }
                _ => {}
            }
        }
        (has_sps, has_pps)
    }

    /// Decide about one picture: the frames between keyframes go as they are (their bytes
    /// moved, not copied, and not read again); a keyframe gets the cached parameter sets it
    /// lacks in front.
    pub(crate) fn prepare(&mut self, picture: Picture) -> Prepared {
        if !picture.keyframe {
            self.observe(&picture);
            if self.waiting_for_keyframe {
                return Prepared::WaitForKeyframe;
            }
            return Prepared::Send {
                data: picture.data,
                keyframe: false,
            };
        }
        self.waiting_for_keyframe = false;
        let (has_sps, has_pps) = if picture.parameter_sets {
            self.cache_parameter_sets(&picture.data)
        } else {
            (false, false)
        };
        if has_sps && has_pps {
            return Prepared::Send {
                data: picture.data,
                keyframe: true,
            };
        }
        let mut data = Vec::with_capacity(picture.data.len() + 64);
        for (present, cached) in [(has_sps, &self.sps), (has_pps, &self.pps)] {
            if let (false, Some(set)) = (present, cached) {
                data.extend_from_slice(&START_CODE);
                data.extend_from_slice(set);
            }
        }
        data.extend_from_slice(&picture.data);
        Prepared::Send {
            data,
            keyframe: true,
        }
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

    fn units() -> Vec<Picture> {
        h264::access_units(kvs_media::sample::H264)
            .into_iter()
            .enumerate()
            .map(|(i, au)| picture(au, i))
            .collect()
    }

    /// A picture as a reader makes it.
    fn picture(au: &[u8], i: usize) -> Picture {
        Picture::of(crate::source::VideoFrame {
            data: au.to_vec(),
            timestamp: std::time::Duration::from_millis(40 * i as u64),
        })
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
            prep.prepare(aus[0].clone()),
            Prepared::Send { keyframe: true, .. }
        ));
        let bare = strip_parameter_sets(&aus[25].data);
        assert!(h264::is_keyframe(&bare));
        let bare = picture(&bare, 25);
        assert!(bare.keyframe && !bare.parameter_sets);
        let Prepared::Send { data, keyframe } = prep.prepare(bare) else {
            panic!("a keyframe is sent");
        };
        assert!(keyframe);
        let types: Vec<u8> = h264::nal_units(&data)
            .iter()
            .map(|u| h264::nal_type(u))
            .collect();
        assert_eq!(&types[..2], [NAL_SPS, NAL_PPS], "{types:?}");
        assert!(types.contains(&h264::NAL_IDR));
    }

    #[test]
    fn a_keyframe_that_has_them_is_sent_unchanged() {
        let aus = units();
        let mut prep = VideoPrep::default();
        assert_eq!(
            prep.prepare(aus[0].clone()),
            Prepared::Send {
                data: aus[0].data.clone(),
                keyframe: true
            }
        );
    }

    #[test]
    fn after_a_keyframe_request_frames_wait_for_the_next_keyframe() {
        let aus = units();
        let mut prep = VideoPrep::default();
        prep.wait_for_keyframe();
        assert_eq!(prep.prepare(aus[1].clone()), Prepared::WaitForKeyframe);
        assert!(prep.is_waiting_for_keyframe());
        assert!(matches!(
            prep.prepare(aus[25].clone()),
            Prepared::Send { keyframe: true, .. }
        ));
        assert!(matches!(
            prep.prepare(aus[26].clone()),
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
        assert!(
            aus[0].parameter_sets,
            "the sample's first picture carries them"
        );
        // x264 constrained baseline, level 3.0.
        assert_eq!(profile_level_id(prep.sps().unwrap()), Some(0x42c01e));
    }
}

//! The workspace's fuzz targets: for every parser that takes bytes from outside, what the bytes
//! are turned into and which checks must hold besides "no panic".
//!
//! Each target is a function of `&[u8]` listed in [`TARGETS`]. Three things run them:
//!
//! * `fuzz/` (outside the workspace, cargo-fuzz's layout): one libFuzzer binary per target,
//!   built on **stable** Rust with SanitizerCoverage and no sanitizer; `cargo xtask fuzz
//!   [--seconds N] [TARGET]` builds and runs them (see the README's "Fuzzing" section);
//! * this crate's tests (`cargo test`, so `cargo xtask test` and CI): every committed corpus
//!   file (`fuzz/corpus/<target>/`) and every regression input, then each target on a few
//!   thousand inputs mutated from its corpus by [`smoke`] (seeded, so a failure repeats);
//! * `cargo xtask fuzz --replay`, the same replay through the libFuzzer binaries.
//!
//! Where random bytes would stop at the first check (an Ogg CRC, JSON inside base64, a SigV4
//! signature, a TURN transaction and its MESSAGE-INTEGRITY, an SDP offer str0m accepts), the
//! target builds its input from the bytes with [`arbitrary`], or fixes the check up, so that the
//! fuzzer spends its time past it.
//!
//! ```
//! // A target is a plain function: any bytes, no panic.
//! kvs_fuzz::run("h264_sps", &[0x42, 0xe0, 0x1f, 0xda, 0x02, 0x80]);
//! ```

pub mod emulator;
pub mod ingest;
pub mod iot;
pub mod media;
pub mod media_read;
pub mod signaling;
pub mod smoke;
pub mod turn;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its name: the libFuzzer binary's, and the corpus directory's under `fuzz/corpus/`.
    pub name: &'static str,
    /// What it feeds to which parser.
    pub about: &'static str,
    /// The target itself.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "annexb_reader",
        about: "kvs-media AnnexBReader (whole and in small reads), access_units, nal_units",
        run: media::annexb,
    },
    Target {
        name: "h264_sps",
        about: "kvs-media parse_sps",
        run: media::sps,
    },
    Target {
        name: "ogg_opus_reader",
        about: "kvs-media OggOpusReader (page CRCs fixed up; whole and in small reads)",
        run: media::ogg,
    },
    Target {
        name: "mkv_reader",
        about: "kvs-media MkvReader (whole and in small reads)",
        run: media::mkv,
    },
    Target {
        name: "signaling_message",
        about: "kvs-webrtc-signaling parse_incoming (built frames with base64 JSON payloads)",
        run: signaling::message,
    },
    Target {
        name: "ingest_offer",
        about: "kvs-webrtc-ingest session core: storage offer, candidates, datagrams, time",
        run: ingest::offer,
    },
    Target {
        name: "turn_allocation",
        about: "kvs-webrtc-turn Allocation against a TURN server, its bytes changed on the way",
        run: turn::allocation,
    },
    Target {
        name: "turn_uri",
        about: "kvs-webrtc-turn TurnUri::parse",
        run: turn::uri,
    },
    Target {
        name: "emulator_sigv4",
        about: "kvs-emulator SigV4 header and presigned-query verification against aws-sigv4",
        run: emulator::sigv4,
    },
    Target {
        name: "emulator_client_frame",
        about: "kvs-emulator signaling frames from clients (parse_client_message)",
        run: emulator::client_frame,
    },
    Target {
        name: "emulator_request_parts",
        about: "kvs-emulator JSON bodies (json_body) and Origin checks (origin_allowed)",
        run: emulator::request_parts,
    },
    Target {
        name: "emulator_http",
        about: "kvs-emulator whole HTTP requests (signed API calls, raw bytes) to its listeners",
        run: emulator::http,
    },
    Target {
        name: "emulator_media_read",
        about: "kvs-emulator HLS/DASH session requests and tokens, playlist selection, GetMedia \
                start selectors and continuation tokens, ListFragments selectors and NextToken",
        run: media_read::target,
    },
    Target {
        name: "iot_credentials",
        about: "kvs-iot-credentials Endpoint::parse and interpret (the endpoint's answers)",
        run: iot::credentials,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Run the target called `name` on `data`.
///
/// # Panics
/// When there is no such target, and when the target finds a bug.
pub fn run(name: &str, data: &[u8]) {
    let target = target(name).unwrap_or_else(|| panic!("no fuzz target {name:?}"));
    (target.run)(data);
}

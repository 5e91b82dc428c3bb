//! Entry points for the workspace's fuzz targets (`crates/kvs-fuzz`), behind the `fuzzing`
//! feature: the session core (`session.rs`, sans-IO and otherwise private) driven with what the
//! storage peer sends (its SDP offer, its candidates, datagrams) and simulated time. Not part of
//! the API.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::Candidate;

use crate::session::{CoreConfig, IngestCore, Output, Side, Timings};

/// Outputs drained after one input at most: the core reaches `Timeout` long before (a few
/// per local candidate and per datagram); more means it would never stop producing.
const MAX_OUTPUTS_PER_INPUT: usize = 100_000;

/// The local address of the core's one host candidate.
pub const LOCAL: &str = "127.0.0.1:50000";

/// An ingestion session core as the driver runs it: a master sending H.264 and Opus, one
/// host candidate, signaling connected and the join accepted, waiting for the storage offer.
pub struct Core {
    core: IngestCore,
    now: Instant,
    answers: Vec<String>,
    ended: Option<String>,
    outputs: usize,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("now", &self.now)
            .field("answers", &self.answers.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core at `now` that has joined and waits for the offer.
    pub fn joined(now: Instant) -> Self {
        let mut core = IngestCore::new(
            now,
            CoreConfig {
                side: Side::Master,
                timings: Timings::default(),
                sends_video: true,
                sends_audio: true,
                jitter_seed: 7,
            },
        );
        let local: SocketAddr = LOCAL.parse().expect("a socket address");
        if let Ok(candidate) = Candidate::host(local, "udp") {
            core.add_local_candidate(candidate);
        }
        let mut this = Self {
            core,
            now,
            answers: Vec::new(),
            ended: None,
            outputs: 0,
        };
        this.core.handle_signaling_connected(now, 0);
        this.drain();
        this.core.handle_join_result(now, Ok(()));
        this.drain();
        this
    }

    /// The storage peer's SDP offer.
    pub fn offer(&mut self, sdp: &str) {
        self.core.handle_offer(self.now, sdp);
        self.drain();
    }

    /// A candidate of the storage peer (an ICE_CANDIDATE's `candidate` line).
    pub fn remote_candidate(&mut self, line: &str) {
        self.core.handle_remote_candidate(line);
        self.drain();
    }

    /// A datagram from `source` to the host candidate.
    pub fn datagram(&mut self, source: SocketAddr, contents: &[u8]) {
        let local = LOCAL.parse().expect("a socket address");
        self.core.handle_datagram(self.now, source, local, contents);
        self.drain();
    }

    /// The storage session rejected the answer.
    pub fn answer_rejected(&mut self, description: &str) {
        self.core
            .handle_answer_rejected(self.now, description.to_owned());
        self.drain();
    }

    /// Time goes on by `by`.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.core.handle_timeout(self.now);
        self.drain();
    }

    /// The answers sent so far.
    pub fn answers(&self) -> &[String] {
        &self.answers
    }

    /// Why the core ended, if it did.
    pub fn ended(&self) -> Option<&str> {
        self.ended.as_deref()
    }

    /// Outputs drained so far (transmits, candidates, events).
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Drain until the core waits (`Timeout`) or has ended.
    ///
    /// # Panics
    /// When the core produces outputs without end.
    fn drain(&mut self) {
        for _ in 0..MAX_OUTPUTS_PER_INPUT {
            match self.core.poll_output() {
                Output::Timeout(_) => return,
                Output::Ended { reason, .. } => {
                    self.ended = Some(reason);
                    return;
                }
                Output::SendAnswer(sdp) => self.answers.push(sdp),
                _ => {}
            }
            self.outputs += 1;
        }
        panic!("the core produced {MAX_OUTPUTS_PER_INPUT} outputs without reaching a timeout");
    }
}

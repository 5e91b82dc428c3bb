//! Server-reflexive candidates, sans-IO: a STUN Binding request (RFC 8489) from each host socket
//! to each STUN server (the region's `stun:` URL and the TURN servers, which answer Binding
//! too), retransmitted twice, and a candidate for every new mapped address the answers name.
//! The messages are encoded and decoded here: str0m's STUN code is made for ICE checks (its
//! parser refuses a Binding success without MESSAGE-INTEGRITY, which is what a STUN server sends
//! to an unauthenticated request, and its transaction ids cannot be read back). A plain Binding
//! request is a 20-byte header; of the answer only the header and the (XOR-)MAPPED-ADDRESS are
//! read. (The TURN client of issue #12 brings a complete STUN codec.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::Candidate;

/// When a request is sent again, and when it is given up: RFC 8489's 500 ms RTO, doubled.
const RETRANSMITS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_millis(1500),
    Duration::from_millis(3500),
];

#[derive(Debug)]
struct Probe {
    trans_id: [u8; 12],
    local: SocketAddr,
    server: SocketAddr,
    first_sent: Option<Instant>,
    sends: usize,
    done: bool,
}

/// What the gatherer asks the driver to do.
#[derive(Debug)]
pub(crate) enum GatherOutput {
    /// Send this Binding request from host socket `local` to `server`.
    Transmit {
        local: SocketAddr,
        server: SocketAddr,
        request: Vec<u8>,
    },
    /// A new server-reflexive candidate for the core.
    Candidate(Candidate),
}

/// Gathers server-reflexive candidates for a set of host sockets (inputs:
/// [`handle_input`](Self::handle_input); outputs: [`poll_output`](Self::poll_output) until
/// `None`; [`poll_timeout`](Self::poll_timeout) for the next retransmission).
#[derive(Debug, Default)]
pub(crate) struct ReflexiveGatherer {
    probes: Vec<Probe>,
    found: Vec<Candidate>,
    seen: Vec<SocketAddr>,
    answers: u64,
}

impl ReflexiveGatherer {
    /// Probe every (host socket, STUN server) pair of the same address family.
    pub(crate) fn new(locals: &[SocketAddr], servers: &[SocketAddr]) -> Self {
        let probes = locals
            .iter()
            .flat_map(|local| {
                servers
                    .iter()
                    .filter(|server| server.is_ipv4() == local.is_ipv4())
                    .map(|server| Probe {
                        trans_id: rand::random(),
                        local: *local,
                        server: *server,
                        first_sent: None,
                        sends: 0,
                        done: false,
                    })
            })
            .collect();
        Self {
            probes,
            found: Vec::new(),
            seen: locals.to_vec(),
            answers: 0,
        }
    }

    /// The next thing to do: a request to send (retransmissions included) or a new candidate.
    pub(crate) fn poll_output(&mut self, now: Instant) -> Option<GatherOutput> {
        if let Some((local, server, request)) = self.poll_transmit(now) {
            return Some(GatherOutput::Transmit {
                local,
                server,
                request,
            });
        }
        self.poll_candidate().map(GatherOutput::Candidate)
    }

    /// A request to send now (from `local` to `server`), if one is due.
    fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
        for probe in &mut self.probes {
            if probe.done || probe.sends >= RETRANSMITS.len() {
                continue;
            }
            let due = match probe.first_sent {
                None => true,
                Some(first) => now >= first + RETRANSMITS[probe.sends - 1],
            };
            if !due {
                continue;
            }
            probe.first_sent.get_or_insert(now);
            probe.sends += 1;
            // Binding request, no attributes (RFC 8489 §6): type, length 0, cookie, id.
            let mut request = vec![0x00, 0x01, 0x00, 0x00];
            request.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
            request.extend_from_slice(&probe.trans_id);
            return Some((probe.local, probe.server, request));
        }
        None
    }

    /// When [`poll_output`](Self::poll_output) has a request next (`None`: nothing more).
    pub(crate) fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.probes
            .iter()
            .filter(|p| !p.done && p.sends < RETRANSMITS.len())
            .map(|p| match p.first_sent {
                None => now,
                Some(first) => first + RETRANSMITS[p.sends - 1],
            })
            .min()
    }

    /// A datagram that arrived on `local` from `source`: `true` when it was the answer to one
    /// of our requests (and is consumed).
    pub(crate) fn handle_input(
        &mut self,
        local: SocketAddr,
        source: SocketAddr,
        data: &[u8],
    ) -> bool {
        let Some(answer) = BindingAnswer::decode(data) else {
            return false;
        };
        let Some(probe) = self
            .probes
            .iter_mut()
            .find(|p| p.trans_id == answer.trans_id && p.local == local && p.server == source)
        else {
            return false;
        };
        probe.done = true;
        self.answers += 1;
        if let Some(mapped) = answer.mapped {
            if !self.seen.contains(&mapped) {
                self.seen.push(mapped);
                if let Ok(candidate) = Candidate::server_reflexive(mapped, local, "udp") {
                    self.found.push(candidate);
                }
            }
        }
        true
    }

    /// How many servers answered.
    pub(crate) fn answers(&self) -> u64 {
        self.answers
    }

    /// The next new server-reflexive candidate.
    fn poll_candidate(&mut self) -> Option<Candidate> {
        (!self.found.is_empty()).then(|| self.found.remove(0))
    }

    /// Whether every probe was answered or given up.
    pub(crate) fn is_done(&self) -> bool {
        self.probes
            .iter()
            .all(|p| p.done || p.sends >= RETRANSMITS.len())
            && self.found.is_empty()
    }
}

const MAGIC_COOKIE: u32 = 0x2112_A442;

/// A STUN Binding response (success or error), as far as gathering needs it.
#[derive(Debug, PartialEq, Eq)]
struct BindingAnswer {
    trans_id: [u8; 12],
    /// The mapped address of a success response.
    mapped: Option<SocketAddr>,
}

impl BindingAnswer {
    /// `None` for anything that is not a well-formed Binding response.
    fn decode(data: &[u8]) -> Option<Self> {
        let header = data.get(..20)?;
        let kind = u16::from_be_bytes([header[0], header[1]]);
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        // Binding success 0x0101, Binding error 0x0111.
        if !matches!(kind, 0x0101 | 0x0111) || cookie != MAGIC_COOKIE || length % 4 != 0 {
            return None;
        }
        let body = data.get(20..20 + length)?;
        let trans_id: [u8; 12] = header[8..20].try_into().ok()?;
        let mut mapped = None;
        let mut at = 0;
        while at + 4 <= body.len() {
            let attr = u16::from_be_bytes([body[at], body[at + 1]]);
            let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
            let value = body.get(at + 4..at + 4 + len)?;
            match attr {
                0x0020 => mapped = decode_address(value, Some(&header[4..20])).or(mapped),
                0x0001 if mapped.is_none() => mapped = decode_address(value, None),
                _ => {}
            }
            at += 4 + len.div_ceil(4) * 4;
        }
        Some(Self {
            trans_id,
            mapped: mapped.filter(|_| kind == 0x0101),
        })
    }
}

/// A (XOR-)MAPPED-ADDRESS value; `xor` is the cookie and transaction id for the XOR form.
fn decode_address(value: &[u8], xor: Option<&[u8]>) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let mut port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
    let mut ip = value.get(4..)?.to_vec();
    if let Some(key) = xor {
        port ^= 0x2112;
        for (byte, k) in ip.iter_mut().zip(key) {
            *byte ^= k;
        }
    }
    let ip: std::net::IpAddr = match (family, ip.len()) {
        (0x01, 4) => <[u8; 4]>::try_from(ip.as_slice()).ok()?.into(),
        (0x02, 16) => <[u8; 16]>::try_from(ip.as_slice()).ok()?.into(),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take their start time from the clock
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// What a STUN server answers (built by hand, independently of the decoder): a Binding
    /// success with XOR-MAPPED-ADDRESS and no MESSAGE-INTEGRITY.
    fn answer(request: &[u8], mapped: SocketAddr) -> Vec<u8> {
        assert_eq!(&request[..2], [0x00, 0x01], "a Binding request");
        let SocketAddr::V4(mapped) = mapped else {
            panic!("IPv4 in these tests")
        };
        let mut out = vec![0x01, 0x01, 0x00, 12];
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&request[8..20]);
        out.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
        out.extend_from_slice(&(mapped.port() ^ 0x2112).to_be_bytes());
        let ip = u32::from(*mapped.ip()) ^ MAGIC_COOKIE;
        out.extend_from_slice(&ip.to_be_bytes());
        out
    }

    #[test]
    fn truncated_or_damaged_answers_are_ignored_without_panicking() {
        let request = {
            let mut g = ReflexiveGatherer::new(&[addr("10.0.0.2:5000")], &[addr("10.0.0.9:3478")]);
            g.poll_transmit(Instant::now()).unwrap().2
        };
        let good = answer(&request, addr("198.51.100.7:61000"));
        assert!(BindingAnswer::decode(&good).is_some_and(|a| a.mapped.is_some()));
        for cut in 0..good.len() {
            assert_eq!(BindingAnswer::decode(&good[..cut]), None, "cut at {cut}");
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                let _ = BindingAnswer::decode(&bad); // must not panic
            }
        }
        let mut wrong_length = good.clone();
        wrong_length[3] = 13;
        assert_eq!(BindingAnswer::decode(&wrong_length), None);
    }

    #[test]
    fn a_binding_answer_gives_a_server_reflexive_candidate_based_on_the_host_socket() {
        let t0 = Instant::now();
        let local = addr("192.168.1.10:5000");
        let server = addr("203.0.113.5:443");
        let mut g = ReflexiveGatherer::new(&[local], &[server]);
        let (from, to, request) = g.poll_transmit(t0).expect("a request");
        assert_eq!((from, to), (local, server));
        assert!(
            g.poll_transmit(t0).is_none(),
            "one request per probe at a time"
        );
        let reply = answer(&request, addr("198.51.100.7:61000"));
        assert!(
            !g.handle_input(local, addr("203.0.113.9:443"), &reply),
            "only from the server"
        );
        assert!(g.handle_input(local, server, &reply));
        let candidate = g.poll_candidate().expect("a candidate");
        let line = candidate.to_sdp_string();
        assert!(line.contains("198.51.100.7 61000 typ srflx"), "{line}");
        assert_eq!(candidate.local(), local, "sent from the host socket");
        assert!(g.is_done());
    }

    #[test]
    fn requests_are_retransmitted_then_given_up() {
        let t0 = Instant::now();
        let mut g = ReflexiveGatherer::new(&[addr("10.0.0.2:5000")], &[addr("10.0.0.9:3478")]);
        assert!(g.poll_transmit(t0).is_some());
        assert!(g.poll_transmit(t0 + Duration::from_millis(499)).is_none());
        assert!(g.poll_transmit(t0 + Duration::from_millis(500)).is_some());
        assert!(g.poll_transmit(t0 + Duration::from_millis(1500)).is_some());
        assert!(
            g.poll_transmit(t0 + Duration::from_secs(60)).is_none(),
            "three sends at most"
        );
        assert!(g.is_done());
        assert!(g.poll_candidate().is_none());
    }

    #[test]
    fn no_nat_means_no_new_candidate_and_media_is_not_taken_for_stun() {
        let t0 = Instant::now();
        let local = addr("10.0.0.2:5000");
        let server = addr("10.0.0.9:3478");
        let mut g = ReflexiveGatherer::new(&[local], &[server]);
        let (_, _, request) = g.poll_transmit(t0).unwrap();
        // The mapped address is the host address itself: nothing new.
        assert!(g.handle_input(local, server, &answer(&request, local)));
        assert!(g.poll_candidate().is_none());
        // An RTP packet is not STUN.
        assert!(!g.handle_input(local, server, &[0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]));
    }
}

//! A short, seeded fuzzing run without libFuzzer, for the test command: inputs mutated from a
//! target's corpus (bit flips, byte changes, insertions, deletions, copies, splices with
//! another corpus input, truncation), the same ones on every run of the same seed. It has no
//! coverage feedback, so it finds less than `cargo xtask fuzz` does in the same time; what it
//! checks on every run is that each target still takes hostile variations of its seeds.

/// A small deterministic generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 for `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Inputs grow to this size at most.
const MAX_LEN: usize = 16 << 10;

/// `input` changed by one to four mutations; `other` is another corpus input to splice from.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = [0, 0xff, 0x7f, 0x80, 1, b'0', b'"', b'{'][rng.below(8)];
            }
            2 => {
                let at = rng.below(out.len() + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                out.splice(at..at, bytes);
            }
            3 if !out.is_empty() => {
                let at = rng.below(out.len());
                let n = 1 + rng.below((out.len() - at).min(64));
                out.drain(at..at + n);
            }
            4 if !out.is_empty() => {
                let from = rng.below(out.len());
                let n = 1 + rng.below((out.len() - from).min(64));
                let piece = out[from..from + n].to_vec();
                let at = rng.below(out.len() + 1);
                out.splice(at..at, piece);
            }
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = 1 + rng.below((other.len() - from).min(256));
                let at = rng.below(out.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[from..from + n]);
            }
            6 => out.truncate(rng.below(out.len() + 1)),
            _ => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next_u64() as u8);
            }
        }
    }
    out.truncate(MAX_LEN);
    out
}

/// Run `target` on inputs mutated from `corpus` (an empty corpus starts from random bytes),
/// seeded with `seed`: `runs` of them, or as many as `budget` allows. The inputs are the same
/// for the same seed and corpus, so a failure repeats.
///
/// # Errors
/// The input on which the target panicked (its message went to stderr).
pub fn run(
    target: fn(&[u8]),
    corpus: &[Vec<u8>],
    runs: usize,
    budget: std::time::Duration,
    seed: u64,
) -> Result<usize, Vec<u8>> {
    let mut rng = Rng::new(seed);
    let empty = Vec::new();
    let started = std::time::Instant::now();
    for done in 0..runs {
        if started.elapsed() > budget {
            return Ok(done);
        }
        let input = if corpus.is_empty() {
            (0..rng.below(512)).map(|_| rng.next_u64() as u8).collect()
        } else {
            let base = &corpus[rng.below(corpus.len())];
            let other = corpus.get(rng.below(corpus.len())).unwrap_or(&empty);
            mutate(&mut rng, base, other)
        };
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            return Err(input);
        }
    }
    Ok(runs)
}

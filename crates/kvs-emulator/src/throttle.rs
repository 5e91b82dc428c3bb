//! Per-API request rates, as AWS enforces them: a token bucket per operation for the account and
//! per operation and channel; a request over either gets 400 ClientLimitExceededException.
//!
//! Defaults are the published Kinesis Video Streams WebRTC quotas (protocol notes §8.2):
//! DescribeSignalingChannel 300/s per account and 5/s per channel, GetSignalingChannelEndpoint
//! 300/s per account, DescribeMediaStorageConfiguration 50 and 5, UpdateMediaStorageConfiguration
//! 10 and 5, ConnectAsMaster and ConnectAsViewer 3/s per channel, GetMedia 5/s per stream,
//! GetHLSStreamingSessionURL and GetDASHStreamingSessionURL 25/s per stream (the session
//! creation rate since the 2021 playback quota model). The storage API's quotas are not
//! published; JoinStorageSession(AsViewer) is unthrottled unless configured.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use crate::api_error::ApiError;

/// The message AWS documents for ClientLimitExceededException.
const THROTTLED: &str = "Your request has been throttled because you have exceeded the limit of allowed client calls. Try making the call later.";

/// The operations the emulator serves, by AWS name: the ones a rate can be set for.
pub(crate) const OPERATIONS: [&str; 18] = [
    "CreateSignalingChannel",
    "DescribeSignalingChannel",
    "DeleteSignalingChannel",
    "CreateStream",
    "DescribeStream",
    "ListStreams",
    "DeleteStream",
    "UpdateMediaStorageConfiguration",
    "DescribeMediaStorageConfiguration",
    "GetSignalingChannelEndpoint",
    "GetIceServerConfig",
    "ConnectAsMaster",
    "ConnectAsViewer",
    "JoinStorageSession",
    "JoinStorageSessionAsViewer",
    "GetMedia",
    "GetHLSStreamingSessionURL",
    "GetDASHStreamingSessionURL",
];

/// Buckets kept before idle ones are forgotten.
const MAX_BUCKETS: usize = 10_000;

/// Requests per second allowed for one operation (a bucket holds one second's worth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TpsLimit {
    /// For the whole account (the emulator serves one).
    pub per_account: Option<u32>,
    /// For each channel.
    pub per_channel: Option<u32>,
}

/// The rate limits of every throttled operation, by AWS operation name
/// (`DescribeSignalingChannel`, `ConnectAsMaster`, `JoinStorageSession`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttling {
    limits: BTreeMap<String, TpsLimit>,
}

impl Default for Throttling {
    fn default() -> Self {
        Self::aws_defaults()
    }
}

impl Throttling {
    /// The published AWS quotas (see the module docs).
    pub fn aws_defaults() -> Self {
        let mut t = Self::disabled();
        let both = |a, c| TpsLimit {
            per_account: Some(a),
            per_channel: Some(c),
        };
        let channel = |c| TpsLimit {
            per_account: None,
            per_channel: Some(c),
        };
        t.set("DescribeSignalingChannel", both(300, 5));
        t.set(
            "GetSignalingChannelEndpoint",
            TpsLimit {
                per_account: Some(300),
                per_channel: None,
            },
        );
        t.set("DescribeMediaStorageConfiguration", both(50, 5));
        // "A client can call GetMedia up to five times per second per stream" (the stream
        // name stands where other operations put the channel).
        t.set("GetMedia", channel(5));
        // Playback sessions: "session creation rate limits are updated to 25 requests per
        // second" (per stream, like GetMedia's).
        t.set("GetHLSStreamingSessionURL", channel(25));
        t.set("GetDASHStreamingSessionURL", channel(25));
        t.set("UpdateMediaStorageConfiguration", both(10, 5));
        t.set("ConnectAsMaster", channel(3));
        t.set("ConnectAsViewer", channel(3));
        t
    }

    /// No throttling at all.
    pub fn disabled() -> Self {
        Self {
            limits: BTreeMap::new(),
        }
    }

    /// Set (or, with both rates `None`, remove) one operation's limits.
    pub fn set(&mut self, operation: &str, limit: TpsLimit) -> &mut Self {
        if limit == TpsLimit::default() {
            self.limits.remove(operation);
        } else {
            self.limits.insert(operation.to_owned(), limit);
        }
        self
    }

    /// One operation's limits.
    pub fn get(&self, operation: &str) -> TpsLimit {
        self.limits.get(operation).copied().unwrap_or_default()
    }

    /// Parse `Operation=ACCOUNT/CHANNEL` (either side may be `-` for none; `Operation=N` is
    /// per account only), as `kvs-emulator serve --tps` takes it.
    pub fn parse_rule(rule: &str) -> Result<(String, TpsLimit), String> {
        let (operation, rates) = rule
            .split_once('=')
            .ok_or_else(|| format!("`{rule}` is not Operation=ACCOUNT/CHANNEL"))?;
        if !OPERATIONS.contains(&operation) {
            return Err(format!(
                "`{operation}` is not an operation the emulator serves; one of {}",
                OPERATIONS.join(", ")
            ));
        }
        let rate = |s: &str| -> Result<Option<u32>, String> {
            match s.trim() {
                "-" | "" => Ok(None),
                n => n
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| format!("`{n}` is not a positive rate (or - for none)")),
            }
        };
        let (account, channel) = rates.split_once('/').unwrap_or((rates, "-"));
        Ok((
            operation.to_owned(),
            TpsLimit {
                per_account: rate(account)?,
                per_channel: rate(channel)?,
            },
        ))
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The live buckets.
pub(crate) struct Throttle {
    config: Throttling,
    buckets: Mutex<HashMap<(String, Option<String>), Bucket>>,
}

impl Throttle {
    pub(crate) fn new(config: Throttling) -> Self {
        Self {
            config,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request of an operation (on `channel`, when it names one) from its buckets, or
    /// refuse it. A refused request consumes nothing. The operation is named by its request path
    /// (`describeSignalingChannel`, `connectAsViewer`), as the call counter names it.
    pub(crate) fn admit(
        &self,
        path_name: &str,
        channel: Option<&str>,
        now: Instant,
    ) -> Result<(), ApiError> {
        let operation = operation_name(path_name);
        let limit = self.config.get(&operation);
        let mut wanted = Vec::with_capacity(2);
        if let Some(rate) = limit.per_account {
            wanted.push(((operation.clone(), None), rate));
        }
        if let (Some(rate), Some(channel)) = (limit.per_channel, channel) {
            wanted.push(((operation.clone(), Some(channel.to_owned())), rate));
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > MAX_BUCKETS {
            // A bucket idle for a second is full again: forgetting it changes nothing.
            buckets.retain(|_, b| now.saturating_duration_since(b.updated).as_secs_f64() < 1.0);
        }
        let mut all_have_one = true;
        for (key, rate) in &wanted {
            let rate = f64::from(*rate);
            let bucket = buckets.entry(key.clone()).or_insert(Bucket {
                tokens: rate,
                updated: now,
            });
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
            bucket.updated = now;
            all_have_one &= bucket.tokens >= 1.0;
        }
        if !all_have_one {
            tracing::info!(
                %operation,
                channel = channel.unwrap_or("-"),
                "throttled (ClientLimitExceededException)"
            );
            return Err(ApiError::client_limit(THROTTLED));
        }
        for (key, _) in &wanted {
            if let Some(bucket) = buckets.get_mut(key) {
                bucket.tokens -= 1.0;
            }
        }
        Ok(())
    }
}

/// The AWS operation name of a request path name (`describeSignalingChannel`).
fn operation_name(path_name: &str) -> String {
    let mut chars = path_name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_channel_gets_its_rate_per_second_and_refills() {
        let throttle = Throttle::new(Throttling::aws_defaults());
        let t0 = Instant::now();
        for _ in 0..3 {
            throttle.admit("connectAsMaster", Some("a"), t0).unwrap();
        }
        let refused = throttle
            .admit("connectAsMaster", Some("a"), t0)
            .unwrap_err();
        assert_eq!(refused.code, "ClientLimitExceededException");
        assert_eq!(refused.status, http::StatusCode::BAD_REQUEST);
        // Other channels and other operations have their own buckets.
        throttle.admit("connectAsMaster", Some("b"), t0).unwrap();
        throttle.admit("connectAsViewer", Some("a"), t0).unwrap();
        // A third of a second brings one token back (3/s).
        let later = t0 + Duration::from_millis(340);
        throttle.admit("connectAsMaster", Some("a"), later).unwrap();
        assert!(throttle.admit("connectAsMaster", Some("a"), later).is_err());
    }

    #[test]
    fn the_account_bucket_is_shared_and_a_refusal_costs_nothing() {
        let mut config = Throttling::disabled();
        config.set(
            "DescribeSignalingChannel",
            TpsLimit {
                per_account: Some(4),
                per_channel: Some(2),
            },
        );
        let throttle = Throttle::new(config);
        let t0 = Instant::now();
        throttle
            .admit("describeSignalingChannel", Some("a"), t0)
            .unwrap();
        throttle
            .admit("describeSignalingChannel", Some("a"), t0)
            .unwrap();
        // Channel a is out; its refusals must not drain the account bucket.
        for _ in 0..5 {
            assert!(throttle
                .admit("describeSignalingChannel", Some("a"), t0)
                .is_err());
        }
        throttle
            .admit("describeSignalingChannel", Some("b"), t0)
            .unwrap();
        throttle
            .admit("describeSignalingChannel", Some("c"), t0)
            .unwrap();
        assert!(
            throttle
                .admit("describeSignalingChannel", Some("d"), t0)
                .is_err(),
            "4/s for the account in all"
        );
        // Unlisted operations are never throttled.
        for _ in 0..100 {
            throttle.admit("createStream", None, t0).unwrap();
        }
    }

    #[test]
    fn rules_parse_as_the_cli_takes_them() {
        assert_eq!(
            Throttling::parse_rule("JoinStorageSession=-/1").unwrap(),
            (
                "JoinStorageSession".into(),
                TpsLimit {
                    per_account: None,
                    per_channel: Some(1)
                }
            )
        );
        assert_eq!(
            Throttling::parse_rule("CreateStream=50").unwrap().1,
            TpsLimit {
                per_account: Some(50),
                per_channel: None
            }
        );
        assert!(Throttling::parse_rule("CreateStream").is_err());
        assert!(Throttling::parse_rule("CreateStream=0").is_err());
        assert!(Throttling::parse_rule("Create Stream=1").is_err());
        assert!(
            Throttling::parse_rule("DescribeChannel=1").is_err(),
            "a typo would otherwise change nothing"
        );
        assert_eq!(
            operation_name("describeSignalingChannel"),
            "DescribeSignalingChannel"
        );
    }
}

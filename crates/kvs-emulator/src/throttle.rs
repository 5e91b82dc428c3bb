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
//!
//! The playback paths a session's token opens are throttled per **session** (the token stands
//! where other operations put the channel), at the service's session-level quotas:
//! GetHLSMasterPlaylist, GetHLSMediaPlaylist, GetMP4InitFragment and GetDASHManifest 5/s,
//! GetMP4MediaFragment and GetTSFragment 20/s.
//!
//! The archived-media APIs are also throttled by the **fragments** they ask for, per stream
//! ([`FragmentQuotas`], the service's "fragment-metadata and fragment-media quotas"): 10,000
//! metadata points and 500 media points a second, shared by every API on the stream.
//! ListFragments takes `MaxResults` metadata points; GetClip one metadata and one media point
//! per fragment of the clip; GetHLSMediaPlaylist and GetDASHManifest the session's
//! `MaxMediaPlaylistFragmentResults` / `MaxManifestFragmentResults` metadata points;
//! GetImages 400 + `MaxResults` metadata points and `MaxResults` media points;
//! GetMediaForFragmentList one media point per fragment named; GetMP4MediaFragment and
//! GetTSFragment one media point. A bucket holds one second's worth; a request that asks for
//! more than that (GetMediaForFragmentList of 1,000 fragments) is admitted when the bucket is
//! full and leaves it in debt, so the stream waits until it has paid.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use crate::api_error::ApiError;

/// The message AWS documents for ClientLimitExceededException.
const THROTTLED: &str = "Your request has been throttled because you have exceeded the limit of allowed client calls. Try making the call later.";

/// The operations the emulator serves, by AWS name: the ones a rate can be set for.
pub(crate) const OPERATIONS: [&str; 24] = [
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
    "GetHLSMasterPlaylist",
    "GetHLSMediaPlaylist",
    "GetMP4InitFragment",
    "GetMP4MediaFragment",
    "GetTSFragment",
    "GetDASHManifest",
];

/// The bucket names of the two fragment quotas (the service's CloudWatch metric names).
const METADATA_QUOTA: &str = "ArchivedFragmentsConsumed.Metadata";
const MEDIA_QUOTA: &str = "ArchivedFragmentsConsumed.Media";

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

/// The per-stream fragment quotas of the archived-media APIs, in points per second (see the
/// module docs for what each API takes). `None`: that quota is not enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragmentQuotas {
    /// Fragment-metadata points per second and stream (the service: 10,000).
    pub metadata_per_second: Option<u32>,
    /// Fragment-media points per second and stream (the service: 500).
    pub media_per_second: Option<u32>,
}

impl FragmentQuotas {
    /// The service's quotas: 10,000 metadata and 500 media points per second and stream.
    pub const AWS: Self = Self {
        metadata_per_second: Some(10_000),
        media_per_second: Some(500),
    };

    /// Parse `METADATA/MEDIA` points per second (either may be `-` for none), as
    /// `kvs-emulator serve --fragment-quotas` takes it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (metadata, media) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not METADATA/MEDIA (e.g. 10000/500)"))?;
        Ok(Self {
            metadata_per_second: positive_rate(metadata)?,
            media_per_second: positive_rate(media)?,
        })
    }
}

/// What one request takes from its stream's [`FragmentQuotas`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FragmentPoints {
    /// Fragment-metadata points.
    pub metadata: u32,
    /// Fragment-media points.
    pub media: u32,
}

/// The rate limits of every throttled operation, by AWS operation name
/// (`DescribeSignalingChannel`, `ConnectAsMaster`, `JoinStorageSession`, ...), and the
/// archived-media fragment quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttling {
    limits: BTreeMap<String, TpsLimit>,
    fragment_quotas: FragmentQuotas,
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
        // Session-level limits of the playback paths ("per channel" here is per session).
        for operation in [
            "GetHLSMasterPlaylist",
            "GetHLSMediaPlaylist",
            "GetMP4InitFragment",
            "GetDASHManifest",
        ] {
            t.set(operation, channel(5));
        }
        t.set("GetMP4MediaFragment", channel(20));
        t.set("GetTSFragment", channel(20));
        t.fragment_quotas = FragmentQuotas::AWS;
        t
    }

    /// No throttling at all.
    pub fn disabled() -> Self {
        Self {
            limits: BTreeMap::new(),
            fragment_quotas: FragmentQuotas::default(),
        }
    }

    /// Set the archived-media fragment quotas.
    pub fn set_fragment_quotas(&mut self, quotas: FragmentQuotas) -> &mut Self {
        self.fragment_quotas = quotas;
        self
    }

    /// The archived-media fragment quotas.
    pub fn fragment_quotas(&self) -> FragmentQuotas {
        self.fragment_quotas
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
        let (account, channel) = rates.split_once('/').unwrap_or((rates, "-"));
        Ok((
            operation.to_owned(),
            TpsLimit {
                per_account: positive_rate(account)?,
                per_channel: positive_rate(channel)?,
            },
        ))
    }
}

/// A rate as the CLI gives it: a positive number, or `-` (or nothing) for none.
fn positive_rate(text: &str) -> Result<Option<u32>, String> {
    match text.trim() {
        "-" | "" => Ok(None),
        n => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| format!("`{n}` is not a positive rate (or - for none)")),
    }
}

/// A bucket's key: what it limits (an operation or a fragment quota) and for which channel,
/// stream or session (`None`: the account).
type BucketKey = (String, Option<String>);

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The live buckets.
pub(crate) struct Throttle {
    config: Throttling,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
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
            wanted.push(((operation.clone(), None), rate, 1));
        }
        if let (Some(rate), Some(channel)) = (limit.per_channel, channel) {
            wanted.push(((operation.clone(), Some(channel.to_owned())), rate, 1));
        }
        if self.take(&wanted, now) {
            return Ok(());
        }
        tracing::info!(
            %operation,
            channel = channel.unwrap_or("-"),
            "throttled (ClientLimitExceededException)"
        );
        Err(ApiError::client_limit(THROTTLED))
    }

    /// Take a request's `points` from `stream`'s fragment quotas, or refuse it
    /// (ClientLimitExceededException). A refused request consumes nothing.
    pub(crate) fn charge_fragments(
        &self,
        stream: &str,
        points: FragmentPoints,
        now: Instant,
    ) -> Result<(), ApiError> {
        let quotas = self.config.fragment_quotas;
        let mut wanted = Vec::with_capacity(2);
        for (quota, rate, cost) in [
            (METADATA_QUOTA, quotas.metadata_per_second, points.metadata),
            (MEDIA_QUOTA, quotas.media_per_second, points.media),
        ] {
            if let (Some(rate), true) = (rate, cost > 0) {
                wanted.push(((quota.to_owned(), Some(stream.to_owned())), rate, cost));
            }
        }
        if self.take(&wanted, now) {
            return Ok(());
        }
        tracing::info!(
            stream,
            metadata = points.metadata,
            media = points.media,
            "fragment quota used up (ClientLimitExceededException)"
        );
        Err(ApiError::client_limit(format!(
            "{THROTTLED} The stream's fragment quotas ({} metadata and {} media points per second) cannot pay for this request ({} and {}).",
            shown_rate(quotas.metadata_per_second),
            shown_rate(quotas.media_per_second),
            points.metadata,
            points.media
        )))
    }

    /// Take `cost` tokens from each `(key, rate, cost)` bucket, all or none: a bucket admits a
    /// request when it holds the cost, or, for a cost above its capacity, when it is full (it
    /// then goes into debt). Returns whether the tokens were taken.
    fn take(&self, wanted: &[(BucketKey, u32, u32)], now: Instant) -> bool {
        if wanted.is_empty() {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > MAX_BUCKETS {
            // A bucket idle for a second is full again: forgetting it changes nothing (one in
            // debt is kept until it has paid).
            buckets.retain(|_, b| {
                b.tokens < 0.0 || now.saturating_duration_since(b.updated).as_secs_f64() < 1.0
            });
        }
        let mut all_can_pay = true;
        for (key, rate, cost) in wanted {
            let rate = f64::from(*rate);
            let bucket = buckets.entry(key.clone()).or_insert(Bucket {
                tokens: rate,
                updated: now,
            });
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
            bucket.updated = now;
            all_can_pay &= bucket.tokens >= f64::from(*cost).min(rate);
        }
        if all_can_pay {
            for (key, _, cost) in wanted {
                if let Some(bucket) = buckets.get_mut(key) {
                    bucket.tokens -= f64::from(*cost);
                }
            }
        }
        all_can_pay
    }
}

/// A quota for a message: its rate, or "unlimited".
fn shown_rate(rate: Option<u32>) -> String {
    rate.map_or_else(|| "unlimited".to_owned(), |r| r.to_string())
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

    fn points(metadata: u32, media: u32) -> FragmentPoints {
        FragmentPoints { metadata, media }
    }

    #[test]
    fn fragment_points_are_shared_by_a_stream_and_a_refusal_costs_nothing() {
        let throttle = Throttle::new(Throttling::aws_defaults());
        let t0 = Instant::now();
        // ListFragments of 1000, nine times: 9,000 of the 10,000 metadata points.
        for _ in 0..9 {
            throttle.charge_fragments("s", points(1000, 0), t0).unwrap();
        }
        // A GetImages of 100 (500 metadata, 100 media) fits, and a ListFragments of 400; another
        // GetImages does not, and its refusal must not take the 100 media points it would have
        // cost.
        throttle
            .charge_fragments("s", points(500, 100), t0)
            .unwrap();
        throttle.charge_fragments("s", points(400, 0), t0).unwrap();
        let refused = throttle
            .charge_fragments("s", points(500, 100), t0)
            .unwrap_err();
        assert_eq!(refused.code, "ClientLimitExceededException");
        assert!(
            refused.message.contains("10000 metadata and 500 media"),
            "{}",
            refused.message
        );
        // 400 media points remain: 400 media fragments of a session, then no more.
        for _ in 0..400 {
            throttle.charge_fragments("s", points(0, 1), t0).unwrap();
        }
        assert!(throttle.charge_fragments("s", points(0, 1), t0).is_err());
        // Another stream has its own points.
        throttle
            .charge_fragments("t", points(10_000, 500), t0)
            .unwrap();
        // A fiftieth of a second brings 10 media points back (500/s).
        let later = t0 + Duration::from_millis(20);
        for _ in 0..10 {
            throttle.charge_fragments("s", points(0, 1), later).unwrap();
        }
        assert!(throttle.charge_fragments("s", points(0, 1), later).is_err());
    }

    #[test]
    fn a_request_above_the_quota_goes_into_debt_when_the_bucket_is_full() {
        let throttle = Throttle::new(Throttling::aws_defaults());
        let t0 = Instant::now();
        // GetMediaForFragmentList of 1,000 fragments: twice the media quota.
        throttle.charge_fragments("s", points(0, 1000), t0).unwrap();
        // 500 points in debt: the stream pays for one second, then has its next point at 1.002 s.
        let just_before = t0 + Duration::from_millis(1_001);
        assert!(throttle
            .charge_fragments("s", points(0, 1), just_before)
            .is_err());
        let paid = t0 + Duration::from_millis(1_003);
        throttle.charge_fragments("s", points(0, 1), paid).unwrap();
        // A second big request needs a full bucket again.
        let full = paid + Duration::from_secs(1);
        throttle
            .charge_fragments("s", points(0, 1000), full)
            .unwrap();
        assert!(throttle
            .charge_fragments("s", points(0, 1000), full + Duration::from_millis(500))
            .is_err());
    }

    #[test]
    fn playback_paths_are_throttled_per_session_and_quotas_can_be_lifted() {
        let throttle = Throttle::new(Throttling::aws_defaults());
        let t0 = Instant::now();
        for _ in 0..20 {
            throttle
                .admit("getMP4MediaFragment", Some("token-a"), t0)
                .unwrap();
        }
        assert!(throttle
            .admit("getMP4MediaFragment", Some("token-a"), t0)
            .is_err());
        for _ in 0..5 {
            throttle
                .admit("getHLSMediaPlaylist", Some("token-a"), t0)
                .unwrap();
        }
        assert!(throttle
            .admit("getHLSMediaPlaylist", Some("token-a"), t0)
            .is_err());
        throttle
            .admit("getHLSMediaPlaylist", Some("token-b"), t0)
            .unwrap();
        let mut lifted = Throttling::aws_defaults();
        lifted.set_fragment_quotas(FragmentQuotas::parse("-/-").unwrap());
        let lifted = Throttle::new(lifted);
        for _ in 0..100 {
            lifted
                .charge_fragments("s", points(10_000, 1000), t0)
                .unwrap();
        }
        assert_eq!(
            FragmentQuotas::parse("10000/500").unwrap(),
            FragmentQuotas::AWS
        );
        assert!(FragmentQuotas::parse("10000").is_err());
        assert!(FragmentQuotas::parse("0/500").is_err());
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

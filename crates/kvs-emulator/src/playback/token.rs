//! The `SessionToken` of an HLS or DASH streaming session: what `GetHLSStreamingSessionURL` or
//! `GetDASHStreamingSessionURL` was asked ([`Claims`]: the protocol, the stream, the playback
//! mode, the selector, the playlist or manifest options, when it was made and when it expires),
//! signed with a key the emulator draws at start ([`TokenKey`]).
//!
//! A token is `base64url(JSON claims) "." base64url(HMAC-SHA256(key, first part))`. The service's
//! token is encrypted; this one is only signed, so whoever holds it can read what it says (a
//! stream name and playlist options: nothing secret), but any change to it, or a signature from
//! another emulator (or from before a restart: the key is not kept), is refused. Checking it is
//! a pure function of the token, the key and `now`, so expiry is tested without waiting.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Which protocol a session plays: its token opens only that protocol's paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Protocol {
    /// HLS: `/hls/v1/`.
    Hls,
    /// MPEG-DASH: `/dash/v1/`.
    Dash,
}

/// Which timestamp a session's range and displayed timestamps use (`FragmentSelectorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum TimestampKind {
    /// `PRODUCER_TIMESTAMP`: the device's clock.
    Producer,
    /// `SERVER_TIMESTAMP`: when the storage peer received the fragment's first frame.
    Server,
}

/// `PlaybackMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum PlaybackMode {
    /// The newest fragments, following ingestion.
    Live,
    /// From a start time, fragments appearing at the pace they were ingested.
    LiveReplay,
    /// A closed range, all at once.
    OnDemand,
}

/// `DiscontinuityMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum DiscontinuityMode {
    /// A marker before every fragment but the first of a playlist.
    Always,
    /// No markers.
    Never,
    /// A marker where a fragment does not start where the one before it ended.
    OnDiscontinuity,
}

/// What a session token says: the request it was made for, and its lifetime.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Claims {
    /// HLS or DASH.
    pub protocol: Protocol,
    /// The stream's name.
    pub stream: String,
    /// The stream's ARN: a stream deleted and created again under the same name is another
    /// stream, and the token is not for it.
    pub arn: String,
    /// The playback mode.
    pub mode: PlaybackMode,
    /// Which timestamp the range selects on and the playlist displays.
    pub kind: TimestampKind,
    /// Start of the range, ms since the epoch (inclusive; not for LIVE).
    pub start_ms: Option<i64>,
    /// End of the range, ms since the epoch (inclusive; ON_DEMAND always, LIVE_REPLAY maybe).
    pub end_ms: Option<i64>,
    /// Where the media playlists put `#EXT-X-DISCONTINUITY`.
    pub discontinuity: DiscontinuityMode,
    /// Whether the media playlists carry `#EXT-X-PROGRAM-DATE-TIME` (HLS), the manifest's
    /// segments `kvs:ts` (DASH).
    pub display_timestamp: bool,
    /// Whether the manifest's segments carry `kvs:fn` (DASH).
    pub display_fragment_number: bool,
    /// The most fragments one media playlist or manifest lists.
    pub max_results: u32,
    /// When the session was made, ms since the epoch (LIVE_REPLAY paces itself from it).
    pub created_ms: i64,
    /// When the token stops being accepted, ms since the epoch.
    pub expires_ms: i64,
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// It is not `payload.signature` in base64url, or its claims are not JSON claims.
    #[error("the session token is malformed")]
    Malformed,
    /// The signature is not this emulator's over this payload: altered, or made elsewhere.
    #[error("the session token's signature does not match")]
    BadSignature,
    /// It was valid until its `Expires` ran out.
    #[error("the session token has expired")]
    Expired,
}

/// The key that signs session tokens: random, drawn at start, never logged.
pub(crate) struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(** redacted **)")
    }
}

impl TokenKey {
    /// A new random key.
    pub(crate) fn random() -> Self {
        Self(rand::random())
    }

    /// A key with these bytes (tests, fuzzing).
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(payload);
        mac
    }

    /// The token for `claims`.
    pub(crate) fn sign(&self, claims: &Claims) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let json = serde_json::to_vec(claims).expect("claims serialize");
        let payload = b64.encode(json);
        let signature = b64.encode(self.mac(payload.as_bytes()).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The claims of `token` if this key signed it and it has not expired at `now_ms`.
    pub(crate) fn verify(&self, token: &str, now_ms: i64) -> Result<Claims, TokenError> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = b64.decode(signature).map_err(|_| TokenError::Malformed)?;
        self.mac(payload.as_bytes())
            .verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let json = b64.decode(payload).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if now_ms >= claims.expires_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn claims(stream: &str) -> Claims {
        Claims {
            protocol: Protocol::Hls,
            stream: stream.to_owned(),
            arn: format!("arn:aws:kinesisvideo:us-west-2:111122223333:stream/{stream}/1"),
            mode: PlaybackMode::OnDemand,
            kind: TimestampKind::Producer,
            start_ms: Some(1_000),
            end_ms: Some(9_000),
            discontinuity: DiscontinuityMode::Never,
            display_timestamp: false,
            display_fragment_number: false,
            max_results: 1000,
            created_ms: 10_000,
            expires_ms: 310_000,
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let key = TokenKey::from_bytes([7; 32]);
        let token = key.sign(&claims("cam"));
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "needs no escaping in a URL: {token}"
        );
        assert_eq!(key.verify(&token, 10_000), Ok(claims("cam")));
        assert_eq!(key.verify(&token, 309_999), Ok(claims("cam")));
        assert_eq!(key.verify(&token, 310_000), Err(TokenError::Expired));
    }

    #[test]
    fn an_altered_or_foreign_token_is_refused() {
        let key = TokenKey::from_bytes([7; 32]);
        let token = key.sign(&claims("cam"));
        let (payload, signature) = token.split_once('.').unwrap();

        // Another stream's claims under this token's signature.
        let other = key.sign(&claims("other"));
        let other_payload = other.split_once('.').unwrap().0;
        assert_eq!(
            key.verify(&format!("{other_payload}.{signature}"), 10_000),
            Err(TokenError::BadSignature)
        );
        // One character of the signature changed.
        let mut altered = signature.to_owned().into_bytes();
        altered[3] = if altered[3] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_eq!(
            key.verify(&format!("{payload}.{altered}"), 10_000),
            Err(TokenError::BadSignature)
        );
        // A longer expiry written into the claims.
        let mut longer = claims("cam");
        longer.expires_ms = i64::MAX;
        let longer_payload = key.sign(&longer).split_once('.').unwrap().0.to_owned();
        assert_eq!(
            key.verify(&format!("{longer_payload}.{signature}"), 10_000),
            Err(TokenError::BadSignature)
        );
        // Another emulator's key.
        let foreign = TokenKey::from_bytes([8; 32]).sign(&claims("cam"));
        assert_eq!(key.verify(&foreign, 10_000), Err(TokenError::BadSignature));
        for junk in ["", "abc", "a.b.c", "!!.??", &format!("{payload}.")] {
            assert!(key.verify(junk, 10_000).is_err(), "{junk}");
        }
        assert_eq!(format!("{key:?}"), "TokenKey(** redacted **)");
    }
}

//! Identifiers a caller passes in, checked locally before any request leaves the process, with
//! the patterns of the service models (`kinesisvideo` and `kinesis-video-webrtc-storage`).

use std::fmt;

use crate::error::Error;

/// The most characters a channel ARN may have (model `ResourceARN`).
const MAX_ARN_LEN: usize = 1024;
/// The most characters a channel name or a client id may have.
const MAX_NAME_LEN: usize = 256;

/// A signaling channel, given by its name or its ARN.
///
/// ```
/// use kvs_webrtc_discovery::ChannelId;
///
/// let by_name = ChannelId::parse("front-door")?;
/// let by_arn = ChannelId::parse("arn:aws:kinesisvideo:us-west-2:111122223333:channel/front-door/1700000000000")?;
/// assert_eq!(by_arn.arn().map(|a| a.name()), Some("front-door"));
/// assert!(by_name.arn().is_none());
/// assert!(ChannelId::parse("front door").is_err());
/// # Ok::<(), kvs_webrtc_discovery::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChannelId {
    /// A channel name (`[a-zA-Z0-9_.-]{1,256}`).
    Name(String),
    /// A channel ARN.
    Arn(ChannelArn),
}

impl ChannelId {
    /// Read a name or an ARN (anything that starts with `arn:` is read as an ARN).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the rule that failed.
    pub fn parse(value: &str) -> Result<Self, Error> {
        if value.starts_with("arn:") {
            ChannelArn::parse(value).map(Self::Arn)
        } else {
            check_name("channel name", value)?;
            Ok(Self::Name(value.to_owned()))
        }
    }

    /// The ARN, when the channel was given by ARN.
    pub fn arn(&self) -> Option<&ChannelArn> {
        match self {
            Self::Arn(arn) => Some(arn),
            Self::Name(_) => None,
        }
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name),
            Self::Arn(arn) => f.write_str(arn.as_str()),
        }
    }
}

/// A signaling-channel ARN:
/// `arn:<partition>:kinesisvideo:<region>:<account>:channel/<name>/<creation epoch ms>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelArn {
    value: String,
    region: std::ops::Range<usize>,
    name: std::ops::Range<usize>,
}

impl ChannelArn {
    /// Check `value` against the storage API's `channelArn` pattern
    /// (`^arn:(aws[a-zA-Z-]*):kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+$`),
    /// narrowed to channel resources.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) saying which part is wrong.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::invalid_input(format!(
                "`{value}` is not a signaling channel ARN ({why}); expected \
                 arn:aws:kinesisvideo:<region>:<account>:channel/<name>/<creation time>"
            ))
        };
        if value.len() > MAX_ARN_LEN {
            return Err(bad("longer than 1024 characters"));
        }
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(bad("it needs six `:`-separated parts"));
        };
        if arn != "arn" || !partition.starts_with("aws") {
            return Err(bad("the partition must start with `aws`"));
        }
        if !partition[3..]
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == '-')
        {
            return Err(bad(
                "the partition has characters other than letters and `-`",
            ));
        }
        if service != "kinesisvideo" {
            return Err(bad("the service must be `kinesisvideo`"));
        }
        let region_ok = !region.is_empty()
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !region_ok {
            return Err(bad("the region must be lower-case letters, digits and `-`"));
        }
        if account.is_empty() || !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad("the account must be digits"));
        }
        let resource_parts: Vec<&str> = resource.split('/').collect();
        let ["channel", name, created] = resource_parts[..] else {
            return Err(bad("the resource must be `channel/<name>/<creation time>`"));
        };
        if name.is_empty() || !name.chars().all(is_name_char) {
            return Err(bad("the channel name must be [a-zA-Z0-9_.-]"));
        }
        if created.is_empty() || !created.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad("the creation time must be digits"));
        }
        let region_start = arn.len() + partition.len() + service.len() + 3;
        let name_start = value.len() - created.len() - 1 - name.len();
        Ok(Self {
            value: value.to_owned(),
            region: region_start..region_start + region.len(),
            name: name_start..name_start + name.len(),
        })
    }

    /// The whole ARN.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The region the channel lives in.
    pub fn region(&self) -> &str {
        &self.value[self.region.clone()]
    }

    /// The channel name inside the ARN.
    pub fn name(&self) -> &str {
        &self.value[self.name.clone()]
    }
}

impl fmt::Display for ChannelArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// The identity of a viewer (or of a master talking to P2P viewers): `[a-zA-Z0-9_.-]{1,256}`,
/// not starting with `AWS_` (ConnectAsViewer reserves that prefix).
///
/// Keep it short and stable across reconnects: the storage session holds a viewer's slot for a
/// minute after it leaves, and only the same id can take it back.
///
/// ```
/// use kvs_webrtc_discovery::ClientId;
///
/// assert!(ClientId::new("kitchen-display-1").is_ok());
/// assert!(ClientId::new("AWS_reserved").is_err());
/// assert!(ClientId::new("").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(String);

impl ClientId {
    /// Check and wrap a client id.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the rule that failed.
    pub fn new(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        check_name("client id", &value)?;
        if value.starts_with("AWS_") {
            return Err(Error::invalid_input(format!(
                "client id `{value}` starts with `AWS_`, which the service reserves; choose another id"
            )));
        }
        Ok(Self(value))
    }

    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which side of the channel a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Role {
    /// The media producer (one per channel; the newest connection wins).
    #[default]
    Master,
    /// A viewer (up to 10 per channel for P2P, 3 in a storage session).
    Viewer,
}

impl Role {
    /// The model's spelling: `MASTER` or `VIEWER`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Master => "MASTER",
            Self::Viewer => "VIEWER",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The channel a builder was given, parsed; `operation` names the builder in the error.
pub(crate) fn required_channel(
    channel: Option<String>,
    operation: &str,
) -> Result<ChannelId, Error> {
    let channel = channel.ok_or_else(|| {
        Error::invalid_input(format!(
            "{operation} needs a channel: call .channel(<name or ARN>)"
        ))
    })?;
    ChannelId::parse(&channel)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

fn check_name(what: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid_input(format!("the {what} is empty")));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(Error::invalid_input(format!(
            "the {what} has {} characters; at most {MAX_NAME_LEN} are allowed",
            value.len()
        )));
    }
    if let Some(bad) = value.chars().find(|c| !is_name_char(*c)) {
        return Err(Error::invalid_input(format!(
            "the {what} `{value}` contains {bad:?}; only letters, digits, `_`, `.` and `-` are allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const ARN: &str = "arn:aws:kinesisvideo:us-west-2:111122223333:channel/cam_1.a-b/1700000000000";

    #[test]
    fn a_channel_arn_is_split_into_region_and_name() {
        let arn = ChannelArn::parse(ARN).unwrap();
        assert_eq!(arn.region(), "us-west-2");
        assert_eq!(arn.name(), "cam_1.a-b");
        assert_eq!(arn.as_str(), ARN);
        let cn = ChannelArn::parse("arn:aws-cn:kinesisvideo:cn-north-1:1:channel/c/2").unwrap();
        assert_eq!(cn.region(), "cn-north-1");
        assert_eq!(cn.name(), "c");
    }

    #[test]
    fn malformed_channel_arns_are_refused_with_the_reason() {
        let cases = [
            (
                "arn:aws:kinesisvideo:us-west-2:111122223333:stream/cam/1",
                "resource",
            ),
            ("arn:aws:s3:us-west-2:111122223333:channel/cam/1", "service"),
            (
                "arn:azure:kinesisvideo:us-west-2:1:channel/cam/1",
                "partition",
            ),
            ("arn:aws:kinesisvideo:US-WEST-2:1:channel/cam/1", "region"),
            (
                "arn:aws:kinesisvideo:us-west-2:12a:channel/cam/1",
                "account",
            ),
            (
                "arn:aws:kinesisvideo:us-west-2:1:channel/c am/1",
                "channel name",
            ),
            (
                "arn:aws:kinesisvideo:us-west-2:1:channel/cam/x1",
                "creation time",
            ),
            ("arn:aws:kinesisvideo:us-west-2:1:channel/cam", "resource"),
            ("arn:aws:kinesisvideo", "six"),
        ];
        for (arn, why) in cases {
            let err = ChannelArn::parse(arn).expect_err(arn);
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains(why), "{arn}: {err}");
        }
        let long = format!("{ARN}{}", "0".repeat(1024));
        assert!(ChannelArn::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("1024"));
    }

    #[test]
    fn channel_ids_are_names_or_arns() {
        assert_eq!(
            ChannelId::parse("cam").unwrap(),
            ChannelId::Name("cam".into())
        );
        assert!(matches!(ChannelId::parse(ARN).unwrap(), ChannelId::Arn(_)));
        assert!(ChannelId::parse("arn:nope").is_err());
        assert!(ChannelId::parse("")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(ChannelId::parse(&"a".repeat(257))
            .unwrap_err()
            .to_string()
            .contains("257"));
        assert!(ChannelId::parse("a/b")
            .unwrap_err()
            .to_string()
            .contains("'/'"));
    }

    #[test]
    fn client_ids_follow_the_model_pattern() {
        assert_eq!(ClientId::new("v-1.a_b").unwrap().as_str(), "v-1.a_b");
        assert!(ClientId::new("a".repeat(256)).is_ok());
        assert!(ClientId::new("a".repeat(257)).is_err());
        assert!(ClientId::new("viewer 1").is_err());
        assert!(ClientId::new("AWS_x")
            .unwrap_err()
            .to_string()
            .contains("AWS_"));
    }
}

//! Input checks shared by the emulated APIs, with the patterns of the API models.

use serde_json::{Map, Value};

use crate::api_error::ApiError;

/// At most this many characters of a refused value are echoed in messages and logs.
const SHOWN: usize = 256;

/// A refused value as messages show it: whole when short, else its start and its length (a
/// 900 KB ARN used to be echoed, and logged, in full).
pub(crate) fn shown(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(SHOWN) {
        None => value.into(),
        Some((cut, _)) => format!("{}... ({} bytes)", &value[..cut], value.len()).into(),
    }
}

/// `[a-zA-Z0-9_.-]+` of `min..=max` characters.
pub(crate) fn name(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > max {
        return Err(ApiError::invalid_argument(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have length between 1 and {max}"
        )));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(ApiError::invalid_argument(format!(
            "1 validation error detected: Value '{}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
            shown(value)
        )));
    }
    Ok(())
}

/// A KVS resource ARN: `arn:aws[a-zA-Z-]*:kinesisvideo:<region>:<account>:<type>/<name>/<digits>`.
pub(crate) fn arn(field: &str, value: &str) -> Result<(), ApiError> {
    let bad = || {
        ApiError::invalid_argument(format!(
            "1 validation error detected: Value '{}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: ^arn:(aws[a-zA-Z-]*):kinesisvideo:[a-z0-9-]+:[0-9]+:[a-z]+/[a-zA-Z0-9_.-]+/[0-9]+$",
            shown(value)
        ))
    };
    if value.is_empty() || value.len() > 1024 {
        return Err(bad());
    }
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(bad());
    };
    let resource_parts: Vec<&str> = resource.split('/').collect();
    let ok = *prefix == "arn"
        && partition.starts_with("aws")
        && partition[3..]
            .bytes()
            .all(|b| b.is_ascii_alphabetic() || b == b'-')
        && *service == "kinesisvideo"
        && !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource_parts.len() == 3
        && !resource_parts[0].is_empty()
        && resource_parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && name("", resource_parts[1], 256).is_ok()
        && !resource_parts[2].is_empty()
        && resource_parts[2].bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A required string member.
pub(crate) fn required<'a>(
    body: &'a serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<&'a str, ApiError> {
    optional(body, field)?.ok_or_else(|| {
        ApiError::invalid_argument(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// An optional string member (JSON `null` counts as absent).
pub(crate) fn optional<'a>(
    body: &'a serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::new(
            http::StatusCode::BAD_REQUEST,
            "SerializationException",
            format!("Member '{field}' must be a string."),
        )),
    }
}

/// "1 validation error detected" for an enum member, as the service words it.
pub(crate) fn enum_member<'a>(
    body: &'a Map<String, Value>,
    field: &str,
    member: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, ApiError> {
    let Some(value) = optional(body, field)? else {
        return Ok(None);
    };
    if allowed.contains(&value) {
        Ok(Some(value))
    } else {
        Err(ApiError::invalid_argument(format!(
            "1 validation error detected: Value '{}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
            shown(value),
            allowed.join(", ")
        )))
    }
}

/// An optional integer member within `range`.
pub(crate) fn int_member(
    body: &Map<String, Value>,
    field: &str,
    member: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, ApiError> {
    match body.get(field).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::invalid_argument(format!(
                "1 validation error detected: Value '{v}' at '{member}' failed to satisfy constraint: Member must have value between {} and {}",
                range.start(),
                range.end()
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_pattern_matches_the_model() {
        arn(
            "ChannelARN",
            "arn:aws:kinesisvideo:us-west-2:111122223333:channel/cam-1/1700000000000",
        )
        .unwrap();
        arn(
            "ChannelARN",
            "arn:aws-cn:kinesisvideo:cn-north-1:1:channel/a.b_c-d/1",
        )
        .unwrap();
        for bad in [
            "",
            "arn:aws:s3:us-west-2:1:channel/a/1",
            "arn:aws:kinesisvideo:us-west-2:1:channel/a",
            "arn:aws:kinesisvideo:US:1:channel/a/1",
            "arn:aws:kinesisvideo:us-west-2:x:channel/a/1",
            "arn:aws:kinesisvideo:us-west-2:1:channel/a b/1",
            "arn:aws:kinesisvideo:us-west-2:1:channel/a/1x",
        ] {
            let err = arn("ChannelARN", bad).unwrap_err();
            assert_eq!(err.code, "InvalidArgumentException", "{bad}");
        }
    }

    #[test]
    fn names_follow_length_and_pattern() {
        name("ClientId", "viewer-1.a_b", 256).unwrap();
        assert!(name("ClientId", "", 256).is_err());
        assert!(name("ClientId", &"a".repeat(257), 256).is_err());
        assert!(name("ClientId", "has space", 256).is_err());
    }
}

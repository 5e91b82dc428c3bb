//! A stored fragment as the media APIs deliver it: its Matroska file with a `Tags` element
//! added to its Segment, carrying `AWS_KINESISVIDEO_FRAGMENT_NUMBER`,
//! `AWS_KINESISVIDEO_SERVER_TIMESTAMP` and `AWS_KINESISVIDEO_PRODUCER_TIMESTAMP` (seconds since
//! the epoch, with milliseconds), as the service tags each fragment it returns.
//!
//! The fragment files are written by `kvs_media::mkv::MkvWriter`: an EBML header, then one
//! Segment whose size is a fixed 8-byte field. The Tags element goes at the Segment's end and
//! the size field is rewritten in place (same width), so the SeekHead's and Cues' offsets stay
//! right.

use super::FragmentMeta;

/// Why a fragment file could not be tagged (it is not what the store wrote).
#[derive(Debug, thiserror::Error)]
#[error("the fragment file is not a Matroska file the store wrote ({0})")]
pub(crate) struct NotAFragment(&'static str);

/// An EBML variable-length integer at `at`: (value with the length marker removed, length).
fn vint(bytes: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *bytes.get(at)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let mut value = u64::from(first) & (0xff >> len);
    for i in 1..len {
        value = (value << 8) | u64::from(*bytes.get(at + i)?);
    }
    Some((value, len))
}

/// An element ID at `at` (marker kept, as IDs are written): its length.
fn id_len(bytes: &[u8], at: usize) -> Option<usize> {
    let len = bytes.get(at)?.leading_zeros() as usize + 1;
    (len <= 4).then_some(len)
}

fn ebml_element(id: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    // An 8-byte size: simple, and always valid.
    out.push(0x01);
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

fn simple_tag(name: &str, value: &str) -> Vec<u8> {
    let payload = [
        ebml_element(&[0x45, 0xA3], name.as_bytes()),
        ebml_element(&[0x44, 0x87], value.as_bytes()),
    ]
    .concat();
    ebml_element(&[0x67, 0xC8], &payload)
}

/// Seconds since the epoch with milliseconds, as the service writes its timestamp tags.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The `Tags` element of a fragment, with `extra` name/value tags after the standard ones.
pub(crate) fn tags(meta: &FragmentMeta, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut tag = [
        // Targets (empty: the whole segment).
        ebml_element(&[0x63, 0xC0], &[]),
        simple_tag("AWS_KINESISVIDEO_FRAGMENT_NUMBER", &meta.fragment_number),
        simple_tag(
            "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
            &seconds(meta.server_timestamp_ms),
        ),
        simple_tag(
            "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP",
            &seconds(meta.producer_timestamp_ms),
        ),
    ]
    .concat();
    for (name, value) in extra {
        tag.extend_from_slice(&simple_tag(name, value));
    }
    ebml_element(
        &[0x12, 0x54, 0xC3, 0x67],
        &ebml_element(&[0x73, 0x73], &tag),
    )
}

/// `file` (a fragment file's bytes) with the fragment's tags added to its Segment.
pub(crate) fn tagged(file: Vec<u8>, meta: &FragmentMeta) -> Result<Vec<u8>, NotAFragment> {
    tagged_with(file, meta, &[])
}

/// [`tagged`], with `extra` tags (GetMedia's `AWS_KINESISVIDEO_CONTINUATION_TOKEN` and
/// `AWS_KINESISVIDEO_MILLIS_BEHIND_NOW`) after the standard three.
pub(crate) fn tagged_with(
    mut file: Vec<u8>,
    meta: &FragmentMeta,
    extra: &[(&str, &str)],
) -> Result<Vec<u8>, NotAFragment> {
    let header_id = id_len(&file, 0).ok_or(NotAFragment("no EBML header"))?;
    let (header_size, header_size_len) =
        vint(&file, header_id).ok_or(NotAFragment("no EBML header size"))?;
    let segment = header_id + header_size_len + header_size as usize;
    if file.get(segment..segment + 4) != Some(&[0x18, 0x53, 0x80, 0x67]) {
        return Err(NotAFragment("no Segment after the EBML header"));
    }
    let size_at = segment + 4;
    let (size, size_len) = vint(&file, size_at).ok_or(NotAFragment("no Segment size"))?;
    if size_len != 8 || size_at + 8 + size as usize != file.len() {
        return Err(NotAFragment(
            "the Segment is not the finished, 8-byte-sized one",
        ));
    }
    let tags = tags(meta, extra);
    let new_size = size + tags.len() as u64;
    file[size_at] = 0x01;
    file[size_at + 1..size_at + 8].copy_from_slice(&new_size.to_be_bytes()[1..]);
    file.extend_from_slice(&tags);
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_seconds_with_milliseconds() {
        assert_eq!(seconds(1_733_000_000_123), "1733000000.123");
        assert_eq!(seconds(5), "0.005");
    }

    #[test]
    fn what_the_store_did_not_write_is_refused() {
        let meta = FragmentMeta {
            fragment_number: "1".into(),
            producer_timestamp_ms: 0,
            server_timestamp_ms: 0,
            fragment_length_ms: 0,
            fragment_size_bytes: 0,
        };
        for junk in [&b""[..], b"\x1a\x45\xdf\xa3\x80", b"\xff\xff\xff"] {
            assert!(tagged(junk.to_vec(), &meta).is_err());
        }
    }
}

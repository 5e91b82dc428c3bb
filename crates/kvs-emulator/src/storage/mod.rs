//! The storage API (`JoinStorageSession`, `JoinStorageSessionAsViewer`) and the storage sessions
//! it starts: one real WebRTC peer each, see [`peer`]. The session registry is
//! [`crate::sessions`], the media relay between a channel's peers [`crate::relay`].

pub(crate) mod answer;
pub(crate) mod api;
pub(crate) mod external;
pub(crate) mod path;
pub(crate) mod peer;
pub(crate) mod session;

/// The directory (one path component) that holds a channel's recordings or a stream's fragments.
/// Channel and stream names match `[a-zA-Z0-9_.-]+`, so only `.` and `..` could leave the
/// parent directory; their dots are written as `%2E`.
pub(crate) fn safe_dir_name(channel_name: &str) -> String {
    if channel_name.bytes().all(|b| b == b'.') {
        channel_name.replace('.', "%2E")
    } else {
        channel_name.to_owned()
    }
}

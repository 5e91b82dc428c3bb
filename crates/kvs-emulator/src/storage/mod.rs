//! The storage API (`JoinStorageSession`, `JoinStorageSessionAsViewer`) and the storage sessions
//! it starts: one real WebRTC peer each, see [`peer`]. The session registry is
//! [`crate::sessions`], the media relay between a channel's peers [`crate::relay`].

pub(crate) mod answer;
pub(crate) mod api;
pub(crate) mod external;
pub(crate) mod path;
pub(crate) mod peer;
pub(crate) mod session;

//! What the storage peer does with the media it receives: check it as the service does, count it
//! and record it.

pub(crate) mod h264;
pub(crate) mod mkv;
pub(crate) mod sink;

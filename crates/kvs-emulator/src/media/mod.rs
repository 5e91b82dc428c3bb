//! What the storage peer does with the media it receives: check it as the service does, count it
//! and record it (H.264 and Matroska from [`kvs_media`]).

pub(crate) mod sink;

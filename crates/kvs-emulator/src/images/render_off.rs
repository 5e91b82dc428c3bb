//! The emulator built without its `images` feature (as `cargo run -p kvs-ingest -- demo`
//! builds it, so that a fresh machine needs nothing but Rust): no H.264 decoder, so every
//! sampled time that has media answers `MEDIA_ERROR`, and the log says why. Build with the
//! feature (the default of `kvs-emulator`; `--features images` for `kvs-ingest`; it needs a
//! C++ compiler) to have images.

use super::Output;

/// Why there is no picture.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    /// The feature is off.
    #[error("this kvs-emulator was built without its `images` feature (it needs a C++ compiler), so it has no H.264 decoder")]
    Disabled,
}

/// Always [`RenderError::Disabled`], once for each of `offsets`.
pub(crate) fn render(
    _file: &[u8],
    offsets: &[i64],
    _output: Output,
) -> Vec<Result<Vec<u8>, RenderError>> {
    offsets.iter().map(|_| Err(RenderError::Disabled)).collect()
}

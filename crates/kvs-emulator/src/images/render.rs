//! Pictures out of a stored fragment: its H.264 decoded, scaled and encoded as JPEG or PNG.
//!
//! The libraries, and why:
//! - **H.264 decoding: Cisco's OpenH264** through the `openh264` crate, whose `-sys` crate
//!   compiles the bundled OpenH264 source with the C++ compiler the `aac` feature already
//!   needs (and NASM's assembly when `nasm` is installed, else plain C). It decodes the
//!   Constrained Baseline, Main and High streams a WebRTC device sends, is maintained, and
//!   needs no system library; FFmpeg's decoder through `ffmpeg-next` would need Debian's
//!   `libav*-dev` and a binding matching its FFmpeg, and no pure-Rust H.264 decoder is mature.
//!   OpenH264's source is BSD-2-Clause; Cisco's H.264 patent licence covers only the binaries
//!   Cisco ships, not one built from source, which suits a local test tool.
//! - **Scaling and encoding: `image`** (its JPEG and PNG encoders and its resampling), the
//!   Rust ecosystem's image library.
//!
//! The fragment is read with [`kvs_media::mkv_reader`], which turns its AVCC video into
//! Annex-B with the parameter sets in front of each keyframe.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{ImageEncoder, RgbImage};
use kvs_media::mkv_reader::{FrameKind, MkvReader};
use openh264::decoder::{DecodedYUV, Decoder};
use openh264::formats::YUVSource;

use super::{Format, Output};

/// Why a sampled time has no picture.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    /// The fragment file does not read back.
    #[error("the fragment does not read as Matroska: {0}")]
    Unreadable(String),
    /// The fragment has no video frame.
    #[error("the fragment has no video")]
    NoVideo,
    /// OpenH264 refused the stream.
    #[error("the H.264 does not decode: {0}")]
    Decode(#[from] openh264::Error),
    /// The decoder gave no picture for the frame.
    #[error("the decoder gave no picture for the frame at {0} ms")]
    NoPicture(i64),
    /// The encoder failed.
    #[error("the picture does not encode: {0}")]
    Encode(#[from] image::ImageError),
}

/// One video frame of a fragment.
struct VideoFrame {
    /// ms from the fragment's start.
    offset_ms: i64,
    keyframe: bool,
    /// Annex-B access unit.
    data: Vec<u8>,
}

/// The image for each of `offsets` (ms from the fragment's start, growing): the frame
/// nearest each, encoded as `output` says.
pub(crate) fn render(
    file: &[u8],
    offsets: &[i64],
    output: Output,
) -> Vec<Result<Vec<u8>, RenderError>> {
    let frames = match video_frames(file) {
        Ok(frames) if !frames.is_empty() => frames,
        Ok(_) => return offsets.iter().map(|_| Err(RenderError::NoVideo)).collect(),
        Err(e) => {
            let why = e.to_string();
            return offsets
                .iter()
                .map(|_| Err(RenderError::Unreadable(why.clone())))
                .collect();
        }
    };
    let wanted: Vec<usize> = offsets.iter().map(|&t| nearest(&frames, t)).collect();
    let mut pictures = Pictures::new(&frames);
    wanted
        .iter()
        .map(|&index| {
            let picture = pictures.at(index)?;
            encode(&picture, output)
        })
        .collect()
}

/// The video frames of a fragment file, in order.
fn video_frames(file: &[u8]) -> Result<Vec<VideoFrame>, kvs_media::MediaError> {
    let mut reader = MkvReader::new(file)?;
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_frame()? {
        if frame.kind == FrameKind::Video {
            frames.push(VideoFrame {
                offset_ms: frame.timestamp.as_millis() as i64,
                keyframe: frame.keyframe,
                data: frame.data,
            });
        }
    }
    Ok(frames)
}

/// The index of the frame nearest `offset` (the earlier one on a tie).
fn nearest(frames: &[VideoFrame], offset: i64) -> usize {
    let after = frames.partition_point(|f| f.offset_ms < offset);
    match (after.checked_sub(1), frames.get(after)) {
        (Some(before), Some(next))
            if offset - frames[before].offset_ms <= next.offset_ms - offset =>
        {
            before
        }
        (_, Some(_)) => after,
        (Some(before), None) => before,
        (None, None) => 0,
    }
}

/// Decodes a fragment's frames in order, on demand, restarting at a keyframe when that is
/// shorter than decoding on.
struct Pictures<'a> {
    frames: &'a [VideoFrame],
    decoder: Option<Decoder>,
    /// The next frame the decoder would take.
    next: usize,
    /// The last picture decoded, and its frame.
    last: Option<(usize, RgbImage)>,
}

impl<'a> Pictures<'a> {
    fn new(frames: &'a [VideoFrame]) -> Self {
        Self {
            frames,
            decoder: None,
            next: 0,
            last: None,
        }
    }

    /// The picture of frame `index`.
    fn at(&mut self, index: usize) -> Result<RgbImage, RenderError> {
        if let Some((at, picture)) = &self.last {
            if *at == index {
                return Ok(picture.clone());
            }
        }
        let keyframe = (0..=index)
            .rev()
            .find(|&i| self.frames[i].keyframe)
            .unwrap_or(0);
        if self.decoder.is_none() || index < self.next || keyframe > self.next {
            self.decoder = Some(Decoder::new()?);
            self.next = keyframe;
        }
        let decoder = self.decoder.as_mut().expect("made above");
        let mut picture = None;
        while self.next <= index {
            let frame = &self.frames[self.next];
            self.next += 1;
            let decoded = decoder.decode(&frame.data)?;
            if self.next > index {
                picture = decoded.map(|yuv| to_rgb(&yuv));
            }
        }
        let picture = picture.ok_or(RenderError::NoPicture(self.frames[index].offset_ms))?;
        self.last = Some((index, picture.clone()));
        Ok(picture)
    }
}

/// A decoded picture as RGB.
pub(super) fn to_rgb(yuv: &DecodedYUV<'_>) -> RgbImage {
    let (width, height) = yuv.dimensions();
    let mut rgb = vec![0; width * height * 3];
    yuv.write_rgb8(&mut rgb);
    RgbImage::from_raw(width as u32, height as u32, rgb).expect("the buffer has the picture's size")
}

/// `picture` scaled and encoded as `output` asks.
fn encode(picture: &RgbImage, output: Output) -> Result<Vec<u8>, RenderError> {
    let (width, height) = output.size.of(picture.width(), picture.height());
    let scaled;
    let picture = if (width, height) == picture.dimensions() {
        picture
    } else {
        scaled = image::imageops::resize(picture, width, height, FilterType::Triangle);
        &scaled
    };
    let mut bytes = Vec::new();
    let (w, h, color) = (
        picture.width(),
        picture.height(),
        image::ExtendedColorType::Rgb8,
    );
    match output.format {
        Format::Jpeg { quality } => {
            JpegEncoder::new_with_quality(&mut bytes, quality).write_image(picture, w, h, color)?
        }
        Format::Png => PngEncoder::new(&mut bytes).write_image(picture, w, h, color)?,
    }
    Ok(bytes)
}

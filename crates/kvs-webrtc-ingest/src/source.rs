//! Where media comes from: files, pipes (live capture) and frames pushed by the application.
//!
//! File and pipe sources are read on a blocking thread each, a bounded number of frames ahead
//! (the reader waits when the queue is full), and paced by their timestamps. Pushed frames are
//! sent as they arrive.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kvs_media::annexb::AnnexBReader;
use kvs_media::mkv_reader::{FrameKind, MkvReader};
use kvs_media::ogg::OggOpusReader;
use kvs_media::{AudioCodec, MediaError};
use tokio::sync::{mpsc, watch};

use crate::error::{Error, ErrorKind};

/// Pictures read ahead of their time (a sixth of a second at 25 fps; pictures are the bulk of
/// a session's memory). The driver takes everything a reader has ready at once, so the reader
/// thread is woken once per read-ahead.
const VIDEO_READ_AHEAD: usize = 4;
/// Audio packets read ahead of their time: about a second of 20 ms packets (a few kilobytes),
/// so that the audio reader wakes about once a second rather than six times.
const AUDIO_READ_AHEAD: usize = 48;
/// Raw H.264 carries no timestamps; ffmpeg assumes 25 fps as well.
pub const DEFAULT_FPS: u32 = 25;

/// One H.264 access unit (a picture), Annex-B, with its presentation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    /// Annex-B bytes with start codes: the picture's NAL units (parameter sets before an IDR
    /// are added if missing).
    pub data: Vec<u8>,
    /// The presentation time, from any origin, increasing.
    pub timestamp: Duration,
}

/// A video frame on its way in, with what its reader learnt of it, so that no later step
/// splits it into NAL units again: whether it is a keyframe (an IDR) and whether it carries
/// parameter sets (which the sender caches for keyframes that lack them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Picture {
    pub(crate) data: Vec<u8>,
    pub(crate) timestamp: Duration,
    pub(crate) keyframe: bool,
    pub(crate) parameter_sets: bool,
}

impl Picture {
    /// A frame whose NAL units are read here (pushed frames, Matroska frames).
    pub(crate) fn of(frame: VideoFrame) -> Self {
        let (mut keyframe, mut parameter_sets) = (false, false);
        for unit in kvs_media::h264::NalUnits::new(&frame.data) {
            match kvs_media::h264::nal_type(unit) {
                kvs_media::h264::NAL_IDR => keyframe = true,
                kvs_media::h264::NAL_SPS | kvs_media::h264::NAL_PPS => parameter_sets = true,
                _ => {}
            }
        }
        Self {
            data: frame.data,
            timestamp: frame.timestamp,
            keyframe,
            parameter_sets,
        }
    }
}

/// One Opus packet with its presentation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioPacket {
    /// The Opus packet.
    pub data: Vec<u8>,
    /// The presentation time, on the same clock as the video's.
    pub timestamp: Duration,
}

/// What a source thread delivers.
#[derive(Debug)]
pub(crate) enum SourceItem<T> {
    Frame(T),
    /// The source failed; the error names it and says why.
    Failed(Error),
}

type BoxRead = Box<dyn Read + Send>;
/// Opens (or reopens, for looping) a reader whose timestamps start at the given offset.
type Opener<R> = Box<dyn FnMut(Duration) -> Result<R, Error> + Send>;

/// Where a source's bytes come from: a file (which a loop reads again) or a reader (read once).
enum Input {
    File(PathBuf),
    Reader(BoxRead, String),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Reader(_, name) => write!(f, "reader {name}"),
        }
    }
}

impl Input {
    /// The one opener of every kind of source: a file is opened again for each loop, a reader
    /// is handed out once (and cannot loop). `parse` turns the bytes into the track's reader;
    /// `what` ("video", "audio", "media") names a file in errors.
    fn opener<R: 'static>(
        self,
        what: &str,
        looping: bool,
        parse: impl Fn(BoxRead, Duration, &str) -> Result<R, Error> + Send + 'static,
    ) -> Result<(String, Opener<R>), Error> {
        match self {
            Self::File(path) => {
                let name = format!("the {what} file {}", path.display());
                let named = name.clone();
                let open: Opener<R> = Box::new(move |offset| {
                    let file = File::open(&path).map_err(|e| {
                        Error::new(
                            ErrorKind::InvalidInput,
                            format!("cannot open {}", path.display()),
                        )
                        .with_source(e)
                    })?;
                    parse(Box::new(file), offset, &named)
                });
                Ok((name, open))
            }
            Self::Reader(reader, name) => {
                if looping {
                    return Err(looping_needs_a_file(&name));
                }
                let mut reader = Some(reader);
                let named = name.clone();
                let open: Opener<R> = Box::new(move |offset| match reader.take() {
                    Some(r) => parse(r, offset, &named),
                    None => Err(looping_needs_a_file(&named)),
                });
                Ok((name, open))
            }
        }
    }
}

/// Where a track's frames come from: bytes to read, or frames the application pushes.
enum Origin<T> {
    Bytes(Input),
    Pushed(mpsc::Receiver<SourceItem<T>>),
}

impl<T> std::fmt::Debug for Origin<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(input) => input.fmt(f),
            Self::Pushed(_) => f.write_str("push"),
        }
    }
}

/// The video track's source. Build one with [`VideoSource::annex_b_file`],
/// [`VideoSource::annex_b_reader`] or [`VideoSource::push`].
#[derive(Debug)]
pub struct VideoSource {
    origin: Origin<Picture>,
    fps: u32,
    looping: bool,
    keyframes: Option<watch::Sender<u64>>,
}

impl VideoSource {
    /// An H.264 Annex-B file (`.h264`, as `ffmpeg -f h264` writes it).
    pub fn annex_b_file(path: impl AsRef<Path>) -> Self {
        Self::new(Origin::Bytes(Input::File(path.as_ref().to_owned())))
    }

    /// An H.264 Annex-B stream from a reader: a pipe or stdin for live capture. `name` is how
    /// errors refer to it.
    pub fn annex_b_reader(reader: impl Read + Send + 'static, name: impl Into<String>) -> Self {
        Self::new(Origin::Bytes(Input::Reader(Box::new(reader), name.into())))
    }

    /// Frames the application writes itself, and the writer to write them with. At most
    /// `capacity` frames wait; [`VideoWriter::write`] waits while the queue is full.
    pub fn push(capacity: usize) -> (Self, VideoWriter) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let (keyframes_tx, keyframes_rx) = watch::channel(0);
        let mut source = Self::new(Origin::Pushed(rx));
        source.keyframes = Some(keyframes_tx);
        (
            source,
            VideoWriter {
                frames: tx,
                keyframes: keyframes_rx,
            },
        )
    }

    /// The frame rate of a raw H.264 file or stream (default 25).
    pub fn fps(mut self, fps: u32) -> Self {
        self.fps = fps;
        self
    }

    /// Start the file over at its end (files only).
    pub fn looping(mut self, looping: bool) -> Self {
        self.looping = looping;
        self
    }

    fn new(origin: Origin<Picture>) -> Self {
        Self {
            origin,
            fps: DEFAULT_FPS,
            looping: false,
            keyframes: None,
        }
    }
}

/// The audio track's source ([`AudioCodec::INGESTED`]: Opus). Build one with
/// [`AudioSource::ogg_opus_file`], [`AudioSource::ogg_opus_reader`] or [`AudioSource::push`].
#[derive(Debug)]
pub struct AudioSource {
    origin: Origin<AudioPacket>,
    looping: bool,
}

impl AudioSource {
    /// An Ogg Opus file (`.opus`, as `ffmpeg -c:a libopus` writes it).
    pub fn ogg_opus_file(path: impl AsRef<Path>) -> Self {
        Self::new(Origin::Bytes(Input::File(path.as_ref().to_owned())))
    }

    /// An Ogg Opus stream from a reader: a pipe or stdin for live capture.
    pub fn ogg_opus_reader(reader: impl Read + Send + 'static, name: impl Into<String>) -> Self {
        Self::new(Origin::Bytes(Input::Reader(Box::new(reader), name.into())))
    }

    /// Packets the application writes itself, and the writer to write them with.
    pub fn push(capacity: usize) -> (Self, AudioWriter) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self::new(Origin::Pushed(rx)), AudioWriter { packets: tx })
    }

    /// Start the file over at its end (files only).
    pub fn looping(mut self, looping: bool) -> Self {
        self.looping = looping;
        self
    }

    fn new(origin: Origin<AudioPacket>) -> Self {
        Self {
            origin,
            looping: false,
        }
    }
}

/// Writes video frames into a running ingestion ([`VideoSource::push`]).
#[derive(Debug, Clone)]
pub struct VideoWriter {
    frames: mpsc::Sender<SourceItem<Picture>>,
    keyframes: watch::Receiver<u64>,
}

impl VideoWriter {
    /// Queue a frame; waits while the queue is full. Frames written while no session is
    /// streaming are dropped (and counted), so memory stays bounded whatever the network does.
    ///
    /// # Errors
    /// [`ErrorKind::GaveUp`] once the ingestion has stopped.
    pub async fn write(&self, frame: VideoFrame) -> Result<(), Error> {
        self.frames
            .send(SourceItem::Frame(Picture::of(frame)))
            .await
            .map_err(|_| Error::new(ErrorKind::GaveUp, "the ingestion has stopped"))
    }

    /// Counts the storage peer's keyframe requests: when it changes, encode an IDR next
    /// (frames are dropped until one arrives).
    pub fn keyframe_requests(&self) -> watch::Receiver<u64> {
        self.keyframes.clone()
    }
}

/// Writes Opus packets into a running ingestion ([`AudioSource::push`]).
#[derive(Debug, Clone)]
pub struct AudioWriter {
    packets: mpsc::Sender<SourceItem<AudioPacket>>,
}

impl AudioWriter {
    /// Queue a packet; waits while the queue is full.
    ///
    /// # Errors
    /// [`ErrorKind::GaveUp`] once the ingestion has stopped.
    pub async fn write(&self, packet: AudioPacket) -> Result<(), Error> {
        self.packets
            .send(SourceItem::Frame(packet))
            .await
            .map_err(|_| Error::new(ErrorKind::GaveUp, "the ingestion has stopped"))
    }
}

/// The video and audio sources a container opened.
pub(crate) type OpenedTracks = (
    Option<OpenedSource<Picture>>,
    Option<OpenedSource<AudioPacket>>,
);

/// A source ready to deliver frames.
#[derive(Debug)]
pub(crate) struct OpenedSource<T> {
    pub(crate) frames: mpsc::Receiver<SourceItem<T>>,
    /// Paced by timestamps (files and pipes) or sent on arrival (pushed).
    pub(crate) paced: bool,
    /// Keyframe requests go here (pushed video).
    pub(crate) keyframes: Option<watch::Sender<u64>>,
    /// The first frame, read to check the input before anything connects.
    pub(crate) first: Option<T>,
}

/// A track's frames as the driver takes them: several at a time (those already read), so that a
/// reader thread that is ahead is woken once per batch rather than once per frame.
#[derive(Debug)]
pub(crate) struct Feed<T> {
    source: OpenedSource<T>,
    ready: std::collections::VecDeque<SourceItem<T>>,
    taken: Vec<SourceItem<T>>,
    closed: bool,
}

impl<T> Feed<T> {
    pub(crate) fn new(source: OpenedSource<T>) -> Self {
        let batch = source.frames.max_capacity();
        Self {
            source,
            ready: std::collections::VecDeque::with_capacity(batch),
            taken: Vec::with_capacity(batch),
            closed: false,
        }
    }

    /// The source's settings and keyframe channel.
    pub(crate) fn source(&self) -> &OpenedSource<T> {
        &self.source
    }

    /// The next item without waiting: `Some(Some(item))`, `Some(None)` once the source has
    /// ended, or `None` when [`Feed::fill`] must wait for more.
    pub(crate) fn try_next(&mut self) -> Option<Option<SourceItem<T>>> {
        match self.ready.pop_front() {
            Some(item) => Some(Some(item)),
            None if self.closed => Some(None),
            None => None,
        }
    }

    /// Wait until items are ready (or the source ended). Cancel-safe.
    pub(crate) async fn fill(&mut self) {
        let batch = self.source.frames.max_capacity();
        if self.source.frames.recv_many(&mut self.taken, batch).await == 0 {
            self.closed = true;
        }
        self.ready.extend(self.taken.drain(..));
    }
}

trait FrameReader: Send {
    type Frame: Send + 'static;
    fn next_frame(&mut self) -> Result<Option<Self::Frame>, MediaError>;
    /// The time just after the last frame returned, where a loop continues.
    fn end_time(&self) -> Duration;
}

struct H264Reader {
    inner: AnnexBReader<BufReader<BoxRead>>,
    period: Duration,
    offset: Duration,
    last: Duration,
}

impl FrameReader for H264Reader {
    type Frame = Picture;
    fn next_frame(&mut self) -> Result<Option<Picture>, MediaError> {
        Ok(self.inner.next_access_unit()?.map(|au| {
            self.last = self.offset + au.timestamp;
            Picture {
                data: au.data,
                timestamp: self.last,
                keyframe: au.keyframe,
                parameter_sets: au.parameter_sets,
            }
        }))
    }
    fn end_time(&self) -> Duration {
        self.last + self.period
    }
}

struct OpusReader {
    inner: OggOpusReader<BufReader<BoxRead>>,
    offset: Duration,
    end: Duration,
}

impl FrameReader for OpusReader {
    type Frame = AudioPacket;
    fn next_frame(&mut self) -> Result<Option<AudioPacket>, MediaError> {
        Ok(self.inner.next_packet()?.map(|p| {
            let timestamp = self.offset + p.timestamp;
            self.end = timestamp + kvs_media::opus::samples_to_duration(p.samples);
            AudioPacket {
                data: p.data,
                timestamp,
            }
        }))
    }
    fn end_time(&self) -> Duration {
        self.end
    }
}

impl VideoSource {
    /// Check the input (read its first frame) and start reading. Blocking: call on a blocking
    /// thread.
    pub(crate) fn open(self) -> Result<OpenedSource<Picture>, Error> {
        let fps = self.fps;
        if fps == 0 || fps > 240 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("a frame rate of {fps} fps is not usable; give 1 to 240"),
            ));
        }
        match self.origin {
            Origin::Pushed(rx) => Ok(pushed(rx, self.keyframes)),
            Origin::Bytes(input) => {
                let (name, open) = input.opener("video", self.looping, move |r, offset, _| {
                    Ok(h264_reader(r, fps, offset))
                })?;
                start_reader(name, open, self.looping, VIDEO_READ_AHEAD)
            }
        }
    }
}

impl AudioSource {
    /// Check the input (read its headers and first packet) and start reading. Blocking.
    pub(crate) fn open(self) -> Result<OpenedSource<AudioPacket>, Error> {
        match self.origin {
            Origin::Pushed(rx) => Ok(pushed(rx, None)),
            Origin::Bytes(input) => {
                let (name, open) = input.opener("audio", self.looping, opus_reader)?;
                start_reader(name, open, self.looping, AUDIO_READ_AHEAD)
            }
        }
    }
}

fn h264_reader(input: BoxRead, fps: u32, offset: Duration) -> H264Reader {
    H264Reader {
        inner: AnnexBReader::new(BufReader::new(input), fps),
        period: Duration::from_secs(1) / fps,
        offset,
        last: offset,
    }
}

fn opus_reader(input: BoxRead, offset: Duration, name: &str) -> Result<OpusReader, Error> {
    let inner = OggOpusReader::new(BufReader::new(input)).map_err(|e| Error::media(name, e))?;
    Ok(OpusReader {
        inner,
        offset,
        end: offset,
    })
}

fn looping_needs_a_file(name: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("{name} cannot loop: only files can be read again"),
    )
}

fn pushed<T>(
    frames: mpsc::Receiver<SourceItem<T>>,
    keyframes: Option<watch::Sender<u64>>,
) -> OpenedSource<T> {
    OpenedSource {
        frames,
        paced: false,
        keyframes,
        first: None,
    }
}

/// A source read on a thread of its own (`name` is the thread's).
fn spawn_reader(name: &str, read: impl FnOnce() + Send + 'static) -> Result<(), Error> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(read)
        .map(drop)
        .map_err(|e| Error::new(ErrorKind::Io, "cannot start a reader thread").with_source(e))
}

/// Read the first frame now (so bad input fails before anything connects), then go on reading
/// on a thread of its own.
fn start_reader<R: FrameReader + 'static>(
    name: String,
    mut open: Opener<R>,
    looping: bool,
    read_ahead: usize,
) -> Result<OpenedSource<R::Frame>, Error> {
    let mut reader = open(Duration::ZERO)?;
    let first = reader
        .next_frame()
        .map_err(|e| Error::media(&name, e))?
        .ok_or_else(|| no_frames(&name))?;
    let (tx, frames) = mpsc::channel(read_ahead);
    spawn_reader("kvs-ingest-source", move || loop {
        let item = match reader.next_frame() {
            Ok(Some(frame)) => SourceItem::Frame(frame),
            Ok(None) if looping => match open(reader.end_time()) {
                Ok(again) => {
                    reader = again;
                    continue;
                }
                Err(e) => SourceItem::Failed(e),
            },
            Ok(None) => return,
            Err(e) => SourceItem::Failed(Error::media(&name, e)),
        };
        let failed = matches!(item, SourceItem::Failed(_));
        if tx.blocking_send(item).is_err() || failed {
            return;
        }
    })?;
    Ok(OpenedSource {
        frames,
        paced: true,
        keyframes: None,
        first: Some(first),
    })
}

fn no_frames(name: &str) -> Error {
    Error::new(ErrorKind::InvalidInput, format!("{name} holds no frames"))
}

/// Both tracks from one Matroska/WebM file or stream, as ffmpeg (`-f matroska`) or GStreamer
/// (`matroskamux`) write it: the first H.264 track and the first Opus track are sent, others
/// are ignored. Give it with [`IngestFluentBuilder::media`](crate::IngestFluentBuilder::media).
#[derive(Debug)]
pub struct ContainerSource {
    input: Input,
    looping: bool,
}

type Demuxer = MkvReader<BufReader<BoxRead>>;

/// What is read of a container before anything connects: the first frame of each track sent
/// (the video's tells the answer the H.264 profile), and the audio that came before the video.
struct FirstFrames {
    video: Option<Picture>,
    audio: AudioPacket,
    early_audio: Vec<AudioPacket>,
}

impl ContainerSource {
    /// A Matroska (`.mkv`) or WebM (`.webm`) file.
    pub fn matroska_file(path: impl AsRef<Path>) -> Self {
        Self {
            input: Input::File(path.as_ref().to_owned()),
            looping: false,
        }
    }

    /// A Matroska/WebM stream from a reader: a pipe or stdin for live capture.
    pub fn matroska_reader(reader: impl Read + Send + 'static, name: impl Into<String>) -> Self {
        Self {
            input: Input::Reader(Box::new(reader), name.into()),
            looping: false,
        }
    }

    /// Start the file over at its end (files only).
    pub fn looping(mut self, looping: bool) -> Self {
        self.looping = looping;
        self
    }

    /// Check the input (its tracks and first frames) and start reading both tracks: video only
    /// when `want_video` (a viewer sends none). Blocking.
    pub(crate) fn open(self, want_video: bool) -> Result<OpenedTracks, Error> {
        let looping = self.looping;
        let (name, mut open) = self.input.opener("media", looping, |r, _, name| {
            MkvReader::new(BufReader::new(r)).map_err(|e| Error::media(name, e))
        })?;
        let mut reader = open(Duration::ZERO)?;
        check_tracks(&reader, &name, want_video)?;
        let first = read_first_frames(&mut reader, &name, want_video)?;
        let (video_tx, video_rx) = mpsc::channel(VIDEO_READ_AHEAD);
        let (audio_tx, audio_rx) = mpsc::channel(AUDIO_READ_AHEAD);
        let demux = Demux {
            reader,
            open,
            name,
            looping,
            video: want_video.then_some(video_tx),
            audio: audio_tx,
        };
        let early_audio = first.early_audio;
        spawn_reader("kvs-ingest-mkv", move || demux.run(early_audio))?;
        let video = want_video.then(|| OpenedSource {
            frames: video_rx,
            paced: true,
            keyframes: None,
            first: first.video,
        });
        let audio = Some(OpenedSource {
            frames: audio_rx,
            paced: true,
            keyframes: None,
            first: Some(first.audio),
        });
        Ok((video, audio))
    }
}

/// The tracks a container must have: H.264 (unless `want_video` is false) and the ingested
/// audio codec; the message lists the tracks it has.
fn check_tracks(reader: &Demuxer, name: &str, want_video: bool) -> Result<(), Error> {
    let tracks = reader.tracks();
    let missing = |what: String| {
        let found: Vec<&str> = tracks.codecs.iter().map(|(_, c)| c.as_str()).collect();
        Error::new(
            ErrorKind::InvalidInput,
            format!(
                "{name} has no {what} track (its tracks: {})",
                found.join(", ")
            ),
        )
    };
    if want_video && tracks.video.is_none() {
        return Err(missing("H.264 video".into()));
    }
    if tracks.audio.is_none() {
        return Err(missing(format!("{} audio", AudioCodec::INGESTED)));
    }
    Ok(())
}

/// Read up to the first frame of each track that is sent, keeping the audio read meanwhile
/// (bounded: a file whose video starts too late is refused).
fn read_first_frames(
    reader: &mut Demuxer,
    name: &str,
    want_video: bool,
) -> Result<FirstFrames, Error> {
    let mut early_audio = Vec::new();
    let mut video = None;
    let mut audio = None;
    while (want_video && video.is_none()) || audio.is_none() {
        let frame = reader
            .next_frame()
            .map_err(|e| Error::media(name, e))?
            .ok_or_else(|| no_frames(name))?;
        match frame.kind {
            FrameKind::Video if want_video && video.is_none() => {
                video = Some(Picture::of(VideoFrame {
                    data: frame.data,
                    timestamp: frame.timestamp,
                }))
            }
            FrameKind::Video => {}
            FrameKind::Audio => {
                let packet = AudioPacket {
                    data: frame.data,
                    timestamp: frame.timestamp,
                };
                if audio.is_none() {
                    audio = Some(packet);
                } else if early_audio.len() < AUDIO_READ_AHEAD * 3 {
                    early_audio.push(packet);
                } else {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "{name}: no video frame among its first {} audio packets",
                            early_audio.len()
                        ),
                    ));
                }
            }
        }
    }
    Ok(FirstFrames {
        video,
        audio: audio.ok_or_else(|| no_frames(name))?,
        early_audio,
    })
}

/// The thread that splits a container into its two tracks.
struct Demux {
    reader: Demuxer,
    open: Opener<Demuxer>,
    name: String,
    looping: bool,
    /// `None` when the video is not sent (a viewer).
    video: Option<mpsc::Sender<SourceItem<Picture>>>,
    audio: mpsc::Sender<SourceItem<AudioPacket>>,
}

impl Demux {
    fn run(mut self, early_audio: Vec<AudioPacket>) {
        for packet in early_audio {
            if self.audio.blocking_send(SourceItem::Frame(packet)).is_err() {
                return;
            }
        }
        let mut offset = Duration::ZERO;
        let mut end = Duration::ZERO;
        loop {
            let frame = match self.reader.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) if self.looping => match (self.open)(end) {
                    Ok(again) => {
                        self.reader = again;
                        offset = end;
                        continue;
                    }
                    Err(e) => return self.fail(e),
                },
                Ok(None) => return,
                Err(e) => {
                    let error = Error::media(&self.name, e);
                    return self.fail(error);
                }
            };
            let timestamp = offset + frame.timestamp;
            // 40 ms past the last frame: where a loop continues.
            end = end.max(timestamp + Duration::from_millis(40));
            let sent = match (frame.kind, &self.video) {
                (FrameKind::Video, Some(video)) => video
                    .blocking_send(SourceItem::Frame(Picture::of(VideoFrame {
                        data: frame.data,
                        timestamp,
                    })))
                    .is_ok(),
                (FrameKind::Video, None) => true,
                (FrameKind::Audio, _) => self
                    .audio
                    .blocking_send(SourceItem::Frame(AudioPacket {
                        data: frame.data,
                        timestamp,
                    }))
                    .is_ok(),
            };
            if !sent {
                return;
            }
        }
    }

    /// A failure goes to a track that is read (a viewer reads no video).
    fn fail(&self, error: Error) {
        match &self.video {
            Some(video) => drop(video.blocking_send(SourceItem::Failed(error))),
            None => drop(self.audio.blocking_send(SourceItem::Failed(error))),
        }
    }
}

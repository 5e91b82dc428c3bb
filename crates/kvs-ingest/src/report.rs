//! How a running ingestion is shown: a live status line on a terminal, plain log lines
//! otherwise, or one JSON object per event with `--json`. Everything is written by the
//! [`Output`] thread, never by the task that follows the session.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use kvs_webrtc_ingest::{IngestEvent, IngestSession, Stats};
use serde_json::json;

use crate::output::{Output, Stream};

/// Where events go.
pub(crate) struct Reporter {
    json: bool,
    output: Output,
    started: Instant,
}

impl Reporter {
    pub(crate) fn new(json: bool) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            json,
            output: Output::start(json, bar),
            started: Instant::now(),
        }
    }

    /// Follow the session until it ends or `deadline` passes; then it is stopped.
    pub(crate) async fn follow(
        &mut self,
        session: &mut IngestSession,
        deadline: Option<Instant>,
    ) -> Result<(), ()> {
        self.follow_announcing(session, deadline, std::future::pending())
            .await
    }

    /// [`Reporter::follow`], printing the lines `announcement` gives when it is ready (among
    /// the events, above the status line).
    pub(crate) async fn follow_announcing(
        &mut self,
        session: &mut IngestSession,
        deadline: Option<Instant>,
        announcement: impl std::future::Future<Output = Vec<(Stream, String)>>,
    ) -> Result<(), ()> {
        tokio::pin!(announcement);
        let mut announced = false;
        let mut stats = session.watch_stats();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                event = session.next_event() => match event {
                    Some(event) => {
                        let stopped = matches!(event, IngestEvent::Stopped { .. });
                        self.event(&event);
                        if stopped {
                            return Ok(());
                        }
                    }
                    None => return Ok(()),
                },
                changed = stats.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let snapshot = stats.borrow_and_update().clone();
                    self.status(&snapshot);
                }
                lines = &mut announcement, if !announced => {
                    announced = true;
                    for (stream, line) in lines {
                        self.output.event(stream, line);
                    }
                }
                _ = &mut sleep => return Err(()),
                _ = tokio::signal::ctrl_c() => return Err(()),
            }
        }
    }

    fn event(&mut self, event: &IngestEvent) {
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.json {
            self.output
                .event(Stream::Stdout, event_json(event, elapsed).to_string());
            return;
        }
        let line = match event {
            IngestEvent::StateChanged(state) => format!("state: {}", state.as_str()),
            IngestEvent::Joining { reason, attempt } => {
                format!("joining the storage session (attempt {attempt}, {reason})")
            }
            IngestEvent::OfferAnswered { replaced_session } => format!(
                "offer answered{}",
                if *replaced_session {
                    " (replacing the previous session)"
                } else {
                    ""
                }
            ),
            IngestEvent::Connected { after_offer } => {
                format!("connected {} ms after the offer", after_offer.as_millis())
            }
            IngestEvent::FirstFrameSent(track) => format!("first {} frame sent", track.as_str()),
            IngestEvent::KeyframeRequested => "keyframe requested by the storage peer".into(),
            IngestEvent::SourceEnded(track) => format!("{} source ended", track.as_str()),
            IngestEvent::RelayAllocated {
                server,
                transport,
                relayed,
            } => format!("TURN relay {relayed} allocated on {server} (over {transport})"),
            IngestEvent::RelayFailed { server, reason } => {
                format!("TURN server {server} gave no relay: {reason}")
            }
            IngestEvent::Warning(w) => format!("warning: {w}"),
            IngestEvent::Stopped { reason } => format!("stopped: {reason}"),
            IngestEvent::EventsLost { count } => {
                format!("{count} events were lost: they were not read in time")
            }
            other => format!("{other:?}"),
        };
        self.output
            .event(Stream::Stderr, format!("[{elapsed:7.2}s] {line}"));
    }

    fn status(&mut self, stats: &Stats) {
        if !self.json {
            self.output.status(format!(
                "{} | {:.0}s | video {} fr {} kbit/s | audio {} fr {} kbit/s | re-joins {}",
                stats.state.as_str(),
                self.started.elapsed().as_secs_f64(),
                stats.video.frames_sent,
                stats.video.bitrate_bps / 1000,
                stats.audio.frames_sent,
                stats.audio.bitrate_bps / 1000,
                stats.rejoins,
            ));
        }
    }

    /// Event lines dropped because the output was not read fast enough.
    pub(crate) fn events_dropped(&self) -> u64 {
        self.output.dropped()
    }

    /// Write the summary lines (waiting for the reader: media has stopped) and stop the
    /// writer.
    pub(crate) fn finish(self, summary: Vec<(Stream, String)>) {
        self.output.finish(summary);
    }
}

fn event_json(event: &IngestEvent, elapsed: f64) -> serde_json::Value {
    let (kind, fields) = match event {
        IngestEvent::StateChanged(state) => ("state", json!({ "state": state.as_str() })),
        IngestEvent::Joining { reason, attempt } => (
            "joining",
            json!({ "reason": reason.to_string(), "attempt": attempt }),
        ),
        IngestEvent::OfferAnswered { replaced_session } => (
            "offer-answered",
            json!({ "replacedSession": replaced_session }),
        ),
        IngestEvent::Connected { after_offer } => (
            "connected",
            json!({ "afterOfferMs": after_offer.as_millis() as u64 }),
        ),
        IngestEvent::FirstFrameSent(track) => {
            ("first-frame-sent", json!({ "track": track.as_str() }))
        }
        IngestEvent::KeyframeRequested => ("keyframe-requested", json!({})),
        IngestEvent::SourceEnded(track) => ("source-ended", json!({ "track": track.as_str() })),
        IngestEvent::RelayAllocated {
            server,
            transport,
            relayed,
        } => (
            "relay-allocated",
            json!({ "server": server, "transport": transport, "relayed": relayed.to_string() }),
        ),
        IngestEvent::RelayFailed { server, reason } => (
            "relay-failed",
            json!({ "server": server, "reason": reason }),
        ),
        IngestEvent::Warning(w) => ("warning", json!({ "message": w })),
        IngestEvent::Stopped { reason } => ("stopped", json!({ "reason": reason })),
        IngestEvent::EventsLost { count } => ("events-lost", json!({ "count": count })),
        other => ("other", json!({ "debug": format!("{other:?}") })),
    };
    let mut value = json!({ "event": kind, "elapsedSeconds": (elapsed * 1000.0).round() / 1000.0 });
    if let (Some(object), serde_json::Value::Object(extra)) = (value.as_object_mut(), fields) {
        object.extend(extra);
    }
    value
}

/// The final statistics as JSON.
pub(crate) fn stats_json(stats: &Stats) -> serde_json::Value {
    let track = |t: &kvs_webrtc_ingest::TrackStats| {
        json!({
            "framesSent": t.frames_sent,
            "bytesSent": t.bytes_sent,
            "keyframesSent": t.keyframes_sent,
            "droppedNotConnected": t.dropped_not_connected,
            "droppedWaitingForKeyframe": t.dropped_waiting_for_keyframe,
            "droppedLate": t.dropped_late,
            "packetsSent": t.packets_sent,
            "nacksReceived": t.nacks_received,
            "keyframeRequests": t.keyframe_requests,
        })
    };
    json!({
        "state": stats.state.as_str(),
        "video": track(&stats.video),
        "audio": track(&stats.audio),
        "joins": stats.joins,
        "rejoins": stats.rejoins,
        "sessionsConnected": stats.sessions_connected,
        "rttMs": stats.rtt.map(|r| r.as_millis() as u64),
        "relayAllocations": stats.relay_allocations,
        "relayFailures": stats.relay_failures,
    })
}

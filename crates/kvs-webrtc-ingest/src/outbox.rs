//! The session's signaling messages (the answer, local candidates), sent by a task of their
//! own: the signaling client paces sends to the service's rates and waits when its outbound
//! queue is full, and that wait must never hold up media. Messages keep their order; beyond
//! [`CAPACITY`] waiting ones, a message is dropped with a warning rather than queued without
//! bound.

use std::future::Future;

use kvs_webrtc_signaling::{IceCandidate, Outgoing, SignalingSender};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use crate::event::{EventSink, IngestEvent};

/// Messages waiting for the signaling client; far more than a session produces (an answer and
/// a few candidates per offer).
const CAPACITY: usize = 1024;

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    Answer(String),
    Candidate(IceCandidate),
}

impl Message {
    fn what(&self) -> &'static str {
        match self {
            Self::Answer(_) => "the answer",
            Self::Candidate(_) => "a candidate",
        }
    }
}

/// Hands messages to the sending task; see the module docs.
#[derive(Debug)]
pub(crate) struct SignalingOutbox {
    messages: mpsc::Sender<Message>,
    events: EventSink,
}

impl SignalingOutbox {
    /// Start the task that sends with `sender`; failures are reported on `events` (counted as
    /// lost events when the application's queue is full).
    pub(crate) fn start(sender: SignalingSender, events: EventSink) -> Self {
        Self::start_with(events, move |message| {
            let sender = sender.clone();
            async move {
                let outgoing = match message {
                    Message::Answer(sdp) => Outgoing::answer(sdp),
                    Message::Candidate(candidate) => Outgoing::ice_candidate(&candidate),
                };
                let sent = match outgoing {
                    Ok(outgoing) => sender.send(outgoing).await.map(drop),
                    Err(e) => Err(e),
                };
                sent.map_err(|e| e.to_string())
            }
        })
    }

    /// [`SignalingOutbox::start`] over any way of sending (the tests' stands in for a full
    /// queue).
    fn start_with<F, Fut>(events: EventSink, send: F) -> Self
    where
        F: Fn(Message) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        let (messages, mut queue) = mpsc::channel::<Message>(CAPACITY);
        let warnings = events.clone();
        tokio::spawn(
            async move {
                while let Some(message) = queue.recv().await {
                    let is_answer = matches!(message, Message::Answer(_));
                    match send(message).await {
                        Ok(()) => {}
                        // A session without its answer cannot connect: say so.
                        Err(e) if is_answer => {
                            warn(&warnings, format!("the answer was not sent: {e}"))
                        }
                        Err(e) => tracing::debug!(error = %e, "a candidate was not sent"),
                    }
                }
            }
            .in_current_span(),
        );
        Self { messages, events }
    }

    /// Send an SDP answer.
    pub(crate) fn answer(&self, sdp: String) {
        self.queue(Message::Answer(sdp));
    }

    /// Send a local candidate (a `candidate:` line) for the m-line `mid`.
    pub(crate) fn candidate(&self, candidate: String, mid: String) {
        self.queue(Message::Candidate(IceCandidate {
            candidate,
            sdp_mid: Some(mid),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }));
    }

    fn queue(&self, message: Message) {
        let what = message.what();
        if self.messages.try_send(message).is_err() {
            warn(
                &self.events,
                format!("{what} was not sent: {CAPACITY} signaling messages are waiting"),
            );
        }
    }
}

/// A warning for the application (and the log); counted as lost when its queue is full.
fn warn(events: &EventSink, warning: String) {
    tracing::warn!("{warning}");
    events.send(IngestEvent::Warning(warning));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signaling client that never takes a message (its queue is full for good) holds up
    /// no caller: every call returns at once, and what does not fit is dropped with a warning.
    #[tokio::test]
    async fn a_stuck_signaling_client_holds_up_nothing_and_overflow_is_reported() {
        let (events, mut warnings) = mpsc::channel(8);
        let outbox =
            SignalingOutbox::start_with(EventSink::new(events), |_| std::future::pending());
        for i in 0..=CAPACITY + 1 {
            outbox.candidate(
                format!("candidate:{i} 1 udp 1 127.0.0.1 9 typ host"),
                "0".into(),
            );
        }
        let warning = warnings.try_recv().expect("the overflow is reported");
        assert_eq!(
            warning,
            IngestEvent::Warning(format!(
                "a candidate was not sent: {CAPACITY} signaling messages are waiting"
            ))
        );
    }

    #[tokio::test]
    async fn messages_leave_in_order_and_a_failed_answer_is_a_warning() {
        let (events, mut warnings) = mpsc::channel(8);
        let (sent_tx, mut sent) = mpsc::unbounded_channel();
        let outbox = SignalingOutbox::start_with(EventSink::new(events), move |message| {
            let sent_tx = sent_tx.clone();
            async move {
                let refused = matches!(&message, Message::Answer(sdp) if sdp == "refused");
                let _ = sent_tx.send(message);
                if refused {
                    Err("the signaling socket is reconnecting".to_owned())
                } else {
                    Ok(())
                }
            }
        });
        outbox.answer("v=0".into());
        outbox.candidate("candidate:1".into(), "0".into());
        outbox.answer("refused".into());
        let mut order = Vec::new();
        for _ in 0..3 {
            order.push(sent.recv().await.expect("sent"));
        }
        assert!(matches!(&order[0], Message::Answer(sdp) if sdp == "v=0"));
        assert!(matches!(&order[1], Message::Candidate(c) if c.candidate == "candidate:1"));
        assert_eq!(
            warnings.recv().await,
            Some(IngestEvent::Warning(
                "the answer was not sent: the signaling socket is reconnecting".into()
            ))
        );
    }

    /// Warnings that find the application's queue full are not lost silently: they are
    /// counted with the driver's events and reported as one `EventsLost`.
    #[tokio::test]
    async fn warnings_that_find_the_event_queue_full_are_counted() {
        let (events, mut received) = mpsc::channel(1);
        let sink = EventSink::new(events);
        let outbox = SignalingOutbox::start_with(sink.clone(), |_| std::future::pending());
        for i in 0..CAPACITY + 3 {
            outbox.candidate(format!("candidate:{i}"), "0".into());
        }
        // The first of the 3 overflow warnings fits; the other 2 are counted.
        assert!(matches!(received.try_recv(), Ok(IngestEvent::Warning(_))));
        assert!(received.try_recv().is_err());
        // The driver reports what its clone of the sink did not deliver.
        assert!(sink.report_lost());
        assert_eq!(
            received.try_recv().ok(),
            Some(IngestEvent::EventsLost { count: 2 })
        );
    }
}

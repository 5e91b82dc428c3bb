//! Faults armed through the inspection API, consumed by the next join or offer of a channel,
//! and the impairments of channels' storage-peer paths, which hold until cleared.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::impairment::ArmedImpairment;

/// Faults pending on one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelFaults {
    /// The next N offers are never sent.
    pub drop_offers: u32,
    /// The next offer is sent this much later than usual.
    pub delay_next_offer_ms: Option<u64>,
    /// The next N sessions send their ICE candidates before the offer.
    pub candidates_before_offer: u32,
    /// The next N answers are refused with STATUS_RESPONSE.
    pub reject_answers: u32,
    /// The next N JoinStorageSession(AsViewer) calls get ClientLimitExceededException.
    pub client_limit_joins: u32,
}

/// What one offer does, taken from the pending faults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OfferFaults {
    pub drop_offer: bool,
    pub extra_delay: Option<Duration>,
    pub candidates_first: bool,
    pub reject_answer: bool,
}

fn take(counter: &mut u32) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

/// All pending faults.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    channels: Mutex<HashMap<String, ChannelFaults>>,
    /// Per channel ARN: how its storage peers' paths are impaired (`IMPAIR`).
    impairments: Mutex<HashMap<String, ArmedImpairment>>,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ChannelFaults>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Change the faults of a channel.
    pub(crate) fn update(
        &self,
        channel_arn: &str,
        change: impl FnOnce(&mut ChannelFaults),
    ) -> ChannelFaults {
        let mut channels = self.lock();
        let entry = channels.entry(channel_arn.to_owned()).or_default();
        change(entry);
        entry.clone()
    }

    /// Consume the faults that apply to one offer.
    pub(crate) fn take_offer_faults(&self, channel_arn: &str) -> OfferFaults {
        let mut channels = self.lock();
        let Some(f) = channels.get_mut(channel_arn) else {
            return OfferFaults::default();
        };
        OfferFaults {
            drop_offer: take(&mut f.drop_offers),
            extra_delay: f.delay_next_offer_ms.take().map(Duration::from_millis),
            candidates_first: take(&mut f.candidates_before_offer),
            reject_answer: take(&mut f.reject_answers),
        }
    }

    /// Consume one armed ClientLimitExceeded, if any.
    pub(crate) fn take_client_limit(&self, channel_arn: &str) -> bool {
        self.lock()
            .get_mut(channel_arn)
            .is_some_and(|f| take(&mut f.client_limit_joins))
    }

    /// Pending faults of every channel.
    pub(crate) fn snapshot(&self) -> HashMap<String, ChannelFaults> {
        self.lock().clone()
    }

    /// Forget a channel's faults, its impairment included.
    pub(crate) fn clear(&self, channel_arn: &str) {
        self.lock().remove(channel_arn);
        self.clear_impairment(channel_arn);
    }

    fn lock_impairments(&self) -> std::sync::MutexGuard<'_, HashMap<String, ArmedImpairment>> {
        self.impairments.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Impair a channel's storage-peer paths until [`Faults::clear_impairment`].
    pub(crate) fn impair(&self, channel_arn: &str, armed: ArmedImpairment) {
        self.lock_impairments()
            .insert(channel_arn.to_owned(), armed);
    }

    /// Stop impairing a channel's storage-peer paths; whether they were.
    pub(crate) fn clear_impairment(&self, channel_arn: &str) -> bool {
        self.lock_impairments().remove(channel_arn).is_some()
    }

    /// How a channel's storage-peer paths are impaired now.
    pub(crate) fn impairment(&self, channel_arn: &str) -> Option<ArmedImpairment> {
        self.lock_impairments().get(channel_arn).copied()
    }

    /// Every impaired channel.
    pub(crate) fn impairments(&self) -> HashMap<String, ArmedImpairment> {
        self.lock_impairments().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_consumed_one_at_a_time() {
        let faults = Faults::default();
        faults.update("c", |f| {
            f.drop_offers = 2;
            f.delay_next_offer_ms = Some(7000);
        });
        let first = faults.take_offer_faults("c");
        assert!(first.drop_offer);
        assert_eq!(first.extra_delay, Some(Duration::from_secs(7)));
        let second = faults.take_offer_faults("c");
        assert!(second.drop_offer && second.extra_delay.is_none());
        assert_eq!(faults.take_offer_faults("c"), OfferFaults::default());
        assert_eq!(faults.take_offer_faults("other"), OfferFaults::default());
    }
}

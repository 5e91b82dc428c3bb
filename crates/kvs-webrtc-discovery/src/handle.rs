//! What every clone of a [`Client`](crate::Client) shares: the configuration, the control-plane
//! client and the two caches, with their keys. The operations take it; the client hands it out.

use std::sync::Arc;

use crate::cache::ExpiringCache;
use crate::config::Config;
use crate::input::{ChannelArn, ChannelId, Role};
use crate::output::{DiscoveryData, IceServers};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EndpointKey {
    pub(crate) channel: ChannelId,
    pub(crate) role: Role,
    pub(crate) storage: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct IceKey {
    pub(crate) channel: ChannelArn,
    pub(crate) client_id: Option<String>,
}

pub(crate) struct Handle {
    pub(crate) config: Config,
    pub(crate) control_plane: aws_sdk_kinesisvideo::Client,
    pub(crate) endpoints: ExpiringCache<EndpointKey, Arc<DiscoveryData>>,
    pub(crate) ice_servers: ExpiringCache<IceKey, IceServers>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Handle {
    pub(crate) fn now(&self) -> std::time::SystemTime {
        self.config.time_source.now()
    }

    /// Drop every entry for `channel`, matching a name against the ARN's name and vice versa.
    pub(crate) fn invalidate_channel(&self, channel: &ChannelId) {
        let name = match channel {
            ChannelId::Name(name) => name.as_str(),
            ChannelId::Arn(arn) => arn.name(),
        };
        let arn = channel.arn();
        self.endpoints.invalidate_where(|key| match &key.channel {
            ChannelId::Name(n) => n == name,
            ChannelId::Arn(a) => Some(a) == arn || (arn.is_none() && a.name() == name),
        });
    }
}

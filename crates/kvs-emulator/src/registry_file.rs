//! The control plane's resources on disk, so that `kvs-emulator serve` keeps its channels and
//! streams (and so every stored fragment stays readable through the AWS APIs) across a restart
//! in the same data directory: one JSON document, `registry.json`, rewritten after every
//! change through a temporary file that is synced and renamed over it, so a crash leaves the
//! previous or the new document, never half of one.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, ErrorKind};
use crate::registry::{Channel, Stream};

/// The format of the document; a newer emulator may read older ones.
const FORMAT: u32 = 1;

/// What the file holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Resources {
    format: u32,
    /// Every channel.
    pub channels: Vec<Channel>,
    /// Every stream.
    pub streams: Vec<Stream>,
}

impl Resources {
    /// A document of these resources.
    pub(crate) fn new(channels: Vec<Channel>, streams: Vec<Stream>) -> Self {
        Self {
            format: FORMAT,
            channels,
            streams,
        }
    }
}

/// The resources kept at `path`; none when there is no file yet.
///
/// # Errors
/// The file cannot be read, is not such a document, or is of a newer format: each says how to
/// go on (move the file away to start with no resources).
pub(crate) fn load(path: &Path) -> Result<Resources, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resources::default()),
        Err(e) => {
            return Err(Error::io(
                ErrorKind::Resources,
                format!(
                    "cannot read the emulator's resources from {}",
                    path.display()
                ),
                e,
            ))
        }
    };
    let resources: Resources = serde_json::from_str(&text).map_err(|e| {
        Error::with_source(
            ErrorKind::Resources,
            format!(
                "{} does not hold the emulator's channels and streams; move it away to start \
                 with none",
                path.display()
            ),
            e,
        )
    })?;
    if resources.format > FORMAT {
        return Err(Error::new(
            ErrorKind::Resources,
            format!(
                "{} was written by a newer emulator (format {}, this one reads {FORMAT}); use \
                 that emulator or move the file away to start with no channels and streams",
                path.display(),
                resources.format
            ),
        ));
    }
    Ok(resources)
}

/// Replaces the document at `path` with `resources`, atomically.
pub(crate) fn save(path: &Path, resources: &Resources) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(resources).map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&json)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    // The rename itself survives a crash once the directory is synced.
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use std::time::SystemTime;

    #[test]
    fn resources_survive_a_reopen_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        let mut registry = Registry::open(Some(path.clone())).unwrap();
        assert!(registry.channels().is_empty());
        let now = SystemTime::now();
        let channel = registry
            .create_channel("us-west-2", "111122223333", "cam", "SINGLE_MASTER", 60, now)
            .unwrap();
        let stream = registry
            .create_stream(
                "us-west-2",
                "111122223333",
                "cam-stream",
                None,
                None,
                None,
                24,
                now,
            )
            .unwrap();
        registry
            .update_media_storage(&channel.arn, Some(&stream.arn), true, 100)
            .unwrap();
        drop(registry);

        let reopened = Registry::open(Some(path.clone())).unwrap();
        let channels = reopened.channels();
        assert_eq!(channels.len(), 1);
        assert_eq!(channels[0].arn, channel.arn);
        assert_eq!(channels[0].storage_stream(), Some(stream.arn.as_str()));
        assert_eq!(reopened.streams()[0].arn, stream.arn);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_file_that_is_not_the_document_or_is_newer_is_refused_with_a_way_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.json");
        std::fs::write(&path, "{ not json").unwrap();
        let e = Registry::open(Some(path.clone())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Resources);
        assert!(e.to_string().contains("move it away"), "{e}");

        std::fs::write(&path, r#"{"format": 99, "channels": [], "streams": []}"#).unwrap();
        let e = Registry::open(Some(path)).unwrap_err();
        assert!(e.to_string().contains("newer emulator (format 99"), "{e}");
    }
}

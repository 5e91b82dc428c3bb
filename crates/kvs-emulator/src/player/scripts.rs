//! The player libraries the player page runs: hls.js and dash.js, npm packages at pinned
//! versions, never copied into this repository. The emulator serves them from its own origin
//! (`/_emulator/v1/player/hls.js`, `/_emulator/v1/player/dash.js`), so the page works in a
//! browser that reaches only the emulator, taken either
//! - from the npm registry ([`PlayerScripts::NpmRegistry`], the default): the package's tarball,
//!   fetched once per process on first use, checked against the `sha512` integrity that
//!   `package-lock.json` pins (`crates/kvs-emulator/player/package-lock.json`, which a test
//!   compares with [`PACKAGES`]), the one file taken out of it and kept in memory; or
//! - from a `node_modules` directory ([`PlayerScripts::Directory`]), for machines without the
//!   registry: `npm ci` in `crates/kvs-emulator/player` makes one (`cargo xtask test` does).
//!
//! The tarball is read with `flate2` and `tar` and fetched with `ureq` (blocking, so on a
//! blocking thread), the crates `cargo xtask` already uses for the same job.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use bytes::Bytes;
use sha2::Digest as _;

/// Where the player page's libraries come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayerScripts {
    /// Fetched from this npm registry (default `https://registry.npmjs.org`) on first use and
    /// checked against the pinned integrity.
    NpmRegistry(String),
    /// Read from this `node_modules` directory (`<dir>/hls.js/dist/hls.min.js`, …).
    Directory(PathBuf),
}

impl Default for PlayerScripts {
    fn default() -> Self {
        Self::NpmRegistry(NPM_REGISTRY.to_owned())
    }
}

/// The public npm registry.
pub const NPM_REGISTRY: &str = "https://registry.npmjs.org";

/// One pinned npm package and the file of it the page loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Package {
    /// The name the page asks for under `/_emulator/v1/player/`.
    pub served_as: &'static str,
    /// The npm package.
    pub name: &'static str,
    /// The exact version (as in `player/package-lock.json`).
    pub version: &'static str,
    /// The tarball's subresource integrity (as in `player/package-lock.json`).
    pub integrity: &'static str,
    /// The file inside the package.
    pub file: &'static str,
}

/// hls.js and dash.js, pinned.
pub(crate) const PACKAGES: [Package; 2] = [
    Package {
        served_as: "hls.js",
        name: "hls.js",
        version: "1.7.4",
        integrity: "sha512-3GlxGdPvT2YHvQYOt+yOzT/DEior/qJVNIylHA77kgeoBTdQQqi70GwefNEUmHQeNGyjC8U62+bruqW/Tpm+tg==",
        file: "dist/hls.min.js",
    },
    Package {
        served_as: "dash.js",
        name: "dashjs",
        version: "5.2.1",
        integrity: "sha512-axcJmLeJCTJMLUfQRErUJB1KOiU5iHF+DMLBc3FKeox1HPYtGUQlC6Xm5Mm6vhBUR3CHHLIPOqw0JDIqMtP+Dw==",
        file: "dist/modern/umd/dash.all.min.js",
    },
];

/// The package served as `name`, if any.
pub(crate) fn package(served_as: &str) -> Option<Package> {
    PACKAGES.into_iter().find(|p| p.served_as == served_as)
}

/// The largest tarball read (hls.js 1.7.4 is about 4 MB, dashjs 5.2.1 about 9 MB).
const MAX_TARBALL_BYTES: u64 = 64 << 20;

/// Why a library cannot be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScriptError {
    #[error("cannot fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{url} is not the pinned package: its sha512 differs from {integrity}")]
    Integrity {
        url: String,
        integrity: &'static str,
    },
    #[error("cannot read the package tarball {url}: {reason}")]
    Tarball { url: String, reason: String },
    #[error("cannot read {path} ({reason}); run `npm ci` in crates/kvs-emulator/player, or serve without a scripts directory to fetch from npm")]
    Directory { path: PathBuf, reason: String },
}

/// The libraries fetched so far, by name; a failure is not kept (the next request tries again).
#[derive(Debug, Default)]
pub(crate) struct ScriptCache {
    fetched: Mutex<Vec<(&'static str, Bytes)>>,
}

impl ScriptCache {
    /// `package`'s file from `source`, fetched on first use. Blocking: call it off the runtime.
    /// The cache stays locked during a fetch, so pages opened at once download it once.
    pub(crate) fn get(
        &self,
        source: &PlayerScripts,
        package: Package,
    ) -> Result<Bytes, ScriptError> {
        let mut fetched = self.fetched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, bytes)) = fetched.iter().find(|(name, _)| *name == package.served_as) {
            return Ok(bytes.clone());
        }
        let bytes = match source {
            PlayerScripts::Directory(dir) => from_directory(dir, package)?,
            PlayerScripts::NpmRegistry(registry) => {
                let url = tarball_url(registry, package);
                tracing::info!(%url, "fetching a player library from npm");
                let tarball = fetch(&url)?;
                file_from_tarball(&url, &tarball, package)?
            }
        };
        fetched.push((package.served_as, bytes.clone()));
        Ok(bytes)
    }
}

fn from_directory(dir: &Path, package: Package) -> Result<Bytes, ScriptError> {
    let path = dir.join(package.name).join(package.file);
    std::fs::read(&path)
        .map(Bytes::from)
        .map_err(|e| ScriptError::Directory {
            path,
            reason: e.to_string(),
        })
}

/// `<registry>/<name>/-/<name>-<version>.tgz`, npm's tarball URL of an unscoped package.
pub(crate) fn tarball_url(registry: &str, package: Package) -> String {
    format!(
        "{}/{name}/-/{name}-{version}.tgz",
        registry.trim_end_matches('/'),
        name = package.name,
        version = package.version
    )
}

fn fetch(url: &str) -> Result<Vec<u8>, ScriptError> {
    let failed = |reason: String| ScriptError::Fetch {
        url: url.to_owned(),
        reason,
    };
    let config = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .timeout_connect(Some(std::time::Duration::from_secs(15)))
        .timeout_global(Some(std::time::Duration::from_secs(120)))
        .build();
    let mut response = ureq::Agent::new_with_config(config)
        .get(url)
        .call()
        .map_err(|e| failed(e.to_string()))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_TARBALL_BYTES)
        .read_to_vec()
        .map_err(|e| failed(e.to_string()))
}

/// The subresource integrity (`sha512-<base64>`) of `bytes`.
pub(crate) fn integrity_of(bytes: &[u8]) -> String {
    format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(bytes))
    )
}

/// `package/<file>` out of a gzipped npm tarball whose integrity is the pinned one.
pub(crate) fn file_from_tarball(
    url: &str,
    tarball: &[u8],
    package: Package,
) -> Result<Bytes, ScriptError> {
    if integrity_of(tarball) != package.integrity {
        return Err(ScriptError::Integrity {
            url: url.to_owned(),
            integrity: package.integrity,
        });
    }
    let bad = |reason: String| ScriptError::Tarball {
        url: url.to_owned(),
        reason,
    };
    let wanted = format!("package/{}", package.file);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?;
        if path.to_str() == Some(wanted.as_str()) {
            let mut file = Vec::new();
            entry
                .read_to_end(&mut file)
                .map_err(|e| bad(e.to_string()))?;
            return Ok(Bytes::from(file));
        }
    }
    Err(bad(format!("it has no {wanted}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    /// A package pinned to `tarball`'s integrity (leaked: the pins are `'static`).
    fn pinned_to(tarball: &[u8]) -> Package {
        Package {
            integrity: Box::leak(integrity_of(tarball).into_boxed_str()),
            ..PACKAGES[0]
        }
    }

    #[test]
    fn the_pinned_file_is_taken_out_of_a_tarball_with_the_pinned_integrity() {
        let tgz = tarball(&[
            ("package/package.json", b"{}"),
            ("package/dist/hls.min.js", b"var Hls = 1;"),
        ]);
        let got = file_from_tarball("u", &tgz, pinned_to(&tgz)).unwrap();
        assert_eq!(&got[..], b"var Hls = 1;");
    }

    #[test]
    fn a_tarball_of_another_integrity_is_refused() {
        let tgz = tarball(&[("package/dist/hls.min.js", b"var Hls = 1;")]);
        let other = tarball(&[("package/dist/hls.min.js", b"var Hls = 2;")]);
        let err = file_from_tarball("u", &other, pinned_to(&tgz)).unwrap_err();
        assert!(matches!(err, ScriptError::Integrity { .. }), "{err}");
    }

    #[test]
    fn a_tarball_without_the_file_says_which_file_is_missing() {
        let tgz = tarball(&[("package/dist/other.js", b"x")]);
        let err = file_from_tarball("u", &tgz, pinned_to(&tgz)).unwrap_err();
        assert!(err.to_string().contains("package/dist/hls.min.js"), "{err}");
    }

    #[test]
    fn tarball_urls_follow_the_registry_layout() {
        assert_eq!(
            tarball_url("https://registry.npmjs.org/", PACKAGES[1]),
            "https://registry.npmjs.org/dashjs/-/dashjs-5.2.1.tgz"
        );
    }

    /// The pins are the versions and integrities `npm ci` installs for the tests.
    #[test]
    fn the_pins_match_the_lock_file() {
        let lock: serde_json::Value =
            serde_json::from_str(include_str!("../../player/package-lock.json")).unwrap();
        for package in PACKAGES {
            let entry = &lock["packages"][format!("node_modules/{}", package.name)];
            assert_eq!(entry["version"], package.version, "{}", package.name);
            assert_eq!(entry["integrity"], package.integrity, "{}", package.name);
        }
    }

    #[test]
    fn a_directory_without_the_package_says_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = ScriptCache::default()
            .get(&PlayerScripts::Directory(dir.path().into()), PACKAGES[0])
            .unwrap_err();
        assert!(err.to_string().contains("npm ci"), "{err}");
    }
}

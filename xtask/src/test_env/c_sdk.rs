//! The AWS KVS WebRTC C SDK's master sample, the reference storage-ingestion client that
//! `crates/kvs-emulator/tests/c_sdk_master.rs` runs against `kvs-emulator serve --port 443`.
//!
//! Built offline from the pinned sources in `../shared/vendor/kvs-webrtc-sdk-c/` (or
//! `$KVS_C_SDK_VENDOR`) with the recipe of `../shared/docs/kvs-webrtc-sdk-c-interop.md`:
//! libwebsockets 4.3.5, producer-c 1.5.4 with pic 1.2.0 in-tree, then the SDK and its sample.
//! Applied patches: the sample's control-plane URL from `KVS_CONTROL_PLANE_URL` (0001), the
//! build from the subset (0003) and producer-c's offline pic (producer-c-0001); **not** the
//! explicit-port patch (0002): the emulator serves every endpoint on port 443 as AWS does.
//!
//! Once per clean build: the result stays under `target/c-sdk/`, stamped with the SHA-256 of
//! the archives and patches it was built from, and is rebuilt only when they change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};

use super::{apt_install, is_root, run_quiet};
use crate::lock::sha256_hex;
use crate::project::Project;
use crate::toolchain::which;

/// The archives, unpacked side by side.
const ARCHIVES: &[&str] = &[
    "webrtc-sdk-c-187acf01b-subset.tar.gz",
    "producer-c-v1.5.4-subset.tar.gz",
    "pic-v1.2.0.tar.gz",
    "libwebsockets-v4.3.5-subset.tar.gz",
];

/// The patches applied, and the tree each applies to (0002, the explicit port, is left out).
const PATCHES: &[(&str, &str)] = &[
    (
        "0001-samples-control-plane-url-from-env.patch",
        "amazon-kinesis-video-streams-webrtc-sdk-c",
    ),
    (
        "0003-cmake-build-samples-from-subset.patch",
        "amazon-kinesis-video-streams-webrtc-sdk-c",
    ),
    (
        "producer-c-0001-no-pic-clone.patch",
        "amazon-kinesis-video-streams-producer-c",
    ),
];

/// Raised when the recipe below changes, so that a cached build is redone.
const RECIPE_VERSION: &str = "1";

/// Debian packages the build needs (the interop notes' list, plus the tools they assume).
const PACKAGES: &[&str] = &[
    "cmake",
    "g++",
    "make",
    "patch",
    "pkg-config",
    "libssl-dev",
    "libsrtp2-dev",
    "libusrsctp-dev",
    "libcurl4-openssl-dev",
];

/// The built sample, `kvsWebrtcClientMaster`, with its sample frames
/// (`h264SampleFrames/`, `opusSampleFrames/`) beside it.
pub fn ensure(project: &Project) -> anyhow::Result<PathBuf> {
    let vendor = vendor_dir(project)?;
    let work = project.root().join("target/c-sdk");
    let binary = work.join("build/sdk/samples/kvsWebrtcClientMaster");
    let stamp_file = work.join("stamp.txt");
    let stamp = stamp(&vendor)?;
    if binary.is_file() && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s == stamp) {
        println!(
            "test-env: C SDK master sample present ({})",
            binary.display()
        );
        return Ok(binary);
    }
    ensure_packages()?;
    println!(
        "test-env: building the C SDK's master sample from {} (about a minute)",
        vendor.display()
    );
    let started = Instant::now();
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot remove {}", work.display()))?;
    }
    build(&vendor, &work)?;
    if !binary.is_file() {
        bail!("the C SDK build ended without {}", binary.display());
    }
    std::fs::write(&stamp_file, stamp)
        .with_context(|| format!("cannot write {}", stamp_file.display()))?;
    println!(
        "test-env: C SDK master sample built in {:.0} s ({})",
        started.elapsed().as_secs_f64(),
        binary.display()
    );
    Ok(binary)
}

fn vendor_dir(project: &Project) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("KVS_C_SDK_VENDOR").filter(|p| !p.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => project.root().join("../shared/vendor/kvs-webrtc-sdk-c"),
    };
    if !dir.join("patches").is_dir() {
        bail!(
            "the C SDK interop test needs the vendored C SDK sources: {} has no patches/ \
             (set KVS_C_SDK_VENDOR to a copy of shared/vendor/kvs-webrtc-sdk-c)",
            dir.display()
        );
    }
    Ok(dir)
}

/// SHA-256 over the recipe version and every input's name and content.
fn stamp(vendor: &Path) -> anyhow::Result<String> {
    let mut all = format!("recipe {RECIPE_VERSION}\n").into_bytes();
    let inputs = ARCHIVES
        .iter()
        .map(|a| vendor.join(a))
        .chain(PATCHES.iter().map(|(p, _)| vendor.join("patches").join(p)));
    for input in inputs {
        let bytes =
            std::fs::read(&input).with_context(|| format!("cannot read {}", input.display()))?;
        all.extend_from_slice(format!("{} {}\n", input.display(), sha256_hex(&bytes)).as_bytes());
    }
    Ok(sha256_hex(&all))
}

/// Installs missing Debian packages as root; otherwise names them.
fn ensure_packages() -> anyhow::Result<()> {
    let installed = |package: &str| {
        Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", package])
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
    };
    if which("dpkg-query").is_none() {
        // Not Debian: the build says what it misses.
        return Ok(());
    }
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() || which("apt-get").is_none() {
        bail!(
            "building the C SDK needs {}; install them with `sudo apt-get install -y {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    apt_install(&missing)
}

/// The interop notes' recipe, in `work` (`src/`, `build/`, `prefix/`).
fn build(vendor: &Path, work: &Path) -> anyhow::Result<()> {
    let src = work.join("src");
    let build = work.join("build");
    let prefix = work.join("prefix");
    for dir in [&src, &build, &prefix] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for archive in ARCHIVES {
        let path = vendor.join(archive);
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(&src)
            .with_context(|| format!("cannot unpack {}", path.display()))?;
    }
    for (patch, tree) in PATCHES {
        let path = vendor.join("patches").join(patch);
        let input = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        run_quiet(
            Command::new("patch")
                .args(["-p1", "--quiet"])
                .current_dir(src.join(tree))
                .stdin(input),
            &format!("patch -p1 < {patch}"),
        )?;
    }
    // producer-c builds pic in-tree from dependency/libkvspic/kvspic-src (its patch clones
    // nothing).
    let pic = src.join("amazon-kinesis-video-streams-producer-c/dependency/libkvspic/kvspic-src");
    copy_dir(&src.join("amazon-kinesis-video-streams-pic"), &pic)?;

    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .to_string();
    let pkg_config_path = prefix.join("lib/pkgconfig");
    let prefix_arg = format!("-DCMAKE_INSTALL_PREFIX={}", prefix.display());
    let steps: [(&str, &str, Vec<String>, &[&str]); 3] = [
        (
            "lws",
            "libwebsockets",
            [
                "-DLWS_WITH_HTTP2=1",
                "-DLWS_WITHOUT_SERVER=1",
                "-DLWS_WITH_STATIC=1",
                "-DLWS_WITH_SHARED=1",
                "-DLWS_WITH_MBEDTLS=OFF",
                "-DLWS_WITH_ZLIB=0",
                "-DLWS_HAVE_EVENTFD=0",
                "-DLWS_WITHOUT_TESTAPPS=1",
                "-DLWS_WITH_MINIMAL_EXAMPLES=0",
                "-DLWS_STATIC_PIC=1",
                "-DDISABLE_WERROR=ON",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([prefix_arg.clone()])
            .collect(),
            &["install"],
        ),
        (
            "producer-c",
            "amazon-kinesis-video-streams-producer-c",
            [
                "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_COMMON_LWS=ON",
                "-DBUILD_COMMON_CURL=OFF",
                "-DBUILD_DEPENDENCIES=OFF",
                "-DUSE_OPENSSL=ON",
                "-DCMAKE_C_FLAGS=-D_GNU_SOURCE",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([prefix_arg.clone()])
            .collect(),
            &["install"],
        ),
        (
            "sdk",
            "amazon-kinesis-video-streams-webrtc-sdk-c",
            [
                "-DCMAKE_BUILD_TYPE=Release",
                "-DBUILD_DEPENDENCIES=OFF",
                "-DUSE_OPENSSL=ON",
                "-DBUILD_SAMPLE=ON",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("-DOPEN_SRC_INSTALL_PREFIX={}", prefix.display())])
            .collect(),
            &["kvsWebrtcClientMaster"],
        ),
    ];
    for (name, tree, options, targets) in steps {
        let dir = build.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        println!("test-env: C SDK: {name}");
        run_quiet(
            Command::new("cmake")
                .arg(src.join(tree))
                .args(&options)
                .current_dir(&dir)
                .env("PKG_CONFIG_PATH", &pkg_config_path),
            &format!("cmake ({name})"),
        )?;
        run_quiet(
            Command::new("make")
                .args(["-j", &jobs])
                .args(targets.iter().copied())
                .current_dir(&dir)
                .env("PKG_CONFIG_PATH", &pkg_config_path),
            &format!("make ({name})"),
        )?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("cannot copy to {}", target.display()))?;
        }
    }
    Ok(())
}

//! What `/proc` says of a process: its resident memory and its open descriptors.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Resident memory in bytes (`VmRSS`).
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Open file descriptors.
pub(crate) fn descriptors(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Open descriptors by kind: `udp`, `tcp`, `unix` sockets (by the process's `/proc/PID/net`
/// tables), `pipe`, `eventfd`, `eventpoll`, `timerfd`, ..., and files by their directory.
pub(crate) fn descriptor_kinds(pid: u32) -> BTreeMap<String, usize> {
    let mut kinds = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return kinds;
    };
    let sockets = socket_protocols(pid);
    for entry in entries.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        let kind = if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
        {
            sockets
                .get(inode)
                .map_or("socket (other)", |p| *p)
                .to_owned()
        } else if let Some(anon) = target.strip_prefix("anon_inode:") {
            anon.trim_matches(|c| c == '[' || c == ']').to_owned()
        } else if target.starts_with("pipe:") {
            "pipe".to_owned()
        } else {
            let dir = Path::new(&*target)
                .parent()
                .map_or_else(|| target.to_string(), |d| d.to_string_lossy().into_owned());
            format!("file in {dir}")
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// Socket inodes of `pid`'s network namespace, with their protocol.
fn socket_protocols(pid: u32) -> HashMap<String, &'static str> {
    let mut protocols = HashMap::new();
    for (table, protocol, inode_column) in [
        ("udp", "udp", 9),
        ("udp6", "udp", 9),
        ("tcp", "tcp", 9),
        ("tcp6", "tcp", 9),
        ("unix", "unix", 6),
    ] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            if let Some(inode) = line.split_whitespace().nth(inode_column) {
                protocols.insert(inode.to_owned(), protocol);
            }
        }
    }
    protocols
}

/// The kinds whose count changed from `start` to `end`, as `kind: start -> end`.
pub(crate) fn kind_changes(
    start: &BTreeMap<String, usize>,
    end: &BTreeMap<String, usize>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<_> = start.keys().chain(end.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (
                start.get(k).copied().unwrap_or(0),
                end.get(k).copied().unwrap_or(0),
            );
            (a != b).then(|| format!("{k}: {a} -> {b}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both tests count this process's descriptors: one at a time (the test harness runs
    /// tests on parallel threads, and stop 32's CI saw one test's socket in the other's count).
    static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn descriptors_are_told_apart_by_kind() {
        let _alone = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
        let me = std::process::id();
        let before = descriptor_kinds(me);
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let after = descriptor_kinds(me);
        let changes = kind_changes(&before, &after);
        let count = |m: &BTreeMap<String, usize>, k: &str| m.get(k).copied().unwrap_or(0);
        assert_eq!(
            count(&after, "udp"),
            count(&before, "udp") + 1,
            "{changes:?}"
        );
        assert_eq!(
            count(&after, "tcp"),
            count(&before, "tcp") + 1,
            "{changes:?}"
        );
        assert!(
            changes.iter().any(|c| c.starts_with("file in /proc/")),
            "{changes:?}"
        );
        drop((udp, tcp, file));
        assert!(kind_changes(&before, &descriptor_kinds(me)).is_empty());
    }

    #[test]
    fn this_process_has_memory_and_descriptors() {
        let _alone = COUNTING.lock().unwrap_or_else(|e| e.into_inner());
        let me = std::process::id();
        assert!(rss_bytes(me).is_some_and(|b| b > 1 << 20));
        let before = descriptors(me).unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(descriptors(me), Some(before + 1));
        drop(file);
        assert_eq!(descriptors(me), Some(before));
    }
}

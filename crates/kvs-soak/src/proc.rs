//! What `/proc` says of a process: its resident memory and its open descriptors.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory_and_descriptors() {
        let me = std::process::id();
        assert!(rss_bytes(me).is_some_and(|b| b > 1 << 20));
        let before = descriptors(me).unwrap();
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert_eq!(descriptors(me), Some(before + 1));
        drop(file);
        assert_eq!(descriptors(me), Some(before));
    }
}

//! Whether a model's weights fit before any is loaded: a load that cannot fit fails with
//! `out_of_memory` instead of being killed by the kernel halfway through.

use crate::error::{bail, Result};
use crate::linear::Storage;

/// Fails when `needed` bytes of weights exceed `limit` (or, without one, the memory the
/// system has available now).
pub fn check(needed: u64, limit: Option<u64>, storage: Storage) -> Result<()> {
    let Some(limit) = limit.or_else(available) else {
        return Ok(());
    };
    if needed <= limit {
        return Ok(());
    }
    let gb = |b: u64| b as f64 / 1e9;
    let hint = match storage {
        Storage::Widened => "; keeping the weights as stored (the default) needs less",
        Storage::AsStored => "",
    };
    bail!(
        OutOfMemory,
        "the weights need {:.2} GB and {:.2} GB are available{hint}",
        gb(needed),
        gb(limit)
    )
}

/// Linux: MemAvailable, and what the process's cgroup still allows, whichever is less.
/// Elsewhere unknown (no check).
fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    let system = kib * 1024;
    Some(cgroup_room().map_or(system, |room| room.min(system)))
}

/// cgroup v2: memory.max − memory.current of this process's group, if it has a limit.
fn cgroup_room() -> Option<u64> {
    let group = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = group.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let max = read("memory.max")?.trim().parse::<u64>().ok()?; // "max" = no limit
    let current = read("memory.current")?.trim().parse::<u64>().ok()?;
    Some(max.saturating_sub(current))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_limit_is_out_of_memory_and_says_how_much() {
        let e = check(3_000_000_000, Some(2_000_000_000), Storage::Widened).unwrap_err();
        assert_eq!(e.kind(), "out_of_memory");
        assert!(
            e.to_string().contains("3.00 GB") && e.to_string().contains("2.00 GB"),
            "{e}"
        );
        assert!(check(2_000_000_000, Some(2_000_000_000), Storage::AsStored).is_ok());
    }

    #[test]
    fn this_machine_reports_some_memory() {
        if cfg!(target_os = "linux") {
            assert!(available().is_some_and(|b| b > 0));
        }
    }
}

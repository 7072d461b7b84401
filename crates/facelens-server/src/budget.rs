//! A budget on request bytes in flight.
//!
//! The inference queue bounds the *work*, not the *bytes*: without this, every open connection
//! could have a 12 MiB body buffered (and parsed, and base64-decoded) before the queue had its
//! say, and a burst of large uploads grew the process by gigabytes. So a request takes its
//! share of the budget — the body's declared length, or the largest body allowed when it
//! declares none — before a byte of its body is read, and keeps it until its answer is sent
//! (the body, the fields parsed from it and the decoded image live that long). When the budget
//! is spent the request is answered "busy" at once and its body is discarded as it arrives.
//!
//! The default is derived from the machine (see [`default_budget`]); `max_bytes_in_flight`
//! sets it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes that requests in flight may hold between them.
#[derive(Debug)]
pub struct ByteBudget {
    limit: usize,
    used: AtomicUsize,
    refused: AtomicU64,
}

/// A share of the budget; given back when dropped.
#[derive(Debug)]
pub struct BytePermit {
    budget: Arc<ByteBudget>,
    bytes: usize,
}

impl ByteBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            used: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Take `bytes` of the budget, or `None` (counted) when that would exceed it.
    pub fn try_take(self: &Arc<Self>, bytes: usize) -> Option<BytePermit> {
        let limit = self.limit;
        let taken = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= limit)
            });
        if taken.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(BytePermit {
            budget: Arc::clone(self),
            bytes,
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// Requests refused because the budget was spent.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl BytePermit {
    /// Give back what is held beyond `bytes` (a body shorter than was reserved for it).
    pub fn shrink_to(&mut self, bytes: usize) {
        if bytes < self.bytes {
            self.budget
                .used
                .fetch_sub(self.bytes - bytes, Ordering::SeqCst);
            self.bytes = bytes;
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for BytePermit {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// The memory the process may use: the cgroup's limit when there is one (containers), else
/// the machine's memory; `None` when neither can be read.
pub fn memory_limit() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    match (cgroup, total) {
        (Some(c), Some(t)) => Some(c.min(t)),
        (c, t) => c.or(t),
    }
}

/// The default budget: enough for every slot of the engine (`slots` = workers + queue depth)
/// to hold a largest body twice over — more bytes than that only wait — but never more than a
/// sixteenth of the memory (`memory`, 4 GiB assumed when unknown), and never less than one
/// largest body. A body accepted costs about twice its size at its peak (the body, then the
/// field parsed from it; then the decoded image), so this keeps a burst of uploads within an
/// eighth of the memory.
pub fn default_budget(slots: usize, max_body_bytes: usize, memory: Option<u64>) -> usize {
    let memory = memory.unwrap_or(4 << 30);
    let by_memory = usize::try_from(memory / 16).unwrap_or(usize::MAX);
    let by_slots = slots
        .max(1)
        .saturating_mul(max_body_bytes)
        .saturating_mul(2);
    by_slots.min(by_memory).max(max_body_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_hold_and_give_back() {
        let b = ByteBudget::new(100);
        let mut a = b.try_take(60).expect("60 of 100");
        assert!(b.try_take(41).is_none());
        assert_eq!(b.refused(), 1);
        let c = b.try_take(40).expect("40 more");
        assert_eq!(b.used(), 100);
        a.shrink_to(10);
        assert_eq!(b.used(), 50);
        a.shrink_to(20); // never grows
        assert_eq!(a.bytes(), 10);
        drop(c);
        drop(a);
        assert_eq!(b.used(), 0);
        assert!(b.try_take(usize::MAX).is_none(), "no overflow");
        assert!(b.try_take(0).is_some());
    }

    #[test]
    fn default_is_bounded_by_slots_and_memory() {
        const MIB: usize = 1 << 20;
        // 2 workers + 8 queued, 12 MiB bodies, 24 GiB: the slots bound it.
        assert_eq!(default_budget(10, 12 * MIB, Some(24 << 30)), 240 * MIB);
        // A small machine: a sixteenth of its memory.
        assert_eq!(default_budget(10, 12 * MIB, Some(1 << 30)), 64 * MIB);
        // Never below one largest body.
        assert_eq!(default_budget(10, 12 * MIB, Some(64 << 20)), 12 * MIB);
        // Unknown memory: 4 GiB assumed.
        assert_eq!(default_budget(100, 12 * MIB, None), 256 * MIB);
    }
}

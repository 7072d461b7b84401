//! Subnormal floats flushed to zero on the threads that run models.
//!
//! Why: real photos drive some activations of the attribute models (dlib age above all) into
//! the subnormal range, where every x86 multiply-add takes a slow microcode path. Measured on
//! onnxruntime, dlib age's ten views took 59 ms on a real face against 31 ms on a constant
//! input, one thread (docs/performance.md). Treating subnormals as zero (the DAZ and FTZ bits of
//! MXCSR) removes that cost; values below 1.2e-38 are far below anything that moves a model's
//! output, and no answer changed on the photos measured.
//!
//! The bits are per thread. [`FlushGuard`] sets them for the duration of one model run on the
//! calling thread and restores the caller's state after; thread pools that only run models set
//! them once per thread ([`set_for_this_thread`]). On targets other than x86-64 both do nothing.
//! `FACELENS_FLUSH_SUBNORMALS=0` switches the whole thing off (to measure it, side by side).

use std::sync::OnceLock;

/// Whether model runs flush subnormals: yes unless `FACELENS_FLUSH_SUBNORMALS=0` (read once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("FACELENS_FLUSH_SUBNORMALS").map_or(true, |v| v != "0"))
}

/// MXCSR bit 15: results that would be subnormal become zero.
#[cfg(target_arch = "x86_64")]
const FTZ: u32 = 1 << 15;
/// MXCSR bit 6: subnormal operands are read as zero.
#[cfg(target_arch = "x86_64")]
const DAZ: u32 = 1 << 6;

#[cfg(target_arch = "x86_64")]
fn read() -> u32 {
    let mut csr: u32 = 0;
    // SAFETY: STMXCSR stores the 32-bit MXCSR register into the given, valid, aligned u32;
    // SSE is part of the x86-64 baseline.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
    }
    csr
}

#[cfg(target_arch = "x86_64")]
fn write(csr: u32) {
    // SAFETY: LDMXCSR loads a value read from MXCSR with only the DAZ/FTZ bits changed, which
    // are defined on every x86-64 CPU (DAZ since the Pentium 4, which predates x86-64); no
    // reserved bit is set, so it cannot fault.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack));
    }
}

/// Flush subnormals to zero on this thread from now on (for threads that only run models),
/// unless switched off by [`enabled`].
pub fn set_for_this_thread() {
    #[cfg(target_arch = "x86_64")]
    if enabled() {
        write(read() | FTZ | DAZ);
    }
}

/// Subnormals are flushed to zero on this thread while the guard lives (unless switched off by
/// [`enabled`]); the previous state comes back when it drops.
pub struct FlushGuard {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

impl FlushGuard {
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = read();
            if enabled() {
                write(saved | FTZ | DAZ);
            }
            FlushGuard { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushGuard {}
    }
}

impl Default for FlushGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        write(self.saved);
    }
}

/// Whether subnormals are flushed on this thread now (for tests).
pub fn flushing() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        read() & (FTZ | DAZ) == FTZ | DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_guard_flushes_subnormals_and_restores_the_previous_state() {
        if !enabled() {
            return;
        }
        // Operands read through atomics keep the compiler from folding the product or moving it
        // across the MXCSR writes (it assumes the default floating-point environment).
        let operands = [1.0e-30_f32, 1.0e-10_f32];
        let product = || {
            let a = opaque(&operands[0]);
            let b = opaque(&operands[1]);
            std::hint::black_box(a * b)
        };
        let before = flushing();
        {
            let _g = FlushGuard::new();
            assert!(flushing());
            // 1e-30 * 1e-10 = 1e-40 is subnormal: flushed to zero while the guard lives.
            assert_eq!(product(), 0.0);
        }
        assert_eq!(flushing(), before);
        if !before {
            assert!(product() > 0.0);
        }
    }

    fn opaque(x: &f32) -> f32 {
        let v = std::sync::atomic::AtomicU32::new(x.to_bits());
        f32::from_bits(std::hint::black_box(&v).load(std::sync::atomic::Ordering::SeqCst))
    }
}

//! What the CPU can do beyond the baseline the native build is compiled for (x86-64: SSE2 only),
//! checked at run time, so that one binary runs on any x86-64 machine and still uses AVX2 and FMA
//! where they exist (every x86-64 server CPU since 2015).
//!
//! [`multiversioned!`] compiles a function's body twice: as is, and with AVX2+FMA enabled (LLVM
//! then vectorises its loops 8 wide and fuses multiply-adds), and picks one per call.
//! `CROSSRANK_CPU=baseline` in the environment turns the AVX2 code off for a whole process (to
//! benchmark the baseline), `CROSSRANK_CPU=avx2` the AVX-512 int8 kernel alone (to compare it with
//! AVX2's on one machine); [`with_baseline`] turns both off for one thread (tests compare them).

use std::cell::Cell;

thread_local! {
    // Read only on x86-64 (elsewhere there is no AVX2 to turn off).
    static BASELINE_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Whether this CPU has AVX2 and FMA and they are not turned off (see the module's comment).
pub fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let detected = *DETECTED.get_or_init(|| {
            std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::env::var("CROSSRANK_CPU").map_or(true, |value| value != "baseline")
        });
        detected && !BASELINE_HERE.with(Cell::get)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has what the AVX-512 VNNI int8 kernel needs (AVX-512 F, BW and VNNI, beside
/// AVX2 and FMA) and it is not turned off (see the module's comment).
pub fn avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let detected = *DETECTED.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
                && std::env::var("CROSSRANK_CPU").map_or(true, |value| value != "avx2")
        });
        detected && avx2_fma()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` with the AVX2 code turned off on this thread (the baseline path), for tests that
/// compare the two.
#[cfg(test)]
pub fn with_baseline<T>(f: impl FnOnce() -> T) -> T {
    with_baseline_set(true, f)
}

/// Runs `f` with this thread's AVX2 switch set as `baseline` says, then puts it back: rayon's
/// workers take the choice of the thread that handed them the work.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn with_baseline_set<T>(baseline: bool, f: impl FnOnce() -> T) -> T {
    let before = BASELINE_HERE.with(|here| here.replace(baseline));
    let result = f();
    BASELINE_HERE.with(|here| here.set(before));
    result
}

/// `f(0)`, …, `f(count − 1)` in that order: natively each call taken whole by one of rayon's
/// threads (a free thread takes the next), else one after another on this thread (wasm). Even
/// with one rayon thread the calls run on it, not here: the operations inside them that hand work
/// to rayon then run where they are called, instead of waking rayon's thread and this one again
/// for each (futex calls, 5% of a native profile of short pairs). The workers make the same AVX2
/// choice as this thread.
pub fn map_tasks<T: Send>(count: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        let baseline = BASELINE_HERE.with(Cell::get);
        (0..count)
            .into_par_iter()
            .with_max_len(1)
            .map(|i| with_baseline_set(baseline, || f(i)))
            .collect()
    }
    #[cfg(target_arch = "wasm32")]
    {
        (0..count).map(f).collect()
    }
}

/// Calls `f(i, chunk)` for each `size`-long chunk of `out`, as [`for_each_chunk_pair`] does.
pub fn for_each_chunk<T: Send>(out: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    for_each_chunk_pair(out, size, &mut [0u8; 0], 1, |i, out, _| f(i, out));
}

/// Calls `f(i, a_chunk, b_chunk)` for chunk `i` of `a` (`a_size` long) and of `b` (`b_size`
/// long, or empty when `b` is): on rayon's threads natively when
/// it has several and there is more than one chunk, else one after another on this thread (wasm,
/// one thread: handing work to rayon's worker and waking this thread again costs futex calls that
/// showed in the profile). The workers make the same AVX2 choice as this thread.
pub fn for_each_chunk_pair<A: Send, B: Send>(a: &mut [A], a_size: usize, b: &mut [B], b_size: usize, f: impl Fn(usize, &mut [A], &mut [B]) + Sync + Send) {
    let (a_size, b_size) = (a_size.max(1), b_size.max(1));
    #[cfg(not(target_arch = "wasm32"))]
    if rayon::current_num_threads() > 1 && a.len() > a_size {
        use rayon::prelude::*;
        let baseline = BASELINE_HERE.with(Cell::get);
        let run = |i: usize, a: &mut [A], b: &mut [B]| with_baseline_set(baseline, || f(i, a, b));
        if b.is_empty() {
            a.par_chunks_mut(a_size).enumerate().for_each(|(i, a)| run(i, a, &mut []));
        } else {
            a.par_chunks_mut(a_size).zip(b.par_chunks_mut(b_size)).enumerate().for_each(|(i, (a, b))| run(i, a, b));
        }
        return;
    }
    let mut b_chunks = b.chunks_mut(b_size);
    for (i, a) in a.chunks_mut(a_size).enumerate() {
        f(i, a, b_chunks.next().unwrap_or(&mut []));
    }
}

/// Defines `fn name(args) -> T { body }` so that `body` runs compiled with AVX2+FMA when
/// [`avx2_fma`] says so, and as compiled otherwise. Everything the body calls in its hot loop must
/// be `#[inline(always)]`: only inlined code takes on the enabled features.
macro_rules! multiversioned {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $crate::cpu::avx2_fma() {
                // SAFETY: avx2_fma() checked that this CPU has both features.
                return unsafe { avx2($($arg),*) };
            }
            portable($($arg),*)
        }
    };
}
pub(crate) use multiversioned;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_come_back_in_order_with_this_threads_avx2_choice() {
        let squares = map_tasks(100, |i| i * i);
        assert_eq!(squares, (0..100).map(|i| i * i).collect::<Vec<_>>());
        assert!(map_tasks(0, |i| i).is_empty());
        // The tasks run on rayon's threads, which see the baseline this thread asked for.
        assert!(with_baseline(|| map_tasks(8, |_| avx2_fma())).iter().all(|&avx2| !avx2));
        let here = avx2_fma();
        assert!(map_tasks(8, |_| avx2_fma()).iter().all(|&avx2| avx2 == here));
    }
}

//! The int8 kernels, one file per instruction set, each tested bit for bit against its
//! definition in [`scalar`] (which also runs where no SIMD kernel does). Which one runs is
//! [`super::Kernel::detect`]'s choice; each layout's `matmul` calls it.
//!
//! | kernel | layout | file |
//! |---|---|---|
//! | scalar | any (the definitions) | `scalar.rs` |
//! | SIMD128 (wasm) | row-major ([`super::Int8Matrix`]) | `simd128.rs` |
//! | relaxed SIMD (wasm) | interleaved ([`super::InterleavedMatrix`]) | `relaxed_simd.rs` |
//! | AVX2 (x86-64) | interleaved ([`super::InterleavedMatrix`]) | `avx2.rs` |

pub(super) mod scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(super) mod simd128;

#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
pub(super) mod relaxed_simd;

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;

// The kernel each layout's `matmul` calls, fixed when the module is compiled (natively the
// interleaved layout's AVX2 kernel is chosen at run time instead, below).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
pub(super) use scalar::row_major;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(super) use simd128::row_major;

#[cfg(not(any(target_arch = "x86_64", all(target_arch = "wasm32", target_feature = "relaxed-simd"))))]
pub(super) use scalar::interleaved;
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
pub(super) use relaxed_simd::interleaved;

/// Rows `first ..` of `x Wᵀ` in the interleaved layout: the AVX2 kernel where
/// [`super::Kernel::detect`] finds it, else the scalar definition (the same numbers).
#[cfg(target_arch = "x86_64")]
pub(super) fn interleaved(w: &super::InterleavedMatrix, x: &super::DigitRows, first: usize, out: &mut [f32]) {
    if super::Kernel::detect() == super::Kernel::Avx2 {
        // SAFETY: the CPU has AVX2 (that is what detect() checks).
        unsafe { avx2::interleaved(w, x, first, out) }
    } else {
        scalar::interleaved(w, x, first, out)
    }
}

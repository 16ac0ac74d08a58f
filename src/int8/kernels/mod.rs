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
//! | AVX-512 VNNI (x86-64) | interleaved, 16 outputs per group | `avx512_vnni.rs` |

pub(super) mod scalar;

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub(super) mod simd128;

#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
pub(super) mod relaxed_simd;

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512_vnni;

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

/// Rows `first ..` of `x Wᵀ` in the interleaved layout: the AVX-512 VNNI or AVX2 kernel where
/// the CPU has it and the weight is in its group width, else the scalar definition (the same
/// numbers).
#[cfg(target_arch = "x86_64")]
pub(super) fn interleaved(w: &super::InterleavedMatrix, x: &super::DigitRows, first: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    use super::interleaved::{GROUP, WIDE_GROUP};
    match w.layout.width {
        // SAFETY: the CPU has AVX-512 F, BW and VNNI (that is what avx512_vnni() checks).
        WIDE_GROUP if crate::cpu::avx512_vnni() => unsafe { avx512_vnni::interleaved(w, x, first, bias, out) },
        // SAFETY: the CPU has AVX2 (that is what avx2_fma() checks).
        GROUP if crate::cpu::avx2_fma() => unsafe { avx2::interleaved(w, x, first, bias, out) },
        _ => scalar::interleaved(w, x, first, bias, out),
    }
}

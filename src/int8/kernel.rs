//! Which int8 kernel runs: chosen by [`Kernel::detect`] alone (the weights' layout at load, each
//! layout's product, attention, the native default of `matmul: "int8"`), and reported under
//! [`Kernel::name`] (the wasm module's `info().simd`, the CLI's `info`).

/// An int8 kernel: an instruction set, and the layout of the weights it multiplies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// The scalar definitions on the row-major layout: native CPUs without AVX2 and FMA.
    Scalar,
    /// SIMD128's `i32x4.dot_i16x8_s` on the row-major layout: wasm built without relaxed SIMD.
    Simd128,
    /// Relaxed SIMD's `i32x4.relaxed_dot_i8x16_i7x16_add_s` on the interleaved layout: wasm built
    /// with relaxed SIMD.
    RelaxedSimd,
    /// AVX2's `vpmaddubsw` on the interleaved layout (the relaxed-SIMD kernel's numbers, bit for
    /// bit): x86-64 CPUs with AVX2 and FMA, unless
    /// `CROSSRANK_CPU=baseline` turns them off (see [`crate::cpu`]).
    Avx2,
}

impl Kernel {
    /// The kernel this build runs on this CPU: the wasm ones by how the module was compiled, AVX2
    /// by a run-time check (cached; per thread only where a test turns AVX2 off).
    pub fn detect() -> Self {
        if crate::cpu::avx2_fma() {
            Self::Avx2 // never off x86-64
        } else if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) {
            Self::RelaxedSimd
        } else if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
            Self::Simd128
        } else {
            Self::Scalar
        }
    }

    /// `"scalar"`, `"simd128"`, `"relaxed-simd"` or `"avx2"`. The wasm package's `info().simd`
    /// is this name (only the two wasm ones occur there; its types and tests list them).
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Simd128 => "simd128",
            Self::RelaxedSimd => "relaxed-simd",
            Self::Avx2 => "avx2",
        }
    }

    /// Whether attention's products run faster on this kernel than in f32 (see
    /// [`super::attention`]): relaxed SIMD and AVX2. SIMD128's is not faster than candle's f32
    /// GEMM there, and the scalar one is far slower.
    pub fn runs_attention(self) -> bool {
        matches!(self, Self::RelaxedSimd | Self::Avx2)
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn natively_avx2_where_the_cpu_has_it_else_scalar() {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        let turned_off = std::env::var("CROSSRANK_CPU").is_ok_and(|value| value == "baseline");
        let expected = if avx2 && !turned_off { Kernel::Avx2 } else { Kernel::Scalar };
        assert_eq!(Kernel::detect(), expected);
        assert_eq!(crate::cpu::with_baseline(Kernel::detect), Kernel::Scalar);
        assert_eq!(Kernel::Avx2.name(), "avx2");
    }
}

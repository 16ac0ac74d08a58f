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
    /// AVX-512 VNNI's `vpdpbusd` on the interleaved layout 16 outputs wide (the same numbers, bit
    /// for bit): x86-64 CPUs with AVX-512 F, BW and VNNI (Intel since Cascade Lake, AMD since Zen
    /// 4), unless `CROSSRANK_CPU=avx2` or `baseline` turns it off.
    Avx512Vnni,
}

impl Kernel {
    /// The kernel this build runs on this CPU: the wasm ones by how the module was compiled, AVX2
    /// by a run-time check (cached; per thread only where a test turns AVX2 off).
    pub fn detect() -> Self {
        if crate::cpu::avx512_vnni() {
            Self::Avx512Vnni // never off x86-64
        } else if crate::cpu::avx2_fma() {
            Self::Avx2 // never off x86-64
        } else if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) {
            Self::RelaxedSimd
        } else if cfg!(all(target_arch = "wasm32", target_feature = "simd128")) {
            Self::Simd128
        } else {
            Self::Scalar
        }
    }

    /// `"scalar"`, `"simd128"`, `"relaxed-simd"`, `"avx2"` or `"avx512-vnni"`. The wasm package's `info().simd`
    /// is this name (only the two wasm ones occur there; its types and tests list them).
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Simd128 => "simd128",
            Self::RelaxedSimd => "relaxed-simd",
            Self::Avx2 => "avx2",
            Self::Avx512Vnni => "avx512-vnni",
        }
    }

    /// Whether quantised weights are kept in the interleaved layout for this kernel (else
    /// row-major).
    pub fn interleaved(self) -> bool {
        matches!(self, Self::RelaxedSimd | Self::Avx2 | Self::Avx512Vnni)
    }

    /// Outputs per group of the interleaved layout this kernel multiplies: one per i32 lane of
    /// its vectors.
    pub(super) fn interleaved_width(self) -> usize {
        match self {
            Self::Avx512Vnni => super::interleaved::WIDE_GROUP,
            _ => super::interleaved::GROUP,
        }
    }

    /// Whether attention's products run faster on this kernel than in f32 (see
    /// [`super::attention`]): the interleaved ones. SIMD128's is not faster than candle's f32
    /// GEMM there, and the scalar one is far slower.
    pub fn runs_attention(self) -> bool {
        self.interleaved()
    }
}

/// How the relaxed-SIMD kernel sums 16 products of weight bytes and activation digits into i32
/// lanes. Both sequences are exact for these operands (weights in −127..=127, digits in 0..=127:
/// two products sum to at most 32,258, so the i16 step of either cannot saturate), so they give
/// the same integers and the choice never changes a logit; only their speed depends on the CPU,
/// so a worker times both once ([`choose_dot_sequence`], after its first long call) and keeps the faster.
// Only the wasm binding (src/wasm.rs) uses these.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DotSequence {
    /// `i32x4.relaxed_dot_i8x16_i7x16_add_s`: one `vpdpbusd` where the CPU has AVX-VNNI; without
    /// it V8 emits `pmaddubsw`, `pmaddwd` by a ones constant it rebuilds each time, and `paddd`.
    DotAdd,
    /// `i16x8.relaxed_dot_i8x16_i7x16_s` + `i32x4.dot_i16x8_s` by ones (kept in a register) +
    /// `i32x4.add`: ~1.9× the dot-add's speed without AVX-VNNI (BENCHMARKS.md, issue 34).
    I16Dot,
}

/// The sequence the relaxed kernel runs: [`DotSequence::I16Dot`] until a probe says otherwise
/// (the faster one where most browsers run: CPUs without AVX-VNNI; src/wasm.rs probes once V8
/// has optimised the kernel).
// Only the wasm binding (src/wasm.rs) uses these.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
static DOT_SEQUENCE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(DotSequence::I16Dot as u8);

// Only the wasm binding (src/wasm.rs) uses these.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
impl DotSequence {
    pub const ALL: [DotSequence; 2] = [DotSequence::DotAdd, DotSequence::I16Dot];

    /// `"dot-add"` or `"i16-dot"`: the wasm package's `info().int8Dot`.
    pub fn name(self) -> &'static str {
        match self {
            Self::DotAdd => "dot-add",
            Self::I16Dot => "i16-dot",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|sequence| sequence.name() == name)
    }

    /// The sequence the relaxed-SIMD kernel runs now (the same in every thread of a worker).
    pub fn current() -> Self {
        if DOT_SEQUENCE.load(core::sync::atomic::Ordering::Relaxed) == Self::DotAdd as u8 {
            Self::DotAdd
        } else {
            Self::I16Dot
        }
    }

    /// Makes the relaxed-SIMD kernel run `self` from now on (the probe's choice, or a test's).
    pub fn select(self) {
        DOT_SEQUENCE.store(self as u8, core::sync::atomic::Ordering::Relaxed);
    }
}

/// Times the relaxed kernel with each [`DotSequence`] on a layer-sized product (64 rows of 384
/// against 384 outputs, ~19 M integer operations, ~0.25 ms, 16 times per timing) with `now`
/// (milliseconds), selects the faster (the dot-add only by a margin of 10%) and returns it; None
/// where the relaxed kernel is not compiled (its sequence does not matter there). The two are
/// timed in turns, keeping each one's best, until neither has improved for two rounds (at least
/// 3, at most 8 rounds: ~25 to ~70 ms, once per worker). Run it once V8 has optimised
/// the kernel (src/wasm.rs waits for a long call): on V8's baseline code the one-instruction
/// dot-add wins on every CPU.
// Only the wasm binding (src/wasm.rs) uses this.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub fn choose_dot_sequence(now: &dyn Fn() -> f64) -> Option<DotSequence> {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    {
        use super::{DigitRows, InterleavedMatrix, Int8Matrix};
        const ROWS: usize = 64;
        const COLS: usize = 384;
        let weights: Vec<f32> = (0..COLS * COLS).map(|i| ((i * 37 % 255) as f32 - 127.0) / 127.0).collect();
        let weights = InterleavedMatrix::new(&Int8Matrix::quantize(&weights, COLS, COLS));
        let x: Vec<f32> = (0..ROWS * COLS).map(|i| ((i * 31 % 97) as f32 - 48.0) / 10.0).collect();
        let x = DigitRows::new(&x, COLS);
        let mut out = vec![0f32; ROWS * COLS];
        // 16 products per timing (~4 ms): performance.now() has 100 µs steps in a page that is
        // not cross-origin isolated, a quarter of one product.
        const PRODUCTS: usize = 16;
        let mut best = [f64::INFINITY; 2];
        let mut unchanged = 0;
        for round in 0..8 {
            let mut improved = false;
            for (slot, sequence) in DotSequence::ALL.into_iter().enumerate() {
                sequence.select();
                let start = now();
                for _ in 0..PRODUCTS {
                    weights.matmul_into(&x, &mut out);
                    std::hint::black_box(&mut out);
                }
                let took = now() - start;
                if took < best[slot] {
                    best[slot] = took;
                    improved = true;
                }
            }
            unchanged = if improved { 0 } else { unchanged + 1 };
            if round >= 2 && unchanged >= 2 {
                break;
            }
        }
        // The dot-add must win clearly: without AVX-VNNI the two are within ~10% on this product
        // (the i16 sequence ahead) and a close call is noise, while with AVX-VNNI the dot-add is
        // one instruction against three.
        let faster = if best[0] < 0.9 * best[1] { DotSequence::DotAdd } else { DotSequence::I16Dot };
        faster.select();
        Some(faster)
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "relaxed-simd")))]
    {
        // Reads the clock all the same: the SIMD128 and relaxed wasm builds share one JS glue,
        // which exists only if both import the same JS functions (build.sh checks it).
        std::hint::black_box(now());
        None
    }
}

/// Whether the interleaved kernel this build runs gives its scalar definition's outputs bit for
/// bit, with and without a bias, for each dot sequence (the relaxed-SIMD build; elsewhere the
/// kernel of this CPU): weights of 1 to 9 groups (every remainder of the tiles' groups), Q8_0 and
/// Q4_0, 1 to 70 activation rows (past a block of 64 and every remainder of the tiles' rows),
/// one of them zeros. The browser tests call this through the wasm module, where no Rust test runs.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub fn interleaved_kernel_agrees() -> bool {
    use super::samples::{activations, quantized};
    use super::{DigitRows, InterleavedMatrix, Int8Matrix};
    use candle_core::quantized::GgmlDType::{Q4_0, Q8_0};
    let shapes = [(Q8_0, 36, 96, 70), (Q8_0, 9, 64, 5), (Q4_0, 4, 64, 2), (Q8_0, 1, 32, 3), (Q8_0, 20, 64, 7), (Q8_0, 16, 32, 6), (Q8_0, 28, 128, 13)];
    let sequences: &[DotSequence] = if cfg!(all(target_arch = "wasm32", target_feature = "relaxed-simd")) { &DotSequence::ALL } else { &[DotSequence::I16Dot] };
    let before = DotSequence::current();
    let mut agrees = true;
    for &(dtype, rows, cols, m) in &shapes {
        let matrix = InterleavedMatrix::new(&Int8Matrix::from_qtensor("t", "w", &quantized(dtype, rows, cols)).expect("a valid weight").expect("Q8_0 or Q4_0"));
        let mut values = activations(m, cols);
        values[..cols].iter_mut().for_each(|v| *v = 0.0);
        let x = DigitRows::new(&values, cols);
        let bias: Vec<f32> = (0..rows).map(|n| n as f32 * 0.37 - 3.0).collect();
        for bias in [None, Some(&bias[..])] {
            let mut expected = vec![0f32; m * rows];
            super::kernels::scalar::interleaved(&matrix, &x, 0, bias, &mut expected);
            for &sequence in sequences {
                sequence.select();
                agrees &= matrix.matmul(&x, bias) == expected;
            }
        }
    }
    before.select();
    agrees
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn natively_avx512_vnni_or_avx2_where_the_cpu_has_them_else_scalar() {
        let avx2 = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
        let avx512 = std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("avx512vnni");
        let setting = std::env::var("CROSSRANK_CPU").unwrap_or_default();
        let expected = match (avx2 && setting != "baseline", avx512 && setting != "avx2") {
            (true, true) => Kernel::Avx512Vnni,
            (true, false) => Kernel::Avx2,
            (false, _) => Kernel::Scalar,
        };
        assert_eq!(Kernel::detect(), expected);
        assert_eq!(crate::cpu::with_baseline(Kernel::detect), Kernel::Scalar);
        assert!(interleaved_kernel_agrees());
        assert_eq!((Kernel::Avx2.name(), Kernel::Avx512Vnni.name()), ("avx2", "avx512-vnni"));
        // Each kernel's layout width: what its vectors hold per step.
        assert_eq!((Kernel::Avx2.interleaved_width(), Kernel::RelaxedSimd.interleaved_width(), Kernel::Avx512Vnni.interleaved_width()), (4, 4, 16));
    }
}

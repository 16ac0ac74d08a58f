//! crossrank: a BERT cross-encoder reranker that runs in the browser (wasm with SIMD128, in a Web
//! Worker) and natively, giving the same scores as sentence-transformers' `CrossEncoder`.
//!
//! ```no_run
//! # fn main() -> crossrank::Result<()> {
//! # let (config, weights, tokenizer) = (vec![], vec![], vec![]);
//! use crossrank::{Reranker, RerankOptions, TokenizerSource};
//! let device = candle_core::Device::Cpu;
//! let reranker = Reranker::from_safetensors(&config, &weights, TokenizerSource::Json(&tokenizer), &device)?;
//! let ranked = reranker.rerank("what causes scurvy", &["Vitamin C deficiency.", "Stock prices."], &RerankOptions::default())?;
//! println!("best: document {} with score {}", ranked[0].index, ranked[0].score);
//! # Ok(()) }
//! ```

// The public API: what the CLI, the tests and the fuzz targets use (and the re-exports below).
pub mod error;
pub mod eval;
pub mod fusion;
pub mod gguf;
#[cfg(not(target_arch = "wasm32"))]
pub mod local;
pub mod options;
pub mod rerank;
pub mod tokenize;
#[cfg(target_arch = "wasm32")]
pub mod wasm;
pub mod windows;

// Reachable for the fuzz targets (which build models from raw weights) and the CLI's `info`, but
// not part of the documented API: the model's layers and the weight store may change shape freely.
#[doc(hidden)]
pub mod model;
#[doc(hidden)]
pub mod weights;

// Internals: the compute kernels and the Hugging Face folder reader behind `gguf::convert` and
// the wasm build's `convertHf`. `load` holds only `Reranker`'s constructors (`Reranker::from_*`).
pub(crate) mod activations;
pub(crate) mod cpu;
pub(crate) mod hf;
pub(crate) mod int8;
pub(crate) mod linear;
mod load;

// candle's wasm kernels are SIMD128; without it the browser build would silently run scalar code.
#[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
compile_error!("the wasm32 build needs SIMD128: build with RUSTFLAGS=\"-C target-feature=+simd128\" (see .cargo/config.toml)");

pub use error::{Error, Result};
/// The Hugging Face folder's file names (for the generated JS contract, tests/contract.rs).
#[doc(hidden)]
pub use hf::FILE_NAMES as HF_FILE_NAMES;
/// Which int8 kernel quantised weights multiply on here (`Int8Kernel::detect().name()`:
/// "avx512-vnni", "avx2", "scalar", "simd128" or "relaxed-simd"), as the CLI's `info` and `bench` and wasm's `info` say.
pub use int8::Kernel as Int8Kernel;
pub use model::Config;
pub use fusion::{Fusion, ScoreScale};
pub use options::{OptionValues, RerankOptions, DEFAULT_BATCH_SIZE};
pub use rerank::{order, sigmoid, BatchLimits, GrowingPrefix, PreparedScoring, RankedDocument, RerankRequest, Reranker, ScoredDocument};
pub use windows::{Aggregate, Window, WindowOptions};
pub use tokenize::{PaddedBatch, PairTokenizer, TokenizerSource};

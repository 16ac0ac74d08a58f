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

pub mod error;
pub mod eval;
pub mod gguf;
pub mod linear;
#[cfg(not(target_arch = "wasm32"))]
pub mod local;
pub mod model;
pub mod rerank;
pub mod tokenize;
pub mod weights;

pub use error::{Error, Result};
pub use model::Config;
pub use rerank::{rank, sigmoid, RankedDocument, RerankOptions, Reranker, DEFAULT_BATCH_SIZE};
pub use tokenize::{PairTokenizer, TokenizerSource};

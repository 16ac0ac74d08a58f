//! The browser binding: the only file that imports wasm-bindgen. It mirrors [`crate::Reranker`]
//! and turns every [`crate::Error`] into a JS `Error` carrying the same stable `code`.
//!
//! Nothing here may panic: a panic traps the wasm instance and kills the worker for every caller.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::gguf::GgufModel;
use crate::rerank::{RerankOptions, Reranker};
use crate::tokenize::TokenizerSource;

/// Logs panics to the console before the instance traps, so a bug report has a message.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&format!("crossrank panicked: {info}").into())));
}

/// A JS `Error` with `name = "CrossrankError"` and our `code`.
fn to_js(error: Error) -> JsValue {
    let js_error = js_sys::Error::new(&error.to_string());
    js_error.set_name("CrossrankError");
    let _ = js_sys::Reflect::set(&js_error, &"code".into(), &error.code().into());
    js_error.into()
}

fn invalid(message: String) -> JsValue {
    to_js(Error::invalid(message))
}

/// Options as JS passes them; numbers arrive as f64 and are checked before use.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsOptions {
    top_k: Option<f64>,
    max_length: Option<f64>,
    batch_size: Option<f64>,
}

/// A positive whole number that fits in usize, or a named error.
fn count(name: &str, value: Option<f64>) -> Result<Option<usize>, JsValue> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 1.0 && v.fract() == 0.0 && v <= u32::MAX as f64 => Ok(Some(v as usize)),
        Some(v) => Err(invalid(format!("{name} must be a whole number ≥ 1, got {v}"))),
    }
}

fn options(value: JsValue) -> Result<RerankOptions, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(RerankOptions::default());
    }
    let js: JsOptions = serde_wasm_bindgen::from_value(value).map_err(|e| invalid(format!("options: {e}")))?;
    let defaults = RerankOptions::default();
    Ok(RerankOptions {
        top_k: count("topK", js.top_k)?,
        max_length: count("maxLength", js.max_length)?,
        batch_size: count("batchSize", js.batch_size)?.unwrap_or(defaults.batch_size),
    })
}

fn documents(value: JsValue) -> Result<Vec<String>, JsValue> {
    if !js_sys::Array::is_array(&value) {
        return Err(invalid("documents must be an array of strings".into()));
    }
    let array = js_sys::Array::from(&value);
    array
        .iter()
        .enumerate()
        .map(|(index, item)| item.as_string().ok_or_else(|| invalid(format!("document {index} is not a string"))))
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    precision: String,
    max_positions: usize,
    num_layers: usize,
    hidden_size: usize,
    vocab_size: usize,
}

#[wasm_bindgen]
pub struct WasmReranker {
    reranker: Reranker,
    precision: String,
}

#[wasm_bindgen]
impl WasmReranker {
    /// From a crossrank GGUF file (weights, config and tokenizer in one).
    #[wasm_bindgen(js_name = fromGguf)]
    pub fn from_gguf(bytes: &[u8]) -> Result<WasmReranker, JsValue> {
        let model = GgufModel::read("model.gguf", bytes, &candle_core::Device::Cpu).map_err(to_js)?;
        let reranker = Reranker::from_gguf_model(&model).map_err(to_js)?;
        Ok(Self { reranker, precision: model.precision().to_string() })
    }

    /// From a Hugging Face directory's `config.json`, `model.safetensors` and `tokenizer.json`.
    #[wasm_bindgen(js_name = fromHfFiles)]
    pub fn from_hf_files(config: &[u8], safetensors: &[u8], tokenizer_json: &[u8]) -> Result<WasmReranker, JsValue> {
        let reranker =
            Reranker::from_safetensors(config, safetensors, TokenizerSource::Json(tokenizer_json), &candle_core::Device::Cpu)
                .map_err(to_js)?;
        Ok(Self { reranker, precision: "safetensors".into() })
    }

    /// `[{ index, score, logit }]`, best first, cut to `options.topK`.
    pub fn rerank(&self, query: &str, documents: JsValue, options: JsValue) -> Result<JsValue, JsValue> {
        let options = self::options(options)?;
        let documents = self::documents(documents)?;
        let refs: Vec<&str> = documents.iter().map(String::as_str).collect();
        let ranked = self.reranker.rerank(query, &refs, &options).map_err(to_js)?;
        serde_wasm_bindgen::to_value(&ranked).map_err(|e| to_js(Error::Compute(e.to_string())))
    }

    /// Raw logits in input order.
    pub fn logits(&self, query: &str, documents: JsValue, options: JsValue) -> Result<Vec<f32>, JsValue> {
        let options = self::options(options)?;
        let documents = self::documents(documents)?;
        let refs: Vec<&str> = documents.iter().map(String::as_str).collect();
        self.reranker.logits_with(query, &refs, &options).map_err(to_js)
    }

    pub fn info(&self) -> Result<JsValue, JsValue> {
        let config = self.reranker.config();
        let info = Info {
            precision: self.precision.clone(),
            max_positions: config.max_position_embeddings,
            num_layers: config.num_hidden_layers,
            hidden_size: config.hidden_size,
            vocab_size: config.vocab_size,
        };
        serde_wasm_bindgen::to_value(&info).map_err(|e| to_js(Error::Compute(e.to_string())))
    }
}

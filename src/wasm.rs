//! The browser binding: the only file that imports wasm-bindgen. It mirrors [`crate::Reranker`]
//! and turns every [`crate::Error`] into a JS `Error` carrying the same stable `code`.
//!
//! Nothing here may panic: a panic traps the wasm instance and kills the worker for every caller.

use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use crate::error::Error;
use crate::gguf::{GgufModel, Precision};
use crate::hf::{self, HfDir, TokenizerFiles};
use crate::options::{check_name, JsType, OptionValues, RerankOptions, OPTIONS};
use crate::model::plan::{Plan, PlanHead};
use crate::model::Config;
use crate::rerank::{BatchLimits, GrowingPrefix, PreparedScoring, RerankRequest, Reranker, ScoredDocument};
use crate::weights::{QuantizedMatmul, WeightStore};
use crate::windows::Window;

/// Logs panics to the console before the instance traps, so a bug report has a message.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| web_sys::console::error_1(&format!("crossrank panicked: {info}").into())));
}

/// A JS `Error` with `name = "RerankerError"` (the name the npm package's errors carry, so that a
/// caller of the raw module and of the package see one name) and our `code`; the message does not
/// repeat the kind the code already gives (`threshold: expected a number…`, not `invalid input: …`).
fn to_js(error: Error) -> JsValue {
    let js_error = js_sys::Error::new(&error.detail());
    js_error.set_name("RerankerError");
    let _ = js_sys::Reflect::set(&js_error, &"code".into(), &error.code().into());
    js_error.into()
}

fn invalid(message: String) -> JsValue {
    to_js(Error::invalid(message))
}

/// A query with its candidates (or some of them: a worker of a pool scores a share), for `score`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsScoreRequest {
    query: String,
    /// Kept as JS values: a huge document is read across the boundary only as far as a pair
    /// needs it ([`read_documents`]).
    #[serde(with = "serde_wasm_bindgen::preserve")]
    documents: js_sys::Array,
}

/// A scored document as it travels from the workers that score to the one that orders: window
/// offsets already in UTF-16 code units, so `text.slice(start, end)` works.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsScored {
    logit: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    best_window: Option<Window>,
    /// Tokenises to nothing (`crate::tokenize::PairTokenizer::is_blank`): ordered last (see `crate::rerank::order`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    blank: bool,
}

/// One request's scored documents (all of them, in input order), for `orderScored`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsOrderRequest {
    scored: Vec<JsScored>,
    first_stage: Option<Vec<f64>>,
}

/// A result as JS sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsRanked {
    index: usize,
    logit: f32,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    fused: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    best_window: Option<Window>,
}

fn utf16_offset(text: &str, chars: usize) -> usize {
    text.chars().take(chars).map(char::len_utf16).sum()
}

fn to_js_scored(scored: ScoredDocument, text: &str) -> JsScored {
    JsScored {
        logit: scored.logit,
        blank: scored.blank,
        best_window: scored.best_window.map(|w| Window { index: w.index, start: utf16_offset(text, w.start), end: utf16_offset(text, w.end) }),
    }
}

/// A value as an error message shows it: `"high"`, `number 3`, `an array`.
fn describe(value: &JsValue) -> String {
    match value.as_string() {
        Some(text) => format!("{text:?}"),
        None if value.is_null() => "null".into(),
        None if js_sys::Array::is_array(value) => "an array".into(),
        None if value.is_object() => "an object".into(),
        None => match (value.as_f64(), value.as_bool()) {
            (Some(number), _) => format!("number {number}"),
            (_, Some(flag)) => format!("boolean {flag}"),
            _ => value.js_typeof().as_string().unwrap_or_default(),
        },
    }
}

/// A value's type as [`JsType`] names them (`null` and arrays are none of them).
fn js_type(value: &JsValue) -> Option<JsType> {
    if value.is_null() || js_sys::Array::is_array(value) {
        return None;
    }
    [JsType::Number, JsType::String, JsType::Boolean, JsType::Object].into_iter().find(|kind| value.js_typeof().as_string().as_deref() == Some(kind.name()))
}

fn is_object(value: &JsValue) -> bool {
    js_type(value) == Some(JsType::Object)
}

/// Checks names and types against Rust's one list of options ([`OPTIONS`]) before serde reads
/// them, so every error names the JS option (`threshold: expected a number, got "high"`) and none
/// is serde's ("invalid type: …", "data did not match any variant of untagged enum"), and an
/// unknown name, also inside `windows` or `fusion`, is refused ([`check_name`]). What is left to
/// serde then fails only with `fusion`'s own messages ([`crate::options::FusionValues`]).
fn check_options(options: &JsValue) -> Result<(), JsValue> {
    if !is_object(options) {
        return Err(invalid(format!("options: expected an object, got {}", describe(options))));
    }
    let names = |object: &JsValue| js_sys::Object::keys(object.unchecked_ref::<js_sys::Object>()).iter().filter_map(|key| key.as_string()).collect::<Vec<_>>();
    let field = |object: &JsValue, name: &str| js_sys::Reflect::get(object, &name.into()).unwrap_or(JsValue::UNDEFINED);
    for name in names(options) {
        check_name(None, &name).map_err(to_js)?;
        // The fields of an object option (windows, fusion) are names too: serde would ignore a
        // misspelt one and run with its default.
        let value = field(options, &name);
        if is_object(&value) && OPTIONS.iter().any(|spec| spec.parent() == Some(name.as_str())) {
            for inner in names(&value) {
                check_name(Some(&name), &inner).map_err(to_js)?;
            }
        }
    }
    for spec in OPTIONS {
        let value = match spec.parent() {
            None => field(options, spec.name),
            Some(parent) => match field(options, parent) {
                parent if is_object(&parent) => field(&parent, spec.field()),
                _ => continue,
            },
        };
        if value.is_undefined() || js_type(&value).is_some_and(|kind| spec.types.contains(&kind)) {
            continue;
        }
        let wanted = spec.types.iter().map(|kind| if *kind == JsType::Object { "an object".to_string() } else { format!("a {}", kind.name()) });
        return Err(invalid(format!("{}: expected {}, got {}", spec.name, wanted.collect::<Vec<_>>().join(" or "), describe(&value))));
    }
    Ok(())
}

/// JS options through the one parser every front end uses ([`OptionValues::parse`]).
fn options(value: JsValue) -> Result<RerankOptions, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(RerankOptions::default());
    }
    check_options(&value)?;
    let values: OptionValues = serde_wasm_bindgen::from_value(value).map_err(|error| {
        // The message alone (it names the option): serde-wasm-bindgen's errors are JS Errors,
        // whose String() adds "Error: ".
        let error = JsValue::from(error);
        invalid(js_sys::Reflect::get(&error, &"message".into()).ok().and_then(|message| message.as_string()).unwrap_or_default())
    })?;
    values.parse().map_err(to_js)
}

/// Documents up to this many UTF-16 units are copied whole; longer ones in growing prefixes.
const FIRST_READ: usize = 1 << 16;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Info {
    /// The architecture: "bert", "electra" or "xlm-roberta".
    model_type: &'static str,
    precision: String,
    /// Which build of the module runs, as the int8 kernel it multiplies with
    /// (`Kernel::detect().name()`): "relaxed-simd" (the int8 path on the relaxed dot) or
    /// "simd128" (the fallback for browsers without relaxed SIMD).
    simd: &'static str,
    /// The relaxed kernel's dot sequence (`DotSequence::name`: "dot-add" or "i16-dot"; the
    /// default until [`DotProbe`] has timed both; the same logits either way); null in the
    /// SIMD128 build.
    int8_dot: Option<&'static str>,
    max_positions: usize,
    /// The max_length a call without one gets (the length the model was trained at, if recorded).
    default_max_length: usize,
    num_layers: usize,
    hidden_size: usize,
    vocab_size: usize,
}

/// Plain objects (not `Map`s) for JS.
fn to_value<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| to_js(Error::Compute(e.to_string())))
}

#[wasm_bindgen]
pub struct WasmReranker {
    reranker: Reranker,
    precision: String,
    /// Whether its linear layers run on the int8 kernels (Q8_0/Q4_0 weights, matmul "int8"):
    /// only then does the relaxed kernel's dot sequence matter ([`DotProbe`]).
    int8: bool,
}

#[wasm_bindgen]
impl WasmReranker {
    /// From a crossrank GGUF file (weights, config and tokenizer in one). `matmul` says how
    /// Q8_0/Q4_0 weights multiply: `"int8"` (default: kept as integers, SIMD128 integer dot
    /// products, as exact as dequantising and ~1.2× faster on W30 in Chromium), `"dequantize"`
    /// (widened to f32 once at load) or `"blocks"` (candle's quantised kernels, 8-bit activations).
    #[wasm_bindgen(js_name = fromGguf)]
    pub fn from_gguf(bytes: &[u8], matmul: Option<String>) -> Result<WasmReranker, JsValue> {
        let model = GgufModel::read("model.gguf", bytes, &candle_core::Device::Cpu).map_err(to_js)?;
        let matmul = match matmul.as_deref() {
            None | Some("int8") => QuantizedMatmul::Int8,
            Some("dequantize") => QuantizedMatmul::Dequantize,
            Some("blocks") => QuantizedMatmul::Blocks,
            Some(other) => return Err(invalid(format!("matmul must be \"int8\", \"dequantize\" or \"blocks\", got \"{other}\""))),
        };
        let reranker = Reranker::from_gguf_model_with(&model, matmul).map_err(to_js)?;
        let int8 = matmul == QuantizedMatmul::Int8 && matches!(Precision::parse(model.precision()), Ok(Precision::Q8_0 | Precision::Q4_0));
        Ok(Self { reranker, precision: model.precision().to_string(), int8 })
    }

    /// Scores several queries' documents, batched together: `[{ query, documents }]` → one
    /// `[{ logit, bestWindow? }]` per request, in input order. Every option is checked (also those
    /// only `orderScored` uses), so a bad one fails before any work. A pool of workers gives each
    /// a share of the documents and orders the union with `orderScored`.
    pub fn score(&self, requests: JsValue, options: JsValue) -> Result<JsValue, JsValue> {
        let options = self::options(options)?;
        let probe = DotProbe::start(self.int8);
        let (texts, scored) = self.with_requests(requests, &options, |core| self.reranker.score_many(core, &options))?;
        probe.finish();
        to_js_scored_requests(scored, &texts)
    }

    /// `score`'s first half for another encoder (the WebGPU one): the same checks, pairs and
    /// windows, batched within `maxRows` pairs (default: `options.batchSize`) and `maxTokens`
    /// tokens (default: a GPU's bound, [`crate::rerank::MAX_TOKENS_PER_BATCH`]). Its batches'
    /// logits go back through [`WasmPrepared::finish`], which answers what `score` would.
    pub fn prepare(&self, requests: JsValue, options: JsValue, max_rows: Option<u32>, max_tokens: Option<u32>) -> Result<WasmPrepared, JsValue> {
        let options = self::options(options)?;
        let mut limits = BatchLimits::gpu(&options);
        if let Some(rows) = max_rows {
            limits.max_rows = rows.max(1) as usize;
        }
        if let Some(tokens) = max_tokens {
            limits.max_tokens = tokens.max(1) as usize;
        }
        let (texts, prepared) = self.with_requests(requests, &options, |core| self.reranker.prepare(core, &options, limits))?;
        Ok(WasmPrepared { prepared, texts })
    }

    /// Reads `[{ query, documents }]` (each document only as far as scoring reads it) and runs
    /// `work` on them; gives back the texts read, which window offsets refer to.
    fn with_requests<T>(
        &self,
        requests: JsValue,
        options: &RerankOptions,
        work: impl FnOnce(&[RerankRequest]) -> crate::Result<T>,
    ) -> Result<(Vec<Vec<String>>, T), JsValue> {
        let requests: Vec<JsScoreRequest> =
            serde_wasm_bindgen::from_value(requests).map_err(|e| invalid(format!("requests must be [{{ query, documents }}]: {e}")))?;
        let texts: Vec<Vec<String>> = requests.iter().map(|r| self.read_documents(&r.query, &r.documents, options)).collect::<Result<_, _>>()?;
        let refs: Vec<Vec<&str>> = texts.iter().map(|documents| documents.iter().map(String::as_str).collect()).collect();
        let core: Vec<RerankRequest> = requests
            .iter()
            .zip(&refs)
            .map(|(request, documents)| RerankRequest { query: &request.query, documents, first_stage: None })
            .collect();
        let value = work(&core).map_err(to_js)?;
        Ok((texts, value))
    }

    /// Raw logits in input order.
    pub fn logits(&self, query: &str, documents: JsValue, options: JsValue) -> Result<Vec<f32>, JsValue> {
        let options = self::options(options)?;
        if !js_sys::Array::is_array(&documents) {
            return Err(invalid("documents must be an array of strings".into()));
        }
        let documents = self.read_documents(query, &js_sys::Array::from(&documents), &options)?;
        let refs: Vec<&str> = documents.iter().map(String::as_str).collect();
        let probe = DotProbe::start(self.int8);
        let logits = self.reranker.logits_with(query, &refs, &options).map_err(to_js)?;
        probe.finish();
        Ok(logits)
    }

    /// The documents as Rust strings, each copied into wasm memory (which never shrinks) only as
    /// far as its pairs can read it: a text longer than [`FIRST_READ`] UTF-16 units is read in
    /// prefixes growing ×4 ([`GrowingPrefix`]) until the prefix decides everything scoring reads
    /// ([`Reranker::prefix_suffices`]: the tokens a pair keeps, or with windows at most
    /// [`crate::windows::MAX_WINDOWS_PER_DOCUMENT`] windows).
    fn read_documents(&self, query: &str, documents: &js_sys::Array, options: &RerankOptions) -> Result<Vec<String>, JsValue> {
        let suffices = |start: &str| self.reranker.prefix_suffices(query, start, options);
        documents
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let Some(text) = item.dyn_ref::<js_sys::JsString>() else {
                    return Err(invalid(format!("document {index} is not a string")));
                };
                // n UTF-16 units are at least n UTF-8 bytes. A surrogate pair cut at the end
                // becomes U+FFFD there, past every byte the bounds look at.
                let prefix = |units: usize| String::from(text.slice(0, units as u32));
                let start = GrowingPrefix::new(FIRST_READ).read(text.length() as usize, prefix, &suffices).map_err(to_js)?;
                Ok(start.unwrap_or_else(|| String::from(text)))
            })
            .collect()
    }

    pub fn info(&self) -> Result<JsValue, JsValue> {
        let config = self.reranker.config();
        let info = Info {
            model_type: config.family().name(),
            precision: self.precision.clone(),
            simd: crate::int8::Kernel::detect().name(),
            int8_dot: (crate::int8::Kernel::detect() == crate::int8::Kernel::RelaxedSimd).then(|| crate::int8::DotSequence::current().name()),
            max_positions: config.max_positions(),
            default_max_length: self.reranker.default_max_length(),
            num_layers: config.num_hidden_layers,
            hidden_size: config.hidden_size,
            vocab_size: config.vocab_size,
        };
        to_value(&info)
    }
}

/// `score`'s scored documents for JS: window offsets in UTF-16 units of the texts read.
fn to_js_scored_requests(scored: Vec<Vec<ScoredDocument>>, texts: &[Vec<String>]) -> Result<JsValue, JsValue> {
    let scored: Vec<Vec<JsScored>> = scored
        .into_iter()
        .zip(texts)
        .map(|(documents, texts)| documents.into_iter().zip(texts).map(|(d, text)| to_js_scored(d, text)).collect())
        .collect();
    to_value(&scored)
}

/// A rerank's batches waiting for another encoder's logits ([`WasmReranker::prepare`]).
#[wasm_bindgen]
pub struct WasmPrepared {
    prepared: PreparedScoring,
    texts: Vec<Vec<String>>,
}

#[wasm_bindgen]
impl WasmPrepared {
    #[wasm_bindgen(getter, js_name = batchCount)]
    pub fn batch_count(&self) -> usize {
        self.prepared.batch_count()
    }

    /// How many logits `finish` takes (one per pair: a document, or each of its windows).
    #[wasm_bindgen(getter, js_name = pairCount)]
    pub fn pair_count(&self) -> usize {
        self.prepared.pair_count()
    }

    /// Batch `index` padded to its longest pair: `{ rows, seqLen, inputIds, tokenTypeIds,
    /// attentionMask }`, the arrays `Uint32Array`s of `rows × seqLen`, row-major, mask 1 for a
    /// token and 0 for padding.
    pub fn batch(&self, index: usize) -> Result<JsValue, JsValue> {
        if index >= self.prepared.batch_count() {
            return Err(invalid(format!("batch {index} does not exist (there are {})", self.prepared.batch_count())));
        }
        let batch = self.prepared.batch(index);
        let mask: Vec<u32> = batch.attention_mask.iter().map(|&m| u32::from(m != 0.0)).collect();
        Ok(js_object(&[
            ("rows", batch.rows.into()),
            ("seqLen", batch.seq_len.into()),
            ("inputIds", js_sys::Uint32Array::from(&batch.input_ids[..]).into()),
            ("tokenTypeIds", js_sys::Uint32Array::from(&batch.token_type_ids[..]).into()),
            ("attentionMask", js_sys::Uint32Array::from(&mask[..]).into()),
        ])?
        .into())
    }

    /// What `score` answers, from every batch's logits concatenated in batch order.
    pub fn finish(&self, logits: &[f32]) -> Result<JsValue, JsValue> {
        let scored = self.prepared.finish(logits).map_err(to_js)?;
        to_js_scored_requests(scored, &self.texts)
    }
}

/// Whether this instance (a worker) has chosen its int8 dot sequence: by [`DotProbe`], or a test.
static DOT_CHOSEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Chooses the relaxed kernel's dot sequence once per instance, after the first int8 scoring
/// call that ran long enough (≥ [`DotProbe::AFTER_MS`]) for V8 to have optimised the kernel:
/// timed at load, a fresh worker measures V8's baseline compiler, where the one-instruction
/// dot-add wins whatever the CPU (it did in 4 of 6 fresh starts on a CPU where it is the slower
/// once optimised). Until then the kernel runs [`crate::int8::DotSequence::I16Dot`], the faster
/// one on CPUs without AVX-VNNI. Both give the same logits, so the choice only moves speed.
struct DotProbe {
    started: Option<f64>,
}

impl DotProbe {
    const AFTER_MS: f64 = 200.0;

    fn start(int8: bool) -> Self {
        let waiting = int8 && !DOT_CHOSEN.load(std::sync::atomic::Ordering::Relaxed);
        Self { started: waiting.then(now_ms) }
    }

    /// After the call: times both sequences (a few ms; `crate::int8::choose_dot_sequence`) if
    /// this was the first long enough call.
    fn finish(self) {
        if let Some(started) = self.started {
            if now_ms() - started >= Self::AFTER_MS && !DOT_CHOSEN.swap(true, std::sync::atomic::Ordering::Relaxed) {
                crate::int8::choose_dot_sequence(&now_ms);
            }
        }
    }
}

/// `performance.now()` (5 µs steps where the page is cross-origin isolated, 100 µs elsewhere), or
/// `Date.now()` where a runtime has no `performance`.
fn now_ms() -> f64 {
    let global = js_sys::global();
    let performance = js_sys::Reflect::get(&global, &"performance".into()).unwrap_or(JsValue::UNDEFINED);
    js_sys::Reflect::get(&performance, &"now".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .and_then(|now| now.call0(&performance).ok())
        .and_then(|value| value.as_f64())
        .unwrap_or_else(js_sys::Date::now)
}

/// Test-only (the browser tests check that both sequences give the same logits; the benchmark
/// measures each): makes the relaxed kernel run `name` ("dot-add" or "i16-dot") from now on,
/// and no probe change it.
#[wasm_bindgen(js_name = selectInt8Dot)]
pub fn select_int8_dot(name: &str) -> Result<(), JsValue> {
    let sequence = crate::int8::DotSequence::from_name(name).ok_or_else(|| invalid(format!("int8Dot must be \"dot-add\" or \"i16-dot\", got \"{name}\"")))?;
    sequence.select();
    DOT_CHOSEN.store(true, std::sync::atomic::Ordering::Relaxed); // no probe overrides it
    Ok(())
}

/// Test-only: whether the wasm build's SIMD activation quantiser gives exactly what its portable
/// definition gives for `values` (whole blocks of 32), digits, scales and zero points.
#[wasm_bindgen(js_name = digitQuantiserAgrees)]
pub fn digit_quantiser_agrees(values: &[f32]) -> bool {
    crate::int8::digit_quantiser_agrees(values)
}

/// Test-only: whether the relaxed-SIMD build's int8 kernel gives its scalar definition's
/// outputs bit for bit (both dot sequences, with and without a bias, every remainder of its
/// tiles); in the SIMD128 build, whether that definition runs there as natively.
#[wasm_bindgen(js_name = int8KernelAgrees)]
pub fn int8_kernel_agrees() -> bool {
    crate::int8::interleaved_kernel_agrees()
}

/// Test-only: whether the int8 attention's softmax straight to digits (SIMD128 here) gives the
/// definition's digits and scales bit for bit (`crate::int8::attention::softmax_digits_agree`);
/// throws naming the first case that does not.
#[wasm_bindgen(js_name = softmaxDigitsAgree)]
pub fn softmax_digits_agree() -> Result<bool, JsValue> {
    crate::int8::attention::softmax_digits_agree().map(|()| true).map_err(|case| JsValue::from(js_sys::Error::new(&case)))
}

/// Test-only: whether attention's keys and values are rounded as Q8_0 rounds (their largest |v|
/// in SIMD128 here) bit for bit (`crate::int8::q8_rounding_agrees`); throws naming the first
/// block that is not.
#[wasm_bindgen(js_name = q8RoundingAgrees)]
pub fn q8_rounding_agrees() -> Result<bool, JsValue> {
    crate::int8::q8_rounding_agrees().map(|()| true).map_err(|case| JsValue::from(js_sys::Error::new(&case)))
}

/// The model in a crossrank GGUF as data for the WebGPU encoder ([`crate::model::plan`]):
/// `{ family, hiddenSize, numLayers, numHeads, headSize, intermediateSize, embeddingWidth,
/// layerNormEps, hiddenAct, positionOffset, head: { kind, activation? }, tensors: { [name]:
/// { dtype, shape, data: Uint8Array } } }`.
#[wasm_bindgen(js_name = gpuPlan)]
pub fn gpu_plan(bytes: &[u8]) -> Result<JsValue, JsValue> {
    let model = GgufModel::read("model.gguf", bytes, &candle_core::Device::Cpu).map_err(to_js)?;
    let config = Config::from_json("model.gguf (config)", model.config_json.as_bytes()).map_err(to_js)?;
    let plan = Plan::read(&model.weights, &config).map_err(to_js)?;
    plan_to_js(&plan)
}

/// A plain JS object of `entries` (typed arrays stay typed arrays, which serde would not keep).
fn js_object(entries: &[(&str, JsValue)]) -> Result<js_sys::Object, JsValue> {
    let object = js_sys::Object::new();
    for (key, value) in entries {
        js_sys::Reflect::set(&object, &(*key).into(), value)?;
    }
    Ok(object)
}

fn plan_to_js(plan: &Plan) -> Result<JsValue, JsValue> {
    let config = &plan.config;
    let head = match plan.head {
        PlanHead::Pooler => js_object(&[("kind", "pooler".into())])?,
        PlanHead::Classification { tanh } => js_object(&[("kind", "classification".into()), ("activation", if tanh { "tanh" } else { "gelu" }.into())])?,
    };
    let tensors = js_sys::Object::new();
    for tensor in &plan.tensors {
        let shape: js_sys::Array = tensor.shape.iter().map(|&n| JsValue::from(n)).collect();
        let entry = js_object(&[
            ("dtype", tensor.dtype.name().into()),
            ("shape", shape.into()),
            ("data", js_sys::Uint8Array::from(&tensor.data[..]).into()),
        ])?;
        js_sys::Reflect::set(&tensors, &tensor.name.as_str().into(), &entry)?;
    }
    Ok(js_object(&[
        ("family", plan.family.name().into()),
        ("hiddenSize", config.hidden_size.into()),
        ("numLayers", config.num_hidden_layers.into()),
        ("numHeads", config.num_attention_heads.into()),
        ("headSize", config.head_size().into()),
        ("intermediateSize", config.intermediate_size.into()),
        ("embeddingWidth", config.embedding_width().into()),
        ("layerNormEps", config.layer_norm_eps.into()),
        ("hiddenAct", plan.hidden_act().into()),
        ("positionOffset", plan.position_offset.into()),
        ("head", head.into()),
        ("tensors", tensors.into()),
    ])?
    .into())
}

/// Orders scored documents (the second half of a rerank; needs no model):
/// `[{ scored: [{ logit, bestWindow? }], firstStage? }]` → one `[{ index, score, logit, fused?,
/// bestWindow? }]` per request, best first, fused, thresholded and cut to `options.topK`.
#[wasm_bindgen(js_name = orderScored)]
pub fn order_scored(requests: JsValue, options: JsValue) -> Result<JsValue, JsValue> {
    let options = self::options(options)?;
    let requests: Vec<JsOrderRequest> = serde_wasm_bindgen::from_value(requests)
        .map_err(|e| invalid(format!("requests must be [{{ scored: [{{ logit, bestWindow? }}], firstStage? }}]: {e}")))?;
    let mut results = Vec::with_capacity(requests.len());
    for request in requests {
        let scored: Vec<ScoredDocument> =
            request.scored.iter().map(|d| ScoredDocument { logit: d.logit, best_window: d.best_window, blank: d.blank }).collect();
        let ranked = crate::rerank::order(&scored, request.first_stage.as_deref(), &options).map_err(to_js)?;
        let ranked: Vec<JsRanked> = ranked
            .into_iter()
            .map(|r| JsRanked { index: r.index, logit: r.logit, score: r.score, fused: r.fused, best_window: r.best_window })
            .collect();
        results.push(ranked);
    }
    to_value(&results)
}

/// Converts a Hugging Face model folder's files (fetched from the Hub or a mirror) to a crossrank
/// GGUF, exactly as `crossrank convert --dtype <dtype>` does on the same files: same bytes.
/// `folder` (a URL ending in `/`) names the files in errors; `source` is recorded in the file.
#[wasm_bindgen(js_name = convertHf)]
#[allow(clippy::too_many_arguments)]
pub fn convert_hf(
    folder: &str,
    source: &str,
    dtype: &str,
    config_json: Vec<u8>,
    safetensors: &[u8],
    tokenizer_json: Option<Vec<u8>>,
    vocab_txt: Option<Vec<u8>>,
    tokenizer_config_json: Option<Vec<u8>>,
) -> Result<Vec<u8>, JsValue> {
    let name = |file: &str| format!("{folder}{file}");
    let precision = Precision::parse(dtype).map_err(to_js)?;
    let device = candle_core::Device::Cpu;
    let weights = WeightStore::from_safetensors(&name(hf::SAFETENSORS), safetensors, &device).map_err(to_js)?;
    let files = TokenizerFiles {
        tokenizer_json: tokenizer_json.as_deref(),
        vocab_txt: vocab_txt.as_deref(),
        tokenizer_config_json: tokenizer_config_json.as_deref(),
    };
    let dir = HfDir::from_files(config_json, weights, files, name).map_err(to_js)?;
    dir.convert(source, None, precision).map_err(to_js)
}

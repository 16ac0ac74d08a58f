//! What each fuzz target does with its input, shared by the libFuzzer targets in
//! `fuzz/fuzz_targets/` and by the root crate's `tests/fuzz_regressions.rs` (which mounts this file
//! with `#[path = "../fuzz/harness.rs"] mod harness;` and replays `fuzz/regressions/<target>/*`).
//!
//! The contract under test: every entry point returns `Ok` or a `crossrank::Error` with a known
//! code on any input, never panics, aborts, hangs or allocates without bound. Each function below
//! also checks the invariants an `Ok` promises (lengths, indices, finite numbers) and panics
//! (= a finding) when one is broken.
//!
//! Only `crossrank`, `candle_core` and `std` are used, so the file compiles in both crates.

#![allow(dead_code)]

use std::path::Path;
use std::sync::OnceLock;

use candle_core::Device;
use crossrank::gguf::{convert, ConvertInput, GgufModel, Precision};
use crossrank::model::CrossEncoder;
use crossrank::weights::{QuantizedMatmul, WeightStore};
use crossrank::{
    Aggregate, Config, Fusion, PairTokenizer, RerankOptions, RerankRequest, Reranker, ScoreScale, TokenizerSource,
    WindowOptions,
};

/// The fuzz targets, by the name of their folder under `fuzz/regressions/` and `fuzz/corpus/`.
pub const TARGETS: [(&str, fn(&[u8]) -> Outcome); 6] = [
    ("gguf_loader", gguf_loader),
    ("gguf_metadata", gguf_metadata),
    ("safetensors_loader", safetensors_loader),
    ("config_parser", config_parser),
    ("pair_tokenizer", pair_tokenizer),
    ("pytorch_loader", pytorch_loader),
];

/// The tiny test model (tests/models/tiny), compiled in so the targets need no files at run time.
pub const TINY_CONFIG: &[u8] = include_bytes!("../tests/models/tiny/config.json");
pub const TINY_TOKENIZER: &[u8] = include_bytes!("../tests/models/tiny/tokenizer.json");
pub const TINY_SAFETENSORS: &[u8] = include_bytes!("../tests/models/tiny/model.safetensors");
pub const TINY_VOCAB: &[u8] = include_bytes!("../tests/models/tiny/vocab.txt");
pub const TINY_PYTORCH_BIN: &[u8] = include_bytes!("../tests/models/tiny-bin/pytorch_model.bin");

/// A micro BERT (1 layer, hidden 32, 16 tokens) whose files are a few KiB: most seeds are built
/// from it (`cargo run --example make_seeds`), so that each execution is cheap and mutations hit
/// the structure rather than the bulk of the weights. Rows of 32 so that Q8_0 and Q4_0 apply.
pub const MICRO_CONFIG: &str = r#"{
  "architectures": ["BertForSequenceClassification"],
  "model_type": "bert",
  "vocab_size": 16,
  "hidden_size": 32,
  "num_hidden_layers": 1,
  "num_attention_heads": 2,
  "intermediate_size": 32,
  "hidden_act": "gelu",
  "max_position_embeddings": 32,
  "type_vocab_size": 2,
  "layer_norm_eps": 1e-12,
  "num_labels": 1
}"#;
pub const MICRO_VOCAB: &str =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nvitamin\nc\nscurvy\n##s\ncause\nwhat\n.\nstock\nprice\n##d\n";

/// What one input did: `Ok`, or the code of the `crossrank::Error` it was rejected with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Err(&'static str),
}

fn rejected(error: crossrank::Error) -> Outcome {
    let code = error.code();
    // The one list of codes, which JS's ErrorCode is generated from (src/error.rs).
    assert!(crossrank::Error::CODES.contains(&code), "unknown error code {code:?}");
    assert!(!error.to_string().is_empty(), "error {code} without a message");
    Outcome::Err(code)
}

fn outcome<T>(result: crossrank::Result<T>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(error) => rejected(error),
    }
}

fn tiny_tokenizer() -> &'static PairTokenizer {
    static TOKENIZER: OnceLock<PairTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| PairTokenizer::from_tokenizer_json("tokenizer.json", TINY_TOKENIZER).expect("the tiny tokenizer loads"))
}

fn tiny_reranker() -> &'static Reranker {
    static RERANKER: OnceLock<Reranker> = OnceLock::new();
    RERANKER.get_or_init(|| {
        Reranker::from_safetensors(TINY_CONFIG, TINY_SAFETENSORS, TokenizerSource::Json(TINY_TOKENIZER), &Device::Cpu)
            .expect("the tiny model loads")
    })
}

/// A loaded model must score a tiny request without panicking; weights from a fuzzed file may make
/// it fail (non-finite logits, ids past the embedding table), but only with an error.
fn exercise(reranker: &Reranker) -> Outcome {
    let documents = ["Vitamin C deficiency causes scurvy.", "Stock prices fell.", ""];
    match reranker.rerank("what causes scurvy", &documents, &RerankOptions::default()) {
        Ok(ranked) => {
            check_ranked(&ranked, documents.len());
            Outcome::Ok
        }
        Err(error) => rejected(error),
    }
}

fn check_ranked(ranked: &[crossrank::RankedDocument], documents: usize) {
    let mut seen = vec![false; documents];
    for document in ranked {
        assert!(document.index < documents, "index {} of {documents} documents", document.index);
        assert!(!seen[document.index], "document {} ranked twice", document.index);
        seen[document.index] = true;
        assert!(document.logit.is_finite(), "non-finite logit {}", document.logit);
        assert!(!document.score.is_nan(), "NaN score");
    }
}

/// `GgufModel::read` then `Reranker::from_gguf_model` (together: `Reranker::from_gguf`), then a
/// rerank through whatever loaded.
pub fn gguf_loader(data: &[u8]) -> Outcome {
    let device = Device::Cpu;
    let model = match GgufModel::read("fuzz.gguf", data, &device) {
        Ok(model) => model,
        Err(error) => return rejected(error),
    };
    let _ = (model.precision(), model.source());
    match Reranker::from_gguf_model(&model) {
        Ok(reranker) => exercise(&reranker),
        Err(error) => rejected(error),
    }
}

/// The tiny model's f32 GGUF (crossrank's own converter), in parts, for [`gguf_metadata`] to
/// rebuild around fuzzed metadata: its metadata entries (raw, with their keys), its tensor-info
/// block (raw) and count, and its tensor data.
struct GgufParts {
    metadata: Vec<(String, Vec<u8>)>,
    tensor_infos: Vec<u8>,
    tensor_count: u64,
    data: Vec<u8>,
}

fn tiny_gguf_parts() -> &'static GgufParts {
    static PARTS: OnceLock<GgufParts> = OnceLock::new();
    PARTS.get_or_init(|| {
        let weights = WeightStore::from_safetensors("model.safetensors", TINY_SAFETENSORS, &Device::Cpu).expect("the tiny weights load");
        let config_json = std::str::from_utf8(TINY_CONFIG).expect("UTF-8");
        let input = ConvertInput { config_json, tokenizer: tiny_tokenizer(), source: "tests/models/tiny", max_length: None };
        let bytes = convert(&weights, &input, Precision::F32).expect("the tiny model converts");
        // GGUF v3: magic, version, tensor count, metadata count (u64s), then the entries. The
        // converter writes only strings (type 8) and u32s (type 4).
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let (tensor_count, metadata_count) = (u64_at(8), u64_at(16));
        let mut at = 24;
        let mut metadata = Vec::new();
        for _ in 0..metadata_count {
            let start = at;
            let key_length = u64_at(at) as usize;
            let key = String::from_utf8(bytes[at + 8..at + 8 + key_length].to_vec()).expect("UTF-8 key");
            at += 8 + key_length;
            let kind = u32_at(at);
            at += 4;
            at += match kind {
                4 => 4,
                8 => 8 + u64_at(at) as usize,
                other => panic!("the converter wrote metadata of type {other}"),
            };
            metadata.push((key, bytes[start..at].to_vec()));
        }
        let infos_start = at;
        for _ in 0..tensor_count {
            at += 8 + u64_at(at) as usize; // name
            let dims = u32_at(at) as usize;
            at += 4 + 8 * dims + 4 + 8; // dims, type, offset
        }
        let tensor_infos = bytes[infos_start..at].to_vec();
        let data = bytes[at.next_multiple_of(GGUF_ALIGNMENT)..].to_vec();
        GgufParts { metadata, tensor_infos, tensor_count, data }
    })
}

/// candle's default alignment, which the converter uses.
const GGUF_ALIGNMENT: usize = 32;

/// Keys a fuzzed metadata entry may take: crossrank's and candle's own (a second copy of one the
/// tiny GGUF holds is refused as ambiguous), or a fresh one.
const FUZZ_KEYS: [&str; 6] =
    ["fuzz", "crossrank.format_version", "crossrank.max_length", "general.alignment", "tokenizer.ggml.tokens", "crossrank.config_json"];

/// Bytes a filler array (below) may write: enough for just over `MAX_METADATA_VALUES` u8s.
const FUZZ_FILLER_BYTES: u64 = 16 << 20;

/// Little-endian bytes taken from the fuzzer's input (zeros once it runs out).
struct FuzzBytes<'a>(&'a [u8]);

impl FuzzBytes<'_> {
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n_here = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n_here);
        self.0 = rest;
        let mut bytes = head.to_vec();
        bytes.resize(n, 0);
        bytes
    }
    fn byte(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn uint(&mut self, n: usize) -> u64 {
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(&self.take(n));
        u64::from_le_bytes(buf)
    }
}

/// Bytes a value of GGUF type `kind` takes at least (v3: u64 lengths); unknown types take none.
fn gguf_min_size(kind: u32) -> u64 {
    match kind {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 | 8 => 8,
        9 => 12,
        _ => 0,
    }
}

/// Writes one value of GGUF type `kind`, decoded from the fuzzer's bytes:
/// - fixed-size types: their bytes; a string: a length byte, then that many bytes;
/// - an array: an element-type byte (0-15: 13-15 are not GGUF types), then a mode byte: 0 an
///   honest array of (next byte) elements, each decoded the same way (nesting); 1 a length claim
///   of the next 8 bytes, followed by (next byte) honest elements; 2 a filler array of (next 3
///   bytes) minimal elements (zeros, empty strings, empty arrays), at most [`FUZZ_FILLER_BYTES`]:
///   arrays past the metadata cap from a short input; 3 a claim of (next 2 bytes) << 16 elements
///   with none written.
fn fuzz_value(input: &mut FuzzBytes<'_>, kind: u32, depth: usize, out: &mut Vec<u8>) {
    match kind {
        8 => {
            let length = input.byte() as usize;
            out.extend_from_slice(&(length as u64).to_le_bytes());
            out.extend_from_slice(&input.take(length));
        }
        // Nested deeper than the decoder follows: an empty array of u8.
        9 if depth >= 8 => out.extend_from_slice(&[0; 12]),
        9 => {
            let element = u32::from(input.byte() % 16);
            out.extend_from_slice(&element.to_le_bytes());
            let honest = |input: &mut FuzzBytes<'_>, out: &mut Vec<u8>, count: u64| {
                for _ in 0..count {
                    fuzz_value(input, element, depth + 1, out);
                }
            };
            match input.byte() % 4 {
                0 => {
                    let count = u64::from(input.byte());
                    out.extend_from_slice(&count.to_le_bytes());
                    honest(input, out, count);
                }
                1 => {
                    out.extend_from_slice(&input.uint(8).to_le_bytes());
                    let count = u64::from(input.byte());
                    honest(input, out, count);
                }
                2 => {
                    let size = gguf_min_size(element);
                    let count = input.uint(3).min(FUZZ_FILLER_BYTES / size.max(1));
                    out.extend_from_slice(&count.to_le_bytes());
                    // A minimal element is all zeros: a 0, an empty string, an empty u8 array.
                    out.resize(out.len() + (count * size) as usize, 0);
                }
                _ => out.extend_from_slice(&(input.uint(2) << 16).to_le_bytes()),
            }
        }
        _ => out.extend_from_slice(&input.take(gguf_min_size(kind) as usize)),
    }
}

/// The tiny model's GGUF rebuilt around metadata decoded from `data`: a flags byte (bit 0: drop
/// the file's own `crossrank.format_version`; bit 1: the header claims (next byte) more metadata
/// entries than it holds; bit 2: then (next byte) more tensors), then up to 16 entries, each a key byte
/// (see [`FUZZ_KEYS`]), a type byte (0-15) and a value ([`fuzz_value`]). The fuzzed entries come
/// first, then the tiny model's own, its tensor infos and its data.
pub fn gguf_metadata_file(data: &[u8]) -> Vec<u8> {
    let parts = tiny_gguf_parts();
    let mut input = FuzzBytes(data);
    let flags = input.byte();
    let extra = |bit: u8, input: &mut FuzzBytes<'_>| if flags & bit != 0 { u64::from(input.byte()) } else { 0 };
    let (extra_metadata, extra_tensors) = (extra(2, &mut input), extra(4, &mut input));
    let mut entries = Vec::new();
    let mut count = 0u64;
    while !input.0.is_empty() && count < 16 {
        let key = match FUZZ_KEYS[input.byte() as usize % FUZZ_KEYS.len()] {
            "fuzz" => format!("fuzz.{count}"),
            key => key.to_string(),
        };
        entries.extend_from_slice(&(key.len() as u64).to_le_bytes());
        entries.extend_from_slice(key.as_bytes());
        let kind = u32::from(input.byte() % 16);
        entries.extend_from_slice(&kind.to_le_bytes());
        fuzz_value(&mut input, kind, 0, &mut entries);
        count += 1;
    }
    let mut metadata_count = count;
    for (key, entry) in &parts.metadata {
        if flags & 1 == 0 || key != crossrank::gguf::KEY_FORMAT_VERSION {
            entries.extend_from_slice(entry);
            metadata_count += 1;
        }
    }
    let mut file = b"GGUF".to_vec();
    file.extend_from_slice(&3u32.to_le_bytes());
    file.extend_from_slice(&(parts.tensor_count + extra_tensors).to_le_bytes());
    file.extend_from_slice(&(metadata_count + extra_metadata).to_le_bytes());
    file.extend_from_slice(&entries);
    file.extend_from_slice(&parts.tensor_infos);
    file.resize(file.len().next_multiple_of(GGUF_ALIGNMENT), 0);
    file.extend_from_slice(&parts.data);
    file
}

/// Metadata values, array elements included, as `GgufModel::read` bounds them.
fn metadata_values(value: &candle_core::quantized::gguf_file::Value) -> u64 {
    match value {
        candle_core::quantized::gguf_file::Value::Array(values) => 1 + values.iter().map(metadata_values).sum::<u64>(),
        _ => 1,
    }
}

/// A GGUF whose metadata is fuzzed (array types, length claims, nesting, counts; see
/// [`gguf_metadata_file`]) around the tiny model, through `GgufModel::read`, then like
/// [`gguf_loader`]. A file that loads must hold no more metadata than the bound.
pub fn gguf_metadata(data: &[u8]) -> Outcome {
    let file = gguf_metadata_file(data);
    let model = match GgufModel::read("fuzz.gguf", &file, &Device::Cpu) {
        Ok(model) => model,
        Err(error) => return rejected(error),
    };
    // Counted as preflight counts them: each key's value once, and each array element once.
    let values: u64 = model.metadata.values().map(metadata_values).sum();
    assert!(values <= crossrank::gguf::MAX_METADATA_VALUES, "{values} metadata values loaded");
    let _ = (model.precision(), model.source(), model.max_length().map_err(rejected));
    match Reranker::from_gguf_model(&model) {
        Ok(reranker) => exercise(&reranker),
        Err(error) => rejected(error),
    }
}

/// `WeightStore::from_safetensors`; a store that parses is then loaded as the tiny model (its
/// config and tokenizer) and as the micro model, and whatever loads is reranked through
/// `Reranker::from_safetensors`.
pub fn safetensors_loader(data: &[u8]) -> Outcome {
    let device = Device::Cpu;
    let weights = match WeightStore::from_safetensors("model.safetensors", data, &device) {
        Ok(weights) => weights,
        Err(error) => return rejected(error),
    };
    let mut outcomes = Vec::new();
    for (config_json, tokenizer) in [
        (TINY_CONFIG, TokenizerSource::Json(TINY_TOKENIZER)),
        (MICRO_CONFIG.as_bytes(), TokenizerSource::VocabTxt { text: MICRO_VOCAB, lowercase: true }),
    ] {
        let config = Config::from_json("config.json", config_json).expect("the fixed configs are valid");
        // Load the encoder alone first: parsing the 67 KB tokenizer only for stores that fit.
        outcomes.push(match CrossEncoder::load(&weights, &config, QuantizedMatmul::for_device(&device)) {
            Err(error) => rejected(error),
            Ok(_) => match Reranker::from_safetensors(config_json, data, tokenizer, &device) {
                Ok(reranker) => exercise(&reranker),
                Err(error) => rejected(error),
            },
        });
    }
    // Ok when the store loaded as either model, else the tiny model's error.
    if outcomes.contains(&Outcome::Ok) { Outcome::Ok } else { outcomes.swap_remove(0) }
}

/// A `pytorch_model.bin` beside the tiny model's config and vocabulary, loaded as the CLI loads a
/// model directory: candle's pickle reader behind crossrank's guard (claimed sizes checked against
/// the file, panics turned into errors). An input that starts with `PK` is the whole file (a zip);
/// any other input is the pickle itself, put into the tiny checkpoint's zip as its `data.pkl`
/// (with a correct CRC, which a mutated zip almost never has: the pickle reader is reached).
/// Native only: the browser never reads pickles.
pub fn pytorch_loader(data: &[u8]) -> Outcome {
    // candle's pickle reader takes a path: one folder per thread, reused.
    let dir = std::env::temp_dir().join(format!("crossrank-fuzz-pytorch-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("config.json"), TINY_CONFIG).expect("config.json");
    std::fs::write(dir.join("vocab.txt"), TINY_VOCAB).expect("vocab.txt");
    let file = if data.starts_with(b"PK") { data.to_vec() } else { with_pickle(TINY_PYTORCH_BIN, data) };
    std::fs::write(dir.join("pytorch_model.bin"), file).expect("pytorch_model.bin");
    match crossrank::local::load_model(&dir, &Device::Cpu) {
        Ok(reranker) => exercise(&reranker),
        Err(error) => rejected(error),
    }
}

/// The entries of a zip whose entries are stored (not compressed), as torch.save writes them:
/// (name, data), read through the central directory (torch's local headers leave sizes to a data
/// descriptor). `None` when `zip` is not such a file.
pub fn stored_zip_entries(zip: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(zip.get(at..at + 2)?.try_into().ok()?) as usize);
    let u32_at = |at: usize| Some(u32::from_le_bytes(zip.get(at..at + 4)?.try_into().ok()?) as usize);
    let end = (0..zip.len().saturating_sub(21)).rev().find(|&at| zip[at..].starts_with(b"PK\x05\x06"))?;
    let (count, mut at) = (u16_at(end + 10)?, u32_at(end + 16)?);
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        if !zip.get(at..)?.starts_with(b"PK\x01\x02") || u16_at(at + 10)? != 0 {
            return None;
        }
        let (size, name_length, extra_length, comment_length) = (u32_at(at + 20)?, u16_at(at + 28)?, u16_at(at + 30)?, u16_at(at + 32)?);
        let local = u32_at(at + 42)?;
        let name = zip.get(at + 46..at + 46 + name_length)?.to_vec();
        let data_start = local + 30 + u16_at(local + 26)? + u16_at(local + 28)?;
        entries.push((name, zip.get(data_start..data_start + size)?.to_vec()));
        at += 46 + name_length + extra_length + comment_length;
    }
    Some(entries)
}

/// A stored zip of `entries` (local headers with sizes and CRC, central directory, end record).
pub fn stored_zip(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let (mut zip, mut central) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let offset = zip.len() as u32;
        let fields = |out: &mut Vec<u8>| {
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, stored, time, date
            out.extend_from_slice(&crc32(data).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]); // extra length
        };
        zip.extend_from_slice(b"PK\x03\x04");
        fields(&mut zip);
        zip.extend_from_slice(name);
        zip.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02\x14\x00");
        fields(&mut central);
        central.extend_from_slice(&[0; 10]); // comment length, disk, internal and external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let central_offset = zip.len() as u32;
    zip.extend_from_slice(&central);
    zip.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
    zip.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    zip.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    zip.extend_from_slice(&(central.len() as u32).to_le_bytes());
    zip.extend_from_slice(&central_offset.to_le_bytes());
    zip.extend_from_slice(&[0, 0]);
    zip
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// `checkpoint` (a torch.save zip) with its `data.pkl` replaced by `pickle`.
pub fn with_pickle(checkpoint: &[u8], pickle: &[u8]) -> Vec<u8> {
    let mut entries = stored_zip_entries(checkpoint).expect("the tiny checkpoint is a stored zip");
    for (name, data) in &mut entries {
        if name.ends_with(b"/data.pkl") {
            *data = pickle.to_vec();
        }
    }
    stored_zip(&entries)
}

/// `Config::from_json` and `PairTokenizer::from_tokenizer_json` on the same bytes (both parse JSON
/// from the model directory or the GGUF metadata); a tokenizer that loads encodes a pair.
pub fn config_parser(data: &[u8]) -> Outcome {
    let config = match Config::from_json("config.json", data) {
        Ok(config) => {
            assert!(config.hidden_size > 0 && config.num_attention_heads > 0, "{config:?}");
            assert_eq!(config.hidden_size % config.num_attention_heads, 0, "{config:?}");
            assert_eq!(config.num_labels(), 1, "{config:?}");
            assert!(config.head_size() > 0);
            Outcome::Ok
        }
        Err(error) => rejected(error),
    };
    let tokenizer = match PairTokenizer::from_tokenizer_json("tokenizer.json", data) {
        Ok(tokenizer) => {
            let _ = tokenizer.vocab_size();
            let _ = tokenizer.to_json().map_err(rejected);
            for max_length in [0, 3, 5, 16, 512] {
                if let Ok(pairs) = tokenizer.encode_pairs("what causes scurvy", &["Vitamin C deficiency.", ""], max_length) {
                    check_pairs(&pairs, 2, max_length);
                }
            }
            let _ = tokenizer.passage_tokens("Vitamin C deficiency causes scurvy.", usize::MAX).map_err(rejected);
            Outcome::Ok
        }
        Err(error) => rejected(error),
    };
    // A config.json is reported by its config outcome, anything else by the tokenizer's.
    if config == Outcome::Ok { config } else { tokenizer }
}

fn check_pairs(pairs: &[crossrank::tokenize::EncodedPair], passages: usize, max_length: usize) {
    assert_eq!(pairs.len(), passages);
    for pair in pairs {
        assert!(pair.input_ids.len() <= max_length, "{} tokens for max_length {max_length}", pair.input_ids.len());
        assert_eq!(pair.input_ids.len(), pair.token_type_ids.len());
    }
}

/// The input, decoded by [`PairInput::decode`]: options from the first 4 bytes, then the query and
/// up to 8 passages separated by NUL bytes (invalid UTF-8 replaced, so every input is used).
#[derive(Debug)]
pub struct PairInput {
    pub max_length: usize,
    pub options: RerankOptions,
    pub first_stage: Option<Vec<f64>>,
    pub query: String,
    pub passages: Vec<String>,
}

impl PairInput {
    pub fn decode(data: &[u8]) -> Option<Self> {
        if data.len() < 4 {
            return None;
        }
        let (head, text) = data.split_at(4);
        // 0..=599: below the 3 special tokens + 2, inside the model's 512, and beyond it.
        let max_length = u16::from_le_bytes([head[0], head[1]]) as usize % 600;
        let (flags, param) = (head[2], head[3] as usize);
        let text = String::from_utf8_lossy(text);
        let mut parts = text.split('\0').map(str::to_string);
        let query = parts.next().unwrap_or_default();
        let passages: Vec<String> = parts.take(8).collect();
        let windows = (flags & 0b11 != 0).then(|| WindowOptions {
            overlap: param % 80,
            aggregate: match flags & 0b11 {
                1 => Aggregate::Max,
                2 => Aggregate::Mean,
                _ => Aggregate::First,
            },
        });
        let fusion = match (flags >> 2) & 0b11 {
            1 => Some(Fusion::Rrf { k: [0.0, 60.0, -1.0, f32::NAN, f32::INFINITY][param % 5] }),
            2 => Some(Fusion::Weighted { weight: [0.0, 0.5, 1.0, 1.5, f32::NAN][param % 5] }),
            _ => None,
        };
        let options = RerankOptions {
            top_k: (flags & 0x10 != 0).then_some(param % 10),
            max_length: (flags & 0x20 != 0).then_some(max_length),
            batch_size: param % 20,
            windows,
            fusion,
            score_scale: if flags & 0x40 != 0 { ScoreScale::MinMax } else { ScoreScale::Sigmoid },
            threshold: (param % 7 == 6).then_some([0.5, f32::NAN, -1.0][param % 3]),
        };
        let first_stage = (flags & 0x80 != 0)
            .then(|| (0..passages.len() + param % 3).map(|i| if i == param % 11 { f64::NAN } else { i as f64 * 0.5 }).collect());
        Some(Self { max_length, options, first_stage, query, passages })
    }
}

/// The pair tokenizer of the tiny model on arbitrary text and max_length, then (for inputs small
/// enough to keep executions fast) a rerank through the tiny model with fuzzed options.
pub fn pair_tokenizer(data: &[u8]) -> Outcome {
    let Some(input) = PairInput::decode(data) else { return Outcome::Ok };
    let tokenizer = tiny_tokenizer();
    let passages: Vec<&str> = input.passages.iter().map(String::as_str).collect();
    let encoded = match tokenizer.encode_pairs(&input.query, &passages, input.max_length) {
        Ok(pairs) => {
            check_pairs(&pairs, passages.len(), input.max_length);
            Outcome::Ok
        }
        Err(error) => rejected(error),
    };
    for passage in &passages {
        if let Ok(tokens) = tokenizer.passage_tokens(passage, usize::MAX) {
            assert_eq!(tokens.offsets.len(), tokens.word_starts.len());
            assert!(tokens.complete, "passage_tokens stopped early without a bound");
            let chars = passage.chars().count();
            for (start, end) in tokens.offsets {
                assert!(start <= end && end <= chars, "offset ({start}, {end}) in a passage of {chars} characters");
            }
        }
    }
    // The model runs only on small inputs (a few ms each), so that most executions reach it.
    let text_len = input.query.len() + input.passages.iter().map(String::len).sum::<usize>();
    if text_len > 256 || passages.len() > 4 {
        return encoded;
    }
    let reranker = tiny_reranker();
    let request = RerankRequest { query: &input.query, documents: &passages, first_stage: input.first_stage.as_deref() };
    // Reported: the rerank's outcome (the tokenizer's when the input is too large to rerank).
    match reranker.rerank_many(&[request], &input.options) {
        Ok(mut ranked) => {
            assert_eq!(ranked.len(), 1);
            let ranked = ranked.pop().unwrap();
            check_ranked(&ranked, passages.len());
            if let Some(k) = input.options.top_k {
                assert!(ranked.len() <= k);
            }
            for document in &ranked {
                if let Some(window) = document.best_window {
                    let chars = passages[document.index].chars().count();
                    assert!(window.start <= window.end && window.end <= chars, "{window:?} in {chars} characters");
                }
            }
            Outcome::Ok
        }
        Err(error) => rejected(error),
    }
}

/// Replays every file under `dir/<target>/` through its target; returns how many ran. Panics are
/// caught per file so that one report names every failing input.
pub fn run_regressions(dir: &Path) -> usize {
    let mut ran = 0;
    let mut failures = Vec::new();
    for (target, run) in TARGETS {
        let Ok(entries) = std::fs::read_dir(dir.join(target)) else { continue };
        let mut files: Vec<_> = entries.filter_map(|entry| entry.ok().map(|entry| entry.path())).collect();
        files.sort();
        for file in files {
            if !file.is_file() || file.extension().is_some_and(|extension| extension == "md") {
                continue;
            }
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            ran += 1;
            let name = format!("{target}/{}", file.file_name().unwrap_or_default().to_string_lossy());
            match std::panic::catch_unwind(|| run(&data)) {
                Ok(outcome) => println!("{name}: {outcome:?}"),
                Err(panic) => {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{name}: panicked: {message}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} fuzz regression input(s) panicked:\n{}", failures.len(), failures.join("\n"));
    ran
}

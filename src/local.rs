//! Native-only loading from the filesystem (the CLI and tests): a Hugging Face model directory or
//! a crossrank GGUF file. The library proper works on bytes; this module only finds and reads files.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::error::{Error, Result};
use crate::gguf::GgufModel;
use crate::hf::{self, HfDir, TokenizerFiles};
use crate::rerank::Reranker;
use crate::weights::{StoredTensor, WeightStore};

pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io { file: path.display().to_string(), message: e.to_string() })
}

/// The error for a file over its size bound; `what` says what the file is for ("model", "corpus", ...).
pub fn over_limit(path: &Path, limit: u64, what: &str) -> Error {
    Error::Io { file: path.display().to_string(), message: format!("larger than the {limit}-byte limit for a {what} file") }
}

/// Opens `path` to be read within `limit` bytes, the one bounded opener every native reader shares
/// ([`read_bounded`], eval's line reader): a regular file says its size up front and is refused
/// before a byte is read; anything else (a device, FIFO, growing file) yields at most `limit + 1`
/// bytes, so the caller sees that it is over.
pub fn open_bounded(path: &Path, limit: u64, what: &str) -> Result<std::io::Take<std::fs::File>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::Io { file: path.display().to_string(), message: e.to_string() })?;
    if file.metadata().is_ok_and(|meta| meta.is_file() && meta.len() > limit) {
        return Err(over_limit(path, limit, what));
    }
    Ok(file.take(limit.saturating_add(1)))
}

/// Reads at most `limit` bytes of `path` ([`open_bounded`]): a file that holds more is refused by
/// name after `limit + 1` bytes, never read whole.
pub fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_bounded(path, limit, what)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Io { file: path.display().to_string(), message: e.to_string() })?;
    if bytes.len() as u64 > limit {
        return Err(over_limit(path, limit, what));
    }
    Ok(bytes)
}

/// Size bounds for the files a model is loaded from, checked before a byte is read (a regular
/// file says its size; anything else is refused, see [`read_model_file`]).
///
/// Weights (a crossrank GGUF, `model.safetensors`, `pytorch_model.bin`): the largest cross-encoders
/// crossrank runs are 2.2-2.3 GB in f32 (bge-reranker-large, bge-reranker-v2-m3); 4 GiB leaves room
/// and is all that a wasm32 build could address anyway.
pub const MAX_MODEL_FILE_BYTES: u64 = 4 << 30;
/// `tokenizer.json`: XLM-RoBERTa's (the bge rerankers') is 17 MB, the largest in use about 35 MB.
pub const MAX_TOKENIZER_JSON_BYTES: u64 = 64 << 20;
/// `vocab.txt`: multilingual BERT's 120k words are 0.9 MB.
pub const MAX_VOCAB_TXT_BYTES: u64 = 16 << 20;
/// `config.json` and `tokenizer_config.json`: real ones are 1-30 KB.
pub const MAX_CONFIG_JSON_BYTES: u64 = 4 << 20;

/// A model file's size, checked before it is read: it must be a regular file (a device or FIFO has
/// no size to check, and `/dev/zero` never ends) of at most `limit` bytes.
fn check_model_file(path: &Path, limit: u64, what: &str) -> Result<u64> {
    let error = |message: String| Error::Io { file: path.display().to_string(), message };
    let meta = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
    if !meta.is_file() {
        return Err(error(format!("not a regular file: a {what} file must be one (a device or FIFO has no size to check)")));
    }
    if meta.len() > limit {
        return Err(over_limit(path, limit, what));
    }
    Ok(meta.len())
}

/// Reads a model file (weights, config, tokenizer): a regular file of at most `limit` bytes, refused
/// by its size before a byte is read, and read through [`read_bounded`] (which holds if it grows).
pub fn read_model_file(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    check_model_file(path, limit, what)?;
    read_bounded(path, limit, what)
}

/// A crossrank GGUF (or any weights file), at most [`MAX_MODEL_FILE_BYTES`].
pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    read_model_file(path, MAX_MODEL_FILE_BYTES, "model")
}

/// The first of `names` that exists in `dir`.
fn find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|name| dir.join(name)).find(|path| path.is_file())
}

/// Reads a Hugging Face directory: `config.json`, `model.safetensors` (or `pytorch_model.bin`),
/// and `tokenizer.json` (or `vocab.txt` with `tokenizer_config.json`'s `do_lower_case`).
pub fn read_hf_dir(dir: &Path, device: &Device) -> Result<HfDir> {
    if !dir.is_dir() {
        return Err(Error::Io { file: dir.display().to_string(), message: "not a directory".into() });
    }
    let config_json = read_model_file(&dir.join(hf::CONFIG_JSON), MAX_CONFIG_JSON_BYTES, hf::CONFIG_JSON)?;
    let weights = read_weights(dir, device)?;
    let optional = |name: &str, limit: u64| find(dir, &[name]).map(|path| read_model_file(&path, limit, name)).transpose();
    let (tokenizer_json, vocab_txt, tokenizer_config_json) = (
        optional(hf::TOKENIZER_JSON, MAX_TOKENIZER_JSON_BYTES)?,
        optional(hf::VOCAB_TXT, MAX_VOCAB_TXT_BYTES)?,
        optional(hf::TOKENIZER_CONFIG_JSON, MAX_CONFIG_JSON_BYTES)?,
    );
    let files = TokenizerFiles {
        tokenizer_json: tokenizer_json.as_deref(),
        vocab_txt: vocab_txt.as_deref(),
        tokenizer_config_json: tokenizer_config_json.as_deref(),
    };
    HfDir::from_files(config_json, weights, files, |name| dir.join(name).display().to_string())
}

/// Loads a model from a Hugging Face directory or a crossrank `.gguf` file.
pub fn load_model(path: &Path, device: &Device) -> Result<Reranker> {
    if path.is_dir() {
        return load_hf_dir(path, device);
    }
    let bytes = read_model(path)?;
    Reranker::from_gguf_model(&GgufModel::read(&path.display().to_string(), &bytes, device)?)
}

pub fn load_hf_dir(dir: &Path, device: &Device) -> Result<Reranker> {
    Reranker::from_hf_dir(read_hf_dir(dir, device)?)
}

fn read_weights(dir: &Path, device: &Device) -> Result<WeightStore> {
    if let Some(path) = find(dir, &[hf::SAFETENSORS]) {
        let file = path.display().to_string();
        WeightStore::from_safetensors(&file, &read_model(&path)?, device)
    } else if let Some(path) = find(dir, &[hf::PYTORCH_BIN]) {
        let file = path.display().to_string();
        let tensors = read_pickle(&path, &file)?;
        let tensors = tensors
            .into_iter()
            .map(|(name, tensor)| Ok((name, StoredTensor::Float(tensor.to_device(device)?))))
            .collect::<Result<_>>()?;
        Ok(WeightStore::new(file, tensors, device))
    } else {
        let message = format!("no {} or {} in the model directory", hf::SAFETENSORS, hf::PYTORCH_BIN);
        Err(Error::Io { file: dir.display().to_string(), message })
    }
}

/// A `pytorch_model.bin` through candle's pickle reader, which can panic on a crafted file (its
/// unpickler indexes and unwraps what the file says) or try to allocate whatever size a tensor
/// claims. The claimed sizes are checked against the file first, and a panic becomes a named
/// error instead of ending the process.
fn read_pickle(path: &Path, file: &str) -> Result<Vec<(String, candle_core::Tensor)>> {
    // candle's messages carry a backtrace after their first line.
    let unreadable = |detail: String| {
        Error::format(file, format!("not a readable PyTorch checkpoint ({})", detail.lines().next().unwrap_or_default().trim()))
    };
    let panicked = |_| unreadable("its pickle is malformed: the reader failed on it".into());
    // candle opens the file itself: its size is checked here, as read_model checks the others.
    let file_bytes = check_model_file(path, MAX_MODEL_FILE_BYTES, "model")?;
    let infos = catch_quietly(|| candle_core::pickle::read_pth_tensor_info(path, false, None))
        .map_err(panicked)?
        .map_err(|e| unreadable(e.to_string()))?;
    for info in &infos {
        let bytes = info
            .layout
            .dims()
            .iter()
            .try_fold(info.dtype.size_in_bytes() as u64, |acc, &dim| acc.checked_mul(dim as u64))
            .filter(|&bytes| bytes <= file_bytes);
        if bytes.is_none() {
            return Err(Error::format(
                file,
                format!("tensor `{}` claims shape {:?}, more data than the {file_bytes}-byte file holds", info.name, info.layout.dims()),
            ));
        }
    }
    catch_quietly(|| candle_core::pickle::read_all(path)).map_err(panicked)?.map_err(|e| unreadable(e.to_string()))
}

/// `f()`, with a panic caught and returned as `Err`, and not printed: the default hook's "thread
/// 'main' panicked at ..." on stderr would contradict the named error the caller reports. The
/// process's hook is wrapped once and stays silent only on this thread while `f` runs, so a panic
/// anywhere else is reported as before.
fn catch_quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    thread_local! {
        static QUIET: Cell<bool> = const { Cell::new(false) };
    }
    static WRAP_HOOK: std::sync::Once = std::sync::Once::new();
    WRAP_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was_quiet = QUIET.with(|quiet| quiet.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|quiet| quiet.set(was_quiet));
    result
}

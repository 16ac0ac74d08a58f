//! The native command-line tool: score, rerank, convert, info, eval and bench.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::Device;
use clap::{Parser, Subcommand};
use crossrank::gguf::{self, GgufModel, Precision};
use crossrank::local::{load_model, read_hf_dir};
use crossrank::{Error, RerankRequest, Result};
use ranking::RankingArgs;
use serde_json::json;
use sha2::{Digest, Sha256};

mod bench_command;
mod candidates;
mod device;
mod eval_command;
mod json_candidates;
mod ranking;

#[derive(Parser)]
#[command(name = "crossrank", version, about = "A BERT cross-encoder reranker: same scores natively and in the browser.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// A Hugging Face model directory (config.json, model.safetensors, tokenizer.json) or a crossrank .gguf file.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    device: device::DeviceArg,
    #[command(flatten)]
    ranking: RankingArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Reads JSON lines {"query": …, "document": …} from stdin and prints one {"logit", "score"} per line.
    Score {
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Reads candidates from stdin (a JSON array of strings, or one per line) and prints them ranked, as JSON.
    Rerank {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        query: String,
        /// Keep only the best K.
        #[arg(long)]
        top_k: Option<usize>,
        /// Read candidates from this file instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// auto: a JSON array when the input starts with `[`, else one candidate per line; lines
        /// or json force one (lines for a list whose first candidate starts with `[`).
        #[arg(long, value_enum, default_value = "auto")]
        input_format: candidates::InputFormat,
    },
    /// Converts a Hugging Face cross-encoder directory into one crossrank GGUF file.
    Convert {
        #[arg(long)]
        model: PathBuf,
        /// f32, f16, q8_0 or q4_0.
        #[arg(long, default_value = "q8_0")]
        dtype: String,
        #[arg(long)]
        out: PathBuf,
        /// Recorded in the file, e.g. `cross-encoder/ms-marco-MiniLM-L-4-v2@<revision>`; defaults to the directory name.
        #[arg(long)]
        source: Option<String>,
        /// The max_length calls get by default, recorded in the file; defaults to the directory's
        /// `tokenizer_config.json` `model_max_length` when that is below the position embeddings.
        #[arg(long)]
        max_length: Option<usize>,
    },
    /// Prints what a crossrank GGUF holds: precision, tensors, bytes, config, source, sha256.
    Info { model: PathBuf },
    /// Evaluates reranking on a BEIR-style dataset (nDCG@10, MRR@10, Recall@10/100, P@1).
    Eval(eval_command::EvalArgs),
    /// Times scoring on fixed workloads and prints a table.
    Bench(bench_command::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("crossrank: error [{}]: {}", error.code(), error.detail());
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Score { model } => score(&model),
        Command::Rerank { model, query, top_k, input, input_format } => rerank(&model, &query, top_k, input.as_deref(), input_format),
        Command::Convert { model, dtype, out, source, max_length } => convert(&model, &dtype, &out, source, max_length),
        Command::Info { model } => info(&model),
        Command::Eval(args) => eval_command::run(&args),
        Command::Bench(args) => bench_command::run(&args),
    }
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::Io { file: "<stdout>".into(), message: e.to_string() }
}

/// The longest line `score` takes (a `rerank` input's bound is `candidates::MAX_INPUT_BYTES`):
/// endless or huge input (`/dev/zero`) ends with a named error instead of growing until killed.
const MAX_SCORE_LINE_BYTES: u64 = 64 << 20;
/// `score` prints each batch as soon as it is scored: at most this many pairs wait in memory.
const SCORE_BATCH_PAIRS: usize = 64;

fn score(args: &ModelArgs) -> Result<()> {
    let reranker = load_model(&args.model, &args.device.open()?)?;
    let options = args.ranking.options(None)?;
    let mut input = std::io::stdin().lock();
    let mut out = std::io::stdout().lock();
    let mut pending: Vec<(String, String)> = Vec::new();
    let mut any = false;
    // Consecutive lines with the same query are scored together, sharing batches; each batch is
    // printed (and flushed) when the query changes or it is full, so output streams.
    let flush = |pending: &mut Vec<(String, String)>, out: &mut std::io::StdoutLock| -> Result<()> {
        if let Some((query, _)) = pending.first() {
            let documents: Vec<&str> = pending.iter().map(|(_, d)| d.as_str()).collect();
            for logit in reranker.logits_with(query, &documents, &options)? {
                writeln!(out, "{}", json!({ "logit": logit, "score": crossrank::sigmoid(logit) })).map_err(stdout_error)?;
            }
            out.flush().map_err(stdout_error)?;
        }
        pending.clear();
        Ok(())
    };
    let mut number = 0;
    let mut line = Vec::new();
    loop {
        number += 1;
        line.clear();
        let read = (&mut input).take(MAX_SCORE_LINE_BYTES + 1).read_until(b'\n', &mut line);
        read.map_err(|e| Error::Io { file: "<stdin>".into(), message: e.to_string() })?;
        if line.is_empty() {
            break;
        }
        if line.len() as u64 > MAX_SCORE_LINE_BYTES {
            return Err(Error::invalid(format!("line {number} is longer than {} MiB", MAX_SCORE_LINE_BYTES >> 20)));
        }
        let text = std::str::from_utf8(&line).map_err(|_| Error::invalid(format!("line {number} is not UTF-8")))?;
        if text.trim().is_empty() {
            continue;
        }
        #[derive(serde::Deserialize)]
        struct Pair {
            query: String,
            document: String,
        }
        let pair: Pair = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("line {number}: expected {{\"query\": string, \"document\": string}} ({e})")))?;
        if pending.first().is_some_and(|(query, _)| *query != pair.query) || pending.len() == SCORE_BATCH_PAIRS {
            flush(&mut pending, &mut out)?;
        }
        pending.push((pair.query, pair.document));
        any = true;
    }
    if !any {
        return Err(Error::invalid("no pairs on stdin"));
    }
    flush(&mut pending, &mut out)
}

fn rerank(args: &ModelArgs, query: &str, top_k: Option<usize>, input: Option<&Path>, format: candidates::InputFormat) -> Result<()> {
    let options = args.ranking.options(top_k)?;
    let reranker = load_model(&args.model, &args.device.open()?)?;
    // Scoring reads a bounded prefix of each candidate (windows too, at most 256 of them): only that is held.
    let keep = |prefix: &str| reranker.prefix_suffices(query, prefix, &options);
    let mut candidates = match input {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|e| Error::Io { file: path.display().to_string(), message: e.to_string() })?;
            candidates::read(std::io::BufReader::with_capacity(candidates::READ_BYTES, file), &path.display().to_string(), &keep, format)?
        }
        None => candidates::read(std::io::BufReader::with_capacity(candidates::READ_BYTES, std::io::stdin().lock()), "<stdin>", &keep, format)?,
    };
    let ranked = {
        let documents: Vec<&str> = candidates.texts.iter().map(String::as_str).collect();
        let request = RerankRequest { query, documents: &documents, first_stage: candidates.first_stage.as_deref() };
        reranker.rerank_many(&[request], &options)?.pop().unwrap_or_default()
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    candidates.write_ranking(&ranked, &mut out)?;
    out.flush().map_err(stdout_error)
}

fn convert(model: &Path, dtype: &str, out: &Path, source: Option<String>, max_length: Option<usize>) -> Result<()> {
    let precision = Precision::parse(dtype)?;
    check_out(model, out)?;
    let dir = read_hf_dir(model, &Device::Cpu)?;
    let source = source.unwrap_or_else(|| model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let bytes = dir.convert(&source, max_length, precision)?;
    write_atomically(out, &bytes)?;
    // The checksum says which file this run wrote: when converts race to one --out, the last to
    // finish wins, and `crossrank info` shows whose file is there.
    eprintln!("wrote {} ({} bytes, {}, sha256 {})", out.display(), bytes.len(), precision.name(), hex(&Sha256::digest(&bytes)));
    Ok(())
}

/// Refuses an `--out` that convert must not replace, before the model is read. The output is
/// renamed over `--out`, which replaces whatever is there: only a regular file (or nothing) may be
/// there, and never in the model's own directory, whose files convert reads (or may need later).
fn check_out(model: &Path, out: &Path) -> Result<()> {
    check_out_is_replaceable(out)?;
    if out.file_name().is_none() {
        return Err(Error::invalid(format!("--out {} names no file", out.display())));
    }
    let model = model.canonicalize().ok();
    let out_dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).canonicalize().ok();
    if let (Some(model), Some(out_dir)) = (model, out_dir) {
        if out_dir.starts_with(&model) || out.canonicalize().is_ok_and(|o| o == model) {
            return Err(Error::invalid(format!(
                "--out {} is inside the model directory {}, which convert reads: write the GGUF elsewhere",
                out.display(),
                model.display()
            )));
        }
    }
    Ok(())
}

/// `--out` is absent or a regular file. A symbolic link is refused, not followed: the rename would
/// replace the link itself and leave its target as it was, which is not what a link there asks for.
fn check_out_is_replaceable(out: &Path) -> Result<()> {
    let kind = match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::Io { file: out.display().to_string(), message: e.to_string() }),
        Ok(meta) if meta.is_file() => return Ok(()),
        Ok(meta) => file_kind(&meta.file_type()),
    };
    let hint = match kind {
        "a directory" => "give the path of the .gguf file to write",
        "a symbolic link" => "the output is renamed over --out, which would replace the link, not write its target; give the target's own path",
        _ => "the output is renamed over --out, which would replace it; convert writes only regular files",
    };
    Err(Error::invalid(format!("--out {} is {kind}: {hint}", out.display())))
}

fn file_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        } else if kind.is_fifo() {
            return "a FIFO";
        } else if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Writes `bytes` to a new temporary file beside `out`, flushes it to disk and renames it over
/// `out`: a crash or kill at any moment leaves either the old file or the whole new one, never a
/// part. The temporary name is unique and created with `O_CREAT | O_EXCL`, so a file or link
/// planted beside `out` is never followed or reused, two converts to one `--out` never share a
/// temporary file, and the name is short (29 bytes) whatever the length of `out`'s own name.
/// A kill leaves the temporary `.crossrank-*.partial` file behind.
fn write_atomically(out: &Path, bytes: &[u8]) -> Result<()> {
    let io = |file: &Path, e: std::io::Error| Error::Io { file: file.display().to_string(), message: e.to_string() };
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(".crossrank-").suffix(".partial").rand_bytes(10);
    // 0666 less the umask, as `File::create` gives, not tempfile's private 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut temp = builder.tempfile_in(dir).map_err(|e| io(dir, e))?;
    temp.write_all(bytes).and_then(|()| temp.as_file().sync_all()).map_err(|e| io(temp.path(), e))?;
    // Checked again: something else may have been put at --out while the model was converted.
    check_out_is_replaceable(out)?;
    // On any error the temporary file is removed when `temp` (or the error holding it) drops.
    temp.persist(out).map_err(|e| io(out, e.error))?;
    // The rename is durable once the directory is synced too.
    if let Ok(directory) = std::fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

fn info(path: &Path) -> Result<()> {
    let bytes = crossrank::local::read_model(path)?;
    let model = GgufModel::read(&path.display().to_string(), &bytes, &Device::Cpu)?;
    let config: serde_json::Value = serde_json::from_str(&model.config_json).map_err(|e| Error::config(gguf::KEY_CONFIG, e.to_string()))?;
    let mut dtypes = std::collections::BTreeMap::<String, usize>::new();
    for name in model.weights.names() {
        let kind = match model.weights.get(name) {
            Some(crossrank::weights::StoredTensor::Quantized(q)) => format!("{:?}", q.dtype()),
            _ => "F32".to_string(),
        };
        *dtypes.entry(kind).or_default() += 1;
    }
    let summary = json!({
        "file": path.display().to_string(),
        "bytes": bytes.len(),
        "sha256": hex(&Sha256::digest(&bytes)),
        "precision": model.precision(),
        "source": model.source(),
        "default_max_length": model.max_length()?.unwrap_or(config["max_position_embeddings"].as_u64().unwrap_or(0) as usize),
        "tensors": model.weights.names().count(),
        // The kernel a quantised model's `int8` matmul runs on here (the default on AVX2 CPUs).
        "int8_kernel": crossrank::Int8Kernel::detect().name(),
        "tensor_dtypes": dtypes,
        "config": {
            "model_type": config.get("model_type").cloned().unwrap_or_else(|| "bert".into()),
            "num_hidden_layers": config["num_hidden_layers"], "hidden_size": config["hidden_size"],
            "num_attention_heads": config["num_attention_heads"], "intermediate_size": config["intermediate_size"],
            "vocab_size": config["vocab_size"], "max_position_embeddings": config["max_position_embeddings"],
        },
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::Compute(e.to_string()))?;
    writeln!(std::io::stdout().lock(), "{text}").map_err(stdout_error)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

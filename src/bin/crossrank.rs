//! The native command-line tool: score, rerank, convert, info, eval and bench.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::Device;
use clap::{Parser, Subcommand};
use crossrank::gguf::{self, GgufModel, Precision};
use crossrank::local::{load_model, read, read_hf_dir};
use crossrank::{Error, RerankRequest, Result};
use ranking::RankingArgs;
use serde_json::json;
use sha2::{Digest, Sha256};

#[path = "../cli/eval.rs"]
mod eval_command;
#[path = "../cli/bench.rs"]
mod bench_command;
#[path = "../cli/device.rs"]
mod device;
#[path = "../cli/ranking.rs"]
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
        Command::Rerank { model, query, top_k, input } => rerank(&model, &query, top_k, input.as_deref()),
        Command::Convert { model, dtype, out, source, max_length } => convert(&model, &dtype, &out, source, max_length),
        Command::Info { model } => info(&model),
        Command::Eval(args) => eval_command::run(&args),
        Command::Bench(args) => bench_command::run(&args),
    }
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::Io { file: "<stdout>".into(), message: e.to_string() }
}

/// The most a `rerank` input (one candidate list) may hold, and the longest line `score` takes:
/// endless or huge input (`/dev/zero`) ends with a named error instead of growing until killed.
const MAX_RERANK_INPUT_BYTES: u64 = 256 << 20;
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

/// A `rerank` input, up to MAX_RERANK_INPUT_BYTES: a JSON array (of strings, or {"text": …,
/// "score": …} objects where `score` is the first stage's), or else one candidate per non-empty
/// line. Read as it streams in, so each candidate is held once (never also as the input's text):
/// a 50 MB document costs 50 MB, not 200. First-stage scores come back only if every candidate has one.
fn read_candidates(reader: impl BufRead, name: &str) -> Result<(Vec<String>, Option<Vec<f32>>)> {
    let io = |e: std::io::Error| Error::Io { file: name.into(), message: e.to_string() };
    let mut reader = reader.take(MAX_RERANK_INPUT_BYTES + 1);
    let too_long = |reader: &std::io::Take<_>| {
        (reader.limit() == 0).then(|| {
            Error::invalid(format!(
                "{name} holds more than {} MiB of candidates: rerank reads one candidate list (split the input)",
                MAX_RERANK_INPUT_BYTES >> 20
            ))
        })
    };
    // Whether it is JSON: the first byte that is not whitespace (blank lines before it are skipped).
    let json = loop {
        let buffer = reader.fill_buf().map_err(io)?;
        match buffer.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(first) => break buffer[first] == b'[',
            None if buffer.is_empty() => break false,
            None => {
                let whole_lines = buffer.iter().rposition(|&b| b == b'\n').map_or(0, |last| last + 1);
                if whole_lines == 0 {
                    break false; // a long run of spaces without a newline: a (blank) line of its own
                }
                reader.consume(whole_lines);
            }
        }
    };
    if json {
        let values: Vec<serde_json::Value> = serde_json::from_reader(&mut reader).map_err(|e| {
            too_long(&reader).unwrap_or_else(|| {
                if e.is_io() { io(std::io::Error::other(e)) } else { Error::invalid(format!("candidates look like JSON but do not parse: {e}")) }
            })
        })?;
        return candidates_from_json(values);
    }
    let mut texts = Vec::new();
    let mut line = Vec::new();
    while reader.read_until(b'\n', &mut line).map_err(io)? > 0 {
        if let Some(error) = too_long(&reader) {
            return Err(error);
        }
        // `str::lines`' line ends: \n or \r\n.
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        let mut text = String::from_utf8(std::mem::take(&mut line)).map_err(|_| Error::invalid(format!("{name} is not UTF-8")))?;
        if !text.trim().is_empty() {
            text.shrink_to_fit();
            texts.push(text);
        }
    }
    Ok((texts, None))
}

fn candidates_from_json(values: Vec<serde_json::Value>) -> Result<(Vec<String>, Option<Vec<f32>>)> {
    let mut texts = Vec::with_capacity(values.len());
    let mut scores = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        match value {
            serde_json::Value::String(text) => texts.push(text),
            serde_json::Value::Object(mut map) => {
                let Some(serde_json::Value::String(text)) = map.remove("text") else {
                    return Err(Error::invalid(format!("candidate {index} is an object without a string \"text\"")));
                };
                texts.push(text);
                if let Some(score) = map.get("score") {
                    let score = score.as_f64().ok_or_else(|| Error::invalid(format!("candidate {index}: \"score\" is not a number")))?;
                    scores.push(score as f32);
                }
            }
            other => return Err(Error::invalid(format!("candidate {index} is {other}, not a string"))),
        }
    }
    let scores = (scores.len() == texts.len() && !texts.is_empty()).then_some(scores);
    Ok((texts, scores))
}

/// One line of `rerank`'s output: the ranked document and its text, written straight to stdout
/// (a long document is not copied into a JSON value first).
#[derive(serde::Serialize)]
struct OutputRow<'a> {
    #[serde(flatten)]
    ranked: &'a crossrank::RankedDocument,
    document: &'a str,
}

fn rerank(args: &ModelArgs, query: &str, top_k: Option<usize>, input: Option<&Path>) -> Result<()> {
    let options = args.ranking.options(top_k)?;
    let (candidates, first_stage) = match input {
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|e| Error::Io { file: path.display().to_string(), message: e.to_string() })?;
            read_candidates(std::io::BufReader::new(file), &path.display().to_string())?
        }
        None => read_candidates(std::io::stdin().lock(), "<stdin>")?,
    };
    let reranker = load_model(&args.model, &args.device.open()?)?;
    let documents: Vec<&str> = candidates.iter().map(String::as_str).collect();
    let request = RerankRequest { query, documents: &documents, first_stage: first_stage.as_deref() };
    let ranked = reranker.rerank_many(&[request], &options)?.pop().unwrap_or_default();
    let rows: Vec<OutputRow> = ranked.iter().map(|r| OutputRow { ranked: r, document: documents[r.index] }).collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, &rows).map_err(|e| stdout_error(e.into()))?;
    writeln!(out).and_then(|()| out.flush()).map_err(stdout_error)
}

fn convert(model: &Path, dtype: &str, out: &Path, source: Option<String>, max_length: Option<usize>) -> Result<()> {
    let precision = Precision::parse(dtype)?;
    refuse_input_as_output(model, out)?;
    let dir = read_hf_dir(model, &Device::Cpu)?;
    let source = source.unwrap_or_else(|| model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
    let bytes = dir.convert(&source, max_length, precision).map_err(|e| match e {
        Error::Config { file, message } if file == "config.json" => Error::Config { file: model.join(file).display().to_string(), message },
        other => other,
    })?;
    write_atomically(out, &bytes)?;
    eprintln!("wrote {} ({} bytes, {})", out.display(), bytes.len(), precision.name());
    Ok(())
}

/// The files `convert` reads from a model directory: `--out` must never be one of them.
const MODEL_INPUTS: [&str; 6] = ["config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "vocab.txt", "tokenizer_config.json"];

fn refuse_input_as_output(model: &Path, out: &Path) -> Result<()> {
    if out.is_dir() {
        return Err(Error::invalid(format!("--out {} is a directory; give the path of the .gguf file to write", out.display())));
    }
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let same_dir = match (parent.canonicalize(), model.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if same_dir && MODEL_INPUTS.contains(&name.as_str()) {
        return Err(Error::invalid(format!(
            "--out {} is one of the model's own files, which convert reads: write the GGUF elsewhere",
            out.display()
        )));
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `out`, flushes it to disk and renames it over `out`:
/// a crash or kill at any moment leaves either the old file or the whole new one, never a part.
fn write_atomically(out: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |file: &Path, e: std::io::Error| Error::Io { file: file.display().to_string(), message: e.to_string() };
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = out.file_name().ok_or_else(|| Error::invalid(format!("--out {} names no file", out.display())))?;
    let temp = dir.join(format!(".{}.crossrank-partial", name.to_string_lossy()));
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(io(&temp, e));
    }
    if let Err(e) = std::fs::rename(&temp, out) {
        let _ = std::fs::remove_file(&temp);
        return Err(io(out, e));
    }
    // The rename is durable once the directory is synced too.
    if let Ok(directory) = std::fs::File::open(dir) {
        let _ = directory.sync_all();
    }
    Ok(())
}

fn info(path: &Path) -> Result<()> {
    let bytes = read(path)?;
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

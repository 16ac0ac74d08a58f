//! `crossrank bench`: times scoring on fixed workloads (real SciFact queries and their BM25
//! candidates) and prints a table that BENCHMARKS.md quotes.

use std::path::PathBuf;
use std::time::Instant;

use crossrank::local::{load_model, read};
use crossrank::{Error, RerankOptions, Result, DEFAULT_BATCH_SIZE};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Models to time (HF directories or .gguf files).
    #[arg(long, required = true)]
    model: Vec<PathBuf>,
    /// A workload file: JSON {"query": string, "documents": [string]}.
    #[arg(long, required = true)]
    workload: Vec<PathBuf>,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 10)]
    repeat: usize,
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    #[arg(long)]
    max_length: Option<usize>,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

#[derive(serde::Deserialize)]
struct Workload {
    query: String,
    documents: Vec<String>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    println!("int8 kernel: {}\n", crossrank::Int8Kernel::detect().name());
    println!("| model | workload | pairs | median ms | min ms | max ms | ms/pair |\n|---|---|---|---|---|---|---|");
    let device = args.device.open()?; // once: a CUDA device is a context, not a name
    for model_path in &args.model {
        let reranker = load_model(model_path, &device)?;
        for workload_path in &args.workload {
            let workload: Workload = serde_json::from_slice(&read(workload_path)?)
                .map_err(|e| Error::invalid(format!("{}: {e}", workload_path.display())))?;
            let documents: Vec<&str> = workload.documents.iter().map(String::as_str).collect();
            let options = RerankOptions { max_length: args.max_length, batch_size: args.batch_size, ..RerankOptions::default() };
            reranker.rerank(&workload.query, &documents, &options)?;
            let mut times: Vec<f64> = (0..args.repeat.max(1))
                .map(|_| {
                    let start = Instant::now();
                    reranker.rerank(&workload.query, &documents, &options).map(|_| start.elapsed().as_secs_f64() * 1e3)
                })
                .collect::<Result<_>>()?;
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            println!(
                "| {} | {} | {} | {median:.1} | {:.1} | {:.1} | {:.2} |",
                model_path.display(),
                workload_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                documents.len(),
                times[0],
                times[times.len() - 1],
                median / documents.len() as f64
            );
        }
    }
    Ok(())
}

//! `crossrank eval`: reranks a first stage's candidates on a BEIR-style dataset, or scores
//! precomputed TREC runs (e.g. PyTorch's), with the same metric code for every system.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crossrank::eval::{evaluate, Metrics, Qrels, Run};
use crossrank::local::{load_model, read};
use crossrank::{Error, Fusion, OptionValues, Result};

#[derive(clap::Args)]
pub struct EvalArgs {
    /// corpus.jsonl: {"_id", "title", "text"} per line.
    #[arg(long)]
    corpus: PathBuf,
    /// queries.jsonl: {"_id", "text"} per line.
    #[arg(long)]
    queries: PathBuf,
    /// qrels TSV with a header: query-id, corpus-id, score.
    #[arg(long)]
    qrels: PathBuf,
    /// First-stage candidates TSV with a header: query-id, corpus-id, rank[, score].
    #[arg(long)]
    candidates: PathBuf,
    /// Rerank the candidates with this model (HF directory or .gguf); repeat to compare several.
    #[arg(long)]
    model: Vec<PathBuf>,
    /// Score precomputed TREC run files (query Q0 doc rank score name); repeat for several.
    #[arg(long)]
    run: Vec<PathBuf>,
    /// Rerank only the first N candidates of each query (the rest keep their first-stage order below them).
    #[arg(long, default_value_t = 100)]
    depth: usize,
    #[command(flatten)]
    scoring: super::ranking::ScoringArgs,
    /// The fusions each model is also reported with (weighted needs first-stage scores in the candidates).
    #[command(flatten)]
    fusion: super::ranking::FusionArgs,
    /// Write each model's run (TREC format) into this directory.
    #[arg(long)]
    write_runs: Option<PathBuf>,
    /// Lowest grade the binary metrics (MRR@10, recall, P@1) count as relevant; nDCG always uses
    /// the grades. 1 for BEIR's binary sets; TREC Deep Learning's convention is 2.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    min_relevance: u32,
    /// Print a Markdown table instead of JSON lines.
    #[arg(long)]
    markdown: bool,
    #[command(flatten)]
    device: super::device::DeviceArg,
}

fn lines(path: &Path) -> Result<Vec<String>> {
    let text = String::from_utf8(read(path)?).map_err(|_| Error::invalid(format!("{} is not UTF-8", path.display())))?;
    Ok(text.lines().map(str::to_string).collect())
}

fn bad_line(path: &Path, number: usize, what: &str) -> Error {
    Error::invalid(format!("{}:{}: {what}", path.display(), number + 1))
}

/// `_id` → text from a BEIR JSON-lines file; documents are `title + " " + text`, trimmed (BEIR's rerank recipe).
fn read_texts(path: &Path, with_title: bool) -> Result<HashMap<String, String>> {
    let mut texts = HashMap::new();
    for (number, line) in lines(path)?.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| bad_line(path, number, &e.to_string()))?;
        let field = |name: &str| value.get(name).and_then(|v| v.as_str()).unwrap_or("").to_string();
        let id = value.get("_id").and_then(|v| v.as_str()).ok_or_else(|| bad_line(path, number, "no \"_id\""))?;
        let text = if with_title { format!("{} {}", field("title"), field("text")).trim().to_string() } else { field("text") };
        texts.insert(id.to_string(), text);
    }
    Ok(texts)
}

/// The rows of a BEIR TSV after its header, which must be there (`query-id\tcorpus-id\t…`): a file
/// without one would silently lose its first row. An empty file is an error, not zero metrics.
fn read_tsv(path: &Path, header: &str) -> Result<Vec<Vec<String>>> {
    let lines = lines(path)?;
    let Some(first) = lines.first().filter(|line| !line.trim().is_empty()) else {
        return Err(Error::invalid(format!("{} is empty (expected the header `{header}` and rows)", path.display())));
    };
    if !first.trim().to_ascii_lowercase().starts_with("query-id") {
        return Err(bad_line(path, 0, &format!("expected the header `{header}`, found `{}`: is the header missing?", first.trim())));
    }
    let rows: Vec<Vec<String>> =
        lines.iter().skip(1).filter(|l| !l.trim().is_empty()).map(|l| l.split('\t').map(str::to_string).collect()).collect();
    if rows.is_empty() {
        return Err(Error::invalid(format!("{} has a header but no rows", path.display())));
    }
    Ok(rows)
}

fn read_qrels(path: &Path) -> Result<Qrels> {
    let mut qrels = Qrels::new();
    for (number, row) in read_tsv(path, "query-id\tcorpus-id\tscore")?.into_iter().enumerate() {
        let [query, doc, grade] = row.as_slice() else { return Err(bad_line(path, number + 1, "expected 3 columns")) };
        let grade: i64 = grade.trim().parse().map_err(|_| bad_line(path, number + 1, "grade is not an integer"))?;
        let grade = u32::try_from(grade).map_err(|_| bad_line(path, number + 1, &format!("grade {grade} is negative or too large (grades are 0, 1, 2, …)")))?;
        if qrels.entry(query.clone()).or_default().insert(doc.clone(), grade).is_some() {
            return Err(bad_line(path, number + 1, &format!("document `{doc}` is judged twice for query `{query}`")));
        }
    }
    Ok(qrels)
}

/// Candidates in first-stage order (sorted by the rank column), with the first-stage scores when
/// the file has a fourth column.
fn read_candidates(path: &Path) -> Result<(Run, HashMap<String, Vec<f64>>)> {
    let mut ranked: HashMap<String, Vec<(usize, String, Option<f64>)>> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for (number, row) in read_tsv(path, "query-id\tcorpus-id\trank[\tscore]")?.into_iter().enumerate() {
        if row.len() < 3 {
            return Err(bad_line(path, number + 1, "expected query-id, corpus-id, rank"));
        }
        let rank: usize = row[2].trim().parse().map_err(|_| bad_line(path, number + 1, "rank is not an integer"))?;
        let score = row.get(3).and_then(|s| s.trim().parse().ok());
        // A candidate listed twice would be counted twice (nDCG@10 above 1).
        if !seen.insert((row[0].clone(), row[1].clone())) {
            return Err(bad_line(path, number + 1, &format!("document `{}` is a candidate twice for query `{}`", row[1], row[0])));
        }
        ranked.entry(row[0].clone()).or_default().push((rank, row[1].clone(), score));
    }
    let mut run = Run::new();
    let mut scores = HashMap::new();
    for (query, mut docs) in ranked {
        docs.sort_by_key(|(rank, _, _)| *rank);
        if docs.iter().all(|(_, _, score)| score.is_some()) {
            scores.insert(query.clone(), docs.iter().map(|(_, _, score)| score.unwrap_or(0.0)).collect());
        }
        run.insert(query, docs.into_iter().map(|(_, doc, _)| doc).collect());
    }
    Ok((run, scores))
}

/// A TREC run (`query Q0 doc rank score name`) applied like a reranker: the first `depth`
/// candidates of each query are ordered by the run's scores (descending, ties in first-stage
/// order) and the rest keep their first-stage order, exactly as `--model` reranking does.
fn rerank_with_run(path: &Path, candidates: &Run, depth: usize) -> Result<Run> {
    let mut scores: HashMap<(String, String), f64> = HashMap::new();
    for (number, line) in lines(path)?.iter().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 {
            return Err(bad_line(path, number, "expected `query Q0 doc rank score [name]`"));
        }
        let score: f64 = fields[4].parse().map_err(|_| bad_line(path, number, "score is not a number"))?;
        scores.insert((fields[0].to_string(), fields[2].to_string()), score);
    }
    candidates
        .iter()
        .map(|(query, docs)| {
            let (head, tail) = docs.split_at(depth.min(docs.len()));
            let mut scored = head
                .iter()
                .map(|doc| {
                    let score = scores.get(&(query.clone(), doc.clone())).ok_or_else(|| {
                        Error::invalid(format!("{}: no score for query {query}, document {doc}", path.display()))
                    })?;
                    Ok((*score, doc.clone()))
                })
                .collect::<Result<Vec<_>>>()?;
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let order = scored.into_iter().map(|(_, doc)| doc).chain(tail.iter().cloned()).collect();
            Ok((query.clone(), order))
        })
        .collect()
}

/// Indices of `values` best first; ties keep first-stage order.
fn order_by(values: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order
}

fn report(label: &str, metrics: &Metrics, markdown: bool) {
    let mut out = std::io::stdout().lock();
    let _ = if markdown {
        writeln!(
            out,
            "| {label} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            metrics.ndcg_at_10, metrics.mrr_at_10, metrics.recall_at_10, metrics.recall_at_100, metrics.precision_at_1
        )
    } else {
        writeln!(out, "{}", serde_json::json!({ "system": label, "metrics": metrics }))
    };
}

pub fn run(args: &EvalArgs) -> Result<()> {
    // Options first, through the parser every front end shares: a bad one fails before any reading.
    let options = args.scoring.values().parse()?;
    let fusion = |values| OptionValues { fusion: Some(values), ..OptionValues::default() }.parse().map(|options| options.fusion);
    let (fusion_rrf, fusion_weighted) = (fusion(args.fusion.rrf())?, fusion(args.fusion.weighted())?);
    let qrels = read_qrels(&args.qrels)?;
    let (candidates, first_stage_scores) = read_candidates(&args.candidates)?;
    if args.markdown {
        println!("| system | nDCG@10 | MRR@10 | R@10 | R@100 | P@1 |\n|---|---|---|---|---|---|");
    }
    report(&format!("first stage ({})", args.candidates.display()), &evaluate(&qrels, &candidates, args.min_relevance), args.markdown);
    for path in &args.run {
        let run = rerank_with_run(path, &candidates, args.depth)?;
        report(&format!("{} (top {} reranked)", path.display(), args.depth), &evaluate(&qrels, &run, args.min_relevance), args.markdown);
    }
    if args.model.is_empty() {
        return Ok(());
    }
    let corpus = read_texts(&args.corpus, true)?;
    let queries = read_texts(&args.queries, false)?;
    let mut query_ids: Vec<&String> = qrels.keys().filter(|id| candidates.contains_key(*id)).collect();
    query_ids.sort();
    // One scoring pass per model; the plain order and the fusions with the first stage are all
    // computed from the same logits.
    let mut variants: Vec<(String, Option<Fusion>)> = vec![(String::new(), None)];
    variants.push((format!(" +RRF(k={})", args.fusion.rrf_k), fusion_rrf));
    if !first_stage_scores.is_empty() {
        variants.push((format!(" +weighted(w={})", args.fusion.fusion_weight), fusion_weighted));
    }
    let device = args.device.open()?; // once: a CUDA device is a context, not a name
    for model_path in &args.model {
        let reranker = load_model(model_path, &device)?;
        let mut runs: Vec<Run> = vec![Run::new(); variants.len()];
        let mut trec = String::new();
        for (done, query_id) in query_ids.iter().enumerate() {
            let query = queries.get(*query_id).ok_or_else(|| Error::invalid(format!("query {query_id} is not in {}", args.queries.display())))?;
            let docs = &candidates[*query_id];
            let (head, tail) = docs.split_at(args.depth.min(docs.len()));
            let texts: Vec<&str> = head
                .iter()
                .map(|id| corpus.get(id).map(String::as_str).ok_or_else(|| Error::invalid(format!("document {id} is not in the corpus"))))
                .collect::<Result<_>>()?;
            let logits = reranker.logits_with(query, &texts, &options)?;
            for (rank, index) in order_by(&logits).into_iter().enumerate() {
                trec.push_str(&format!("{query_id} Q0 {} {} {} crossrank\n", head[index], rank + 1, logits[index]));
            }
            let first_stage = first_stage_scores.get(*query_id).map(|scores| &scores[..head.len()]);
            for ((_, fusion), run) in variants.iter().zip(runs.iter_mut()) {
                let values = match fusion {
                    None => logits.clone(),
                    Some(fusion) => crossrank::fusion::fuse(fusion, &logits, first_stage)?,
                };
                let order = order_by(&values).into_iter().map(|index| head[index].clone()).chain(tail.iter().cloned()).collect();
                run.insert((*query_id).clone(), order);
            }
            if (done + 1) % 50 == 0 {
                eprintln!("{}: {}/{} queries", model_path.display(), done + 1, query_ids.len());
            }
        }
        let mut label = format!("crossrank {} (top {} reranked)", model_path.display(), args.depth);
        if let Some(windows) = options.windows {
            label += &format!(" +windows({:?}, overlap {}, max_length {})", windows.aggregate, windows.overlap, options.max_length.unwrap_or(reranker.default_max_length()));
        } else if let Some(max_length) = options.max_length {
            label += &format!(" max_length {max_length}");
        }
        for ((suffix, _), run) in variants.iter().zip(&runs) {
            report(&format!("{label}{suffix}"), &evaluate(&qrels, run, args.min_relevance), args.markdown);
        }
        if let Some(dir) = &args.write_runs {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io { file: dir.display().to_string(), message: e.to_string() })?;
            let name = model_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
            let path = dir.join(format!("crossrank-{name}.tsv"));
            std::fs::write(&path, trec).map_err(|e| Error::Io { file: path.display().to_string(), message: e.to_string() })?;
        }
    }
    Ok(())
}

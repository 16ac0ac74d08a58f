//! `crossrank eval`: reranks a first stage's candidates on a BEIR-style dataset, or scores
//! precomputed TREC runs (e.g. PyTorch's), with the same metric code for every system.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crossrank::eval::{evaluate, Metrics, Qrels, Run};
use crossrank::local::load_model;
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

/// The longest line an eval input may hold: far above any BEIR document, and where a file with no
/// newline (`/dev/zero`) stops instead of being read whole.
const MAX_LINE_BYTES: usize = 64 << 20;
/// The most a qrels, queries, candidates or run file may hold (MS MARCO dev's BM25 top 1000 is
/// about 200 MB): these are held whole in memory, so endless input stops here.
const MAX_TABLE_BYTES: u64 = 1 << 30;
/// The most a corpus may hold (MS MARCO's is 3 GB). It is streamed: only its ids and the texts
/// of the documents a model scores are kept.
const MAX_CORPUS_BYTES: u64 = 16 << 30;

fn bad_line(path: &Path, number: usize, what: &str) -> Error {
    Error::invalid(format!("{}:{number}: {what}", path.display()))
}

/// Calls `each` with every line of `path` (its 1-based number and its text, without `\n` or
/// `\r\n`), streamed: a line over [`MAX_LINE_BYTES`] or a file over `limit` is refused by name,
/// never read whole. `what` names the file's role in errors ("qrels", "corpus", …).
fn each_line(path: &Path, limit: u64, what: &str, mut each: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    use std::io::{BufRead, Read};
    let io = |e: std::io::Error| Error::Io { file: path.display().to_string(), message: e.to_string() };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, crossrank::local::open_bounded(path, limit, what)?);
    let (mut line, mut total) = (Vec::new(), 0u64);
    for number in 1.. {
        line.clear();
        let read = (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line).map_err(io)?;
        if read == 0 {
            break;
        }
        total += read as u64;
        if total > limit {
            return Err(crossrank::local::over_limit(path, limit, what));
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(bad_line(path, number, &format!("line longer than the {MAX_LINE_BYTES}-byte limit for one line of a {what} file")));
        }
        let text = std::str::from_utf8(&line).map_err(|_| bad_line(path, number, "not UTF-8"))?;
        each(number, text)?;
    }
    Ok(())
}

/// A BEIR JSON-lines record: its `_id` and the object. An `_id` is a string; a whole number is
/// taken as its decimal text, which is what the TSV files that refer to it hold (BEIR's Python
/// loader would key it as an int no qrels line matches). Any other `_id` is refused by type.
fn record(path: &Path, number: usize, line: &str) -> Result<(String, serde_json::Map<String, serde_json::Value>)> {
    use serde_json::Value;
    let value: Value = serde_json::from_str(line).map_err(|e| bad_line(path, number, &e.to_string()))?;
    let Value::Object(object) = value else { return Err(bad_line(path, number, "expected a JSON object {\"_id\": …}")) };
    let id = match object.get("_id") {
        Some(Value::String(id)) => id.clone(),
        Some(Value::Number(id)) if id.is_i64() || id.is_u64() => id.to_string(),
        None => return Err(bad_line(path, number, "no \"_id\"")),
        Some(other) => return Err(bad_line(path, number, &format!("\"_id\" must be a string (or a whole number), got {other}"))),
    };
    Ok((id, object))
}

/// A text field of a record: a string, or "" when absent or null; any other value is refused.
fn text_field(path: &Path, number: usize, object: &serde_json::Map<String, serde_json::Value>, name: &str) -> Result<Option<String>> {
    match object.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(bad_line(path, number, &format!("\"{name}\" must be a string, got {other}"))),
    }
}

/// Refuses an id seen before: a second record would silently replace the first's text.
fn first_time(seen: &mut HashMap<String, usize>, id: &str, path: &Path, number: usize) -> Result<()> {
    if let Some(first) = seen.get(id) {
        return Err(bad_line(path, number, &format!("`_id` \"{id}\" appears twice (first on line {first}): ids must be unique")));
    }
    seen.insert(id.to_string(), number);
    Ok(())
}

/// `_id` → text of queries.jsonl.
fn read_queries(path: &Path) -> Result<HashMap<String, String>> {
    let (mut queries, mut seen) = (HashMap::new(), HashMap::new());
    each_line(path, MAX_TABLE_BYTES, "queries", |number, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let (id, object) = record(path, number, line)?;
        first_time(&mut seen, &id, path, number)?;
        let text = text_field(path, number, &object, "text")?.ok_or_else(|| bad_line(path, number, "no \"text\""))?;
        queries.insert(id, text);
        Ok(())
    })?;
    Ok(queries)
}

/// The documents of corpus.jsonl that `wanted` names (with their text, `title + " " + text`
/// trimmed as BEIR's rerank recipe does, when its value is true; else ""), after checking that
/// every `_id` in the file is unique.
fn read_corpus(path: &Path, wanted: &HashMap<&str, bool>) -> Result<HashMap<String, String>> {
    let (mut found, mut seen) = (HashMap::new(), HashMap::new());
    each_line(path, MAX_CORPUS_BYTES, "corpus", |number, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let (id, object) = record(path, number, line)?;
        let title = text_field(path, number, &object, "title")?.unwrap_or_default();
        let text = text_field(path, number, &object, "text")?.unwrap_or_default();
        first_time(&mut seen, &id, path, number)?;
        if let Some(&keep_text) = wanted.get(id.as_str()) {
            found.insert(id, if keep_text { format!("{title} {text}").trim().to_string() } else { String::new() });
        }
        Ok(())
    })?;
    Ok(found)
}

/// The rows of a BEIR TSV after its header, which must be there (`query-id\tcorpus-id\t…`): a file
/// without one would silently lose its first row. An empty file is an error, not zero metrics.
/// Each row comes with its line number.
fn read_tsv(path: &Path, what: &str, header: &str) -> Result<Vec<(usize, Vec<String>)>> {
    let mut rows = Vec::new();
    let mut seen_header = false;
    each_line(path, MAX_TABLE_BYTES, what, |number, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        if !seen_header {
            if !line.trim().to_ascii_lowercase().starts_with("query-id") {
                return Err(bad_line(path, number, &format!("expected the header `{header}`, found `{}`: is the header missing?", line.trim())));
            }
            seen_header = true;
            return Ok(());
        }
        rows.push((number, line.split('\t').map(str::to_string).collect()));
        Ok(())
    })?;
    if !seen_header {
        return Err(Error::invalid(format!("{} is empty (expected the header `{header}` and rows)", path.display())));
    }
    if rows.is_empty() {
        return Err(Error::invalid(format!("{} has a header but no rows", path.display())));
    }
    Ok(rows)
}

fn read_qrels(path: &Path) -> Result<Qrels> {
    let mut qrels = Qrels::new();
    for (number, row) in read_tsv(path, "qrels", "query-id\tcorpus-id\tscore")? {
        let [query, doc, grade] = row.as_slice() else { return Err(bad_line(path, number, "expected 3 columns")) };
        let grade: i64 = grade.trim().parse().map_err(|_| bad_line(path, number, "grade is not an integer"))?;
        let grade = u32::try_from(grade).map_err(|_| bad_line(path, number, &format!("grade {grade} is negative or too large (grades are 0, 1, 2, …)")))?;
        if qrels.entry(query.clone()).or_default().insert(doc.clone(), grade).is_some() {
            return Err(bad_line(path, number, &format!("document `{doc}` is judged twice for query `{query}`")));
        }
    }
    Ok(qrels)
}

/// The first stage: each query's candidates in first-stage order (sorted by the rank column), and
/// their first-stage scores when the file has a fourth column (every row then needs one).
struct FirstStage {
    run: Run,
    scores: HashMap<String, Vec<f64>>,
}

fn read_candidates(path: &Path) -> Result<FirstStage> {
    let mut ranked: HashMap<String, Vec<(u64, String, Option<f64>)>> = HashMap::new();
    let mut seen = HashMap::new();
    let mut scored_line: [Option<usize>; 2] = [None, None]; // the first line without and with a score
    for (number, row) in read_tsv(path, "candidates", "query-id\tcorpus-id\trank[\tscore]")? {
        if row.len() < 3 {
            return Err(bad_line(path, number, "expected query-id, corpus-id, rank"));
        }
        let rank = row[2].trim();
        // Ranks only order the candidates: any whole number from 0 (0- or 1-based files alike).
        let rank: u64 = rank.parse().map_err(|_| bad_line(path, number, &format!("rank must be a whole number ≥ 0, got `{rank}`")))?;
        // An empty fourth column (a trailing tab) is no score.
        let score = match row.get(3).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => None,
            Some(text) => Some(
                text.parse::<f64>()
                    .ok()
                    .filter(|score| score.is_finite())
                    .ok_or_else(|| bad_line(path, number, &format!("first-stage score must be a finite number, got `{text}`")))?,
            ),
        };
        scored_line[usize::from(score.is_some())].get_or_insert(number);
        if let [Some(without), Some(with)] = scored_line {
            return Err(bad_line(
                path,
                number,
                &format!("line {with} has a first-stage score and line {without} has none: give every candidate a score, or none"),
            ));
        }
        // A candidate listed twice would be counted twice (nDCG@10 above 1).
        if let Some(first) = seen.insert((row[0].clone(), row[1].clone()), number) {
            return Err(bad_line(path, number, &format!("document `{}` is a candidate twice for query `{}` (first on line {first})", row[1], row[0])));
        }
        ranked.entry(row[0].clone()).or_default().push((rank, row[1].clone(), score));
    }
    let mut first_stage = FirstStage { run: Run::new(), scores: HashMap::new() };
    for (query, mut docs) in ranked {
        docs.sort_by_key(|(rank, _, _)| *rank);
        if docs.iter().all(|(_, _, score)| score.is_some()) {
            first_stage.scores.insert(query.clone(), docs.iter().map(|(_, _, score)| score.unwrap_or(0.0)).collect());
        }
        first_stage.run.insert(query, docs.into_iter().map(|(_, doc, _)| doc).collect());
    }
    Ok(first_stage)
}

/// A TREC run file (`query Q0 doc rank score [name]`): (query, document) → score. A pair scored
/// twice, or a score that is not a finite number (NaN sorts first), is refused.
fn read_run(path: &Path) -> Result<HashMap<(String, String), f64>> {
    let mut scores: HashMap<(String, String), (f64, usize)> = HashMap::new();
    each_line(path, MAX_TABLE_BYTES, "run", |number, line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            return Ok(());
        }
        if fields.len() < 5 {
            return Err(bad_line(path, number, "expected `query Q0 doc rank score [name]`"));
        }
        let score: f64 = fields[4].parse().map_err(|_| bad_line(path, number, &format!("score `{}` is not a number", fields[4])))?;
        if !score.is_finite() {
            return Err(bad_line(path, number, &format!("score `{}` is not a finite number", fields[4])));
        }
        let key = (fields[0].to_string(), fields[2].to_string());
        if let Some((_, first)) = scores.get(&key) {
            return Err(bad_line(path, number, &format!("document `{}` is scored twice for query `{}` (first on line {first})", key.1, key.0)));
        }
        scores.insert(key, (score, number));
        Ok(())
    })?;
    Ok(scores.into_iter().map(|(key, (score, _))| (key, score)).collect())
}

/// A TREC run applied like a reranker: the first `depth` candidates of each query are ordered by
/// the run's scores (descending, ties in first-stage order) and the rest keep their first-stage
/// order, exactly as `--model` reranking does.
fn rerank_with_run(path: &Path, candidates: &Run, depth: usize) -> Result<Run> {
    let scores = read_run(path)?;
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
    // Every input is read and checked before anything is printed: a refusal leaves stdout empty,
    // never a first-stage line followed by an error.
    let qrels = read_qrels(&args.qrels)?;
    let FirstStage { run: candidates, scores: first_stage_scores } = read_candidates(&args.candidates)?;
    let runs: Vec<(String, Run)> = args
        .run
        .iter()
        .map(|path| Ok((format!("{} (top {} reranked)", path.display(), args.depth), rerank_with_run(path, &candidates, args.depth)?)))
        .collect::<Result<_>>()?;
    let queries = read_queries(&args.queries)?;
    // A judged query that queries.jsonl lacks would count as a query with no hits (BEIR's own
    // loader stops on it with a KeyError): the files are from different sets or splits.
    let mut unknown: Vec<&String> = qrels.keys().filter(|id| !queries.contains_key(*id)).collect();
    unknown.sort();
    if let Some(first) = unknown.first() {
        return Err(Error::invalid(format!(
            "{}: {} judged quer{} not in {} (first: `{first}`): are the qrels from another set or split?",
            args.qrels.display(),
            unknown.len(),
            if unknown.len() == 1 { "y is" } else { "ies are" },
            args.queries.display()
        )));
    }
    let mut query_ids: Vec<&String> = qrels.keys().filter(|id| candidates.contains_key(*id)).collect();
    query_ids.sort();
    if !args.model.is_empty() {
        if let Some(blank) = query_ids.iter().find(|id| queries[**id].trim().is_empty()) {
            return Err(Error::invalid(format!("{}: query `{blank}` has an empty \"text\": a model cannot score it", args.queries.display())));
        }
    }
    // Every candidate must be in the corpus; the texts are kept only for those a model scores.
    let mut wanted: HashMap<&str, bool> = candidates.values().flatten().map(|doc| (doc.as_str(), false)).collect();
    if !args.model.is_empty() {
        for query_id in &query_ids {
            let docs = &candidates[*query_id];
            for doc in &docs[..args.depth.min(docs.len())] {
                wanted.insert(doc, true);
            }
        }
    }
    let corpus = read_corpus(&args.corpus, &wanted)?;
    let mut missing: Vec<&str> = wanted.keys().copied().filter(|doc| !corpus.contains_key(*doc)).collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        return Err(Error::invalid(format!(
            "{}: {} candidate document{} not in {} (first: `{}`)",
            args.candidates.display(),
            missing.len(),
            if missing.len() == 1 { " is" } else { "s are" },
            args.corpus.display(),
            missing[0]
        )));
    }

    if args.markdown {
        println!("| system | nDCG@10 | MRR@10 | R@10 | R@100 | P@1 |\n|---|---|---|---|---|---|");
    }
    report(&format!("first stage ({})", args.candidates.display()), &evaluate(&qrels, &candidates, args.min_relevance), args.markdown);
    for (label, run) in &runs {
        report(label, &evaluate(&qrels, run, args.min_relevance), args.markdown);
    }
    if args.model.is_empty() {
        return Ok(());
    }
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

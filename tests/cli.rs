//! The native CLI: same scores as the library, JSON out, clear errors and non-zero exit on bad input.
#![cfg(feature = "cli")]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn crossrank(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossrank"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn tiny() -> String {
    common::tiny_dir().display().to_string()
}

#[test]
fn score_prints_the_fixture_logits() {
    let fixture = common::fixture("tiny.json");
    let input: String = fixture
        .cases
        .iter()
        .map(|case| serde_json::json!({ "query": case.query, "document": case.passage }).to_string() + "\n")
        .collect();
    let output = crossrank(&["score", "--model", &tiny()], &input);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), fixture.cases.len());
    for (line, case) in lines.iter().zip(&fixture.cases) {
        let logit = line["logit"].as_f64().unwrap() as f32;
        assert!((logit - case.logit).abs() < 1e-4, "{}: {logit} vs {}", case.name, case.logit);
    }
}

#[test]
fn rerank_reads_lines_or_json_and_prints_ranked_json() {
    let lines = crossrank(&["rerank", "--model", &tiny(), "--query", "vitamin d", "--top-k", "2"], "sunlight and vitamin d\n\nstocks fell\nbread\n");
    assert!(lines.status.success(), "{}", String::from_utf8_lossy(&lines.stderr));
    let from_lines: serde_json::Value = serde_json::from_slice(&lines.stdout).unwrap();
    assert_eq!(from_lines.as_array().unwrap().len(), 2);
    let json = crossrank(
        &["rerank", "--model", &tiny(), "--query", "vitamin d", "--top-k", "2"],
        r#"["sunlight and vitamin d", {"text": "stocks fell"}, "bread"]"#,
    );
    let from_json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(from_lines, from_json, "one candidate per line and a JSON array give the same ranking");
    let first = &from_json[0];
    let index = first["index"].as_u64().unwrap() as usize;
    assert_eq!(first["document"], ["sunlight and vitamin d", "stocks fell", "bread"][index]);
}

#[test]
fn bad_input_exits_non_zero_with_the_error_code() {
    let cases: [(&[&str], &str, &str); 6] = [
        (&["rerank", "--model", "/no/such/dir", "--query", "q"], "a\n", "error [io]"),
        (&["rerank", "--model", &tiny(), "--query", ""], "a\n", "crossrank: error [invalid_input]: the query is empty\n"),
        (&["rerank", "--model", &tiny(), "--query", "q"], "\n\n", "crossrank: error [invalid_input]: no documents"),
        (&["rerank", "--model", &tiny(), "--query", "q"], "[1, 2]", "candidate 0 is 1, not a string"),
        (&["score", "--model", &tiny()], "{\"query\": \"q\"}\n", "line 1: expected"),
        // The default build is CPU-only and says how to get the CUDA one (./build.sh cuda smoke-tests that one).
        (
            &["score", "--model", &tiny(), "--device", "cuda"],
            "",
            "crossrank: error [unsupported]: --device cuda needs a crossrank built with `--features cuda` (./build.sh cuda)\n",
        ),
    ];
    for (args, stdin, needle) in cases {
        let output = crossrank(args, stdin);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: stderr {stderr:?} lacks {needle:?}");
    }
}

#[test]
fn convert_then_info() {
    let out = std::env::temp_dir().join(format!("crossrank-cli-{}.gguf", std::process::id()));
    let out_path = out.display().to_string();
    let convert = crossrank(&["convert", "--model", &tiny(), "--dtype", "q8_0", "--out", &out_path, "--source", "tiny"], "");
    assert!(convert.status.success(), "{}", String::from_utf8_lossy(&convert.stderr));
    let info = crossrank(&["info", &out_path], "");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["precision"], "q8_0");
    assert_eq!(info["source"], "tiny");
    assert_eq!(info["config"]["hidden_size"], 32);
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    let refused = crossrank(&["convert", "--model", &tiny(), "--dtype", "q6_k", "--out", &out_path], "");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("divisible by 256"));
}

/// `eval --min-relevance`: TREC's convention for graded judgements (grade ≥ 2 answers the query)
/// changes MRR and P@1 only; nDCG keeps the grades. First stage only, so no model is needed.
#[test]
fn eval_min_relevance_sets_what_the_binary_metrics_count() {
    let dir = std::env::temp_dir().join(format!("crossrank-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let corpus = file("corpus.jsonl", "{\"_id\": \"a\", \"text\": \"related\"}\n{\"_id\": \"x\", \"text\": \"off topic\"}\n{\"_id\": \"b\", \"text\": \"answers\"}\n");
    let queries = file("queries.jsonl", "{\"_id\": \"q\", \"text\": \"question\"}\n");
    let qrels = file("qrels.tsv", "query-id\tcorpus-id\tscore\nq\ta\t1\nq\tb\t2\n");
    let candidates = file("candidates.tsv", "query-id\tcorpus-id\trank\nq\ta\t1\nq\tx\t2\nq\tb\t3\n");
    let eval = |min_relevance: &str| {
        let args = ["eval", "--corpus", &corpus, "--queries", &queries, "--qrels", &qrels, "--candidates", &candidates, "--min-relevance", min_relevance];
        crossrank(&args, "")
    };
    let metrics = |output: Output| -> serde_json::Value {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()["metrics"].clone()
    };
    let (loose, strict) = (metrics(eval("1")), metrics(eval("2")));
    assert_eq!((loose["mrr_at_10"].as_f64(), loose["precision_at_1"].as_f64()), (Some(1.0), Some(1.0)));
    assert_eq!((strict["mrr_at_10"].as_f64(), strict["precision_at_1"].as_f64()), (Some(1.0 / 3.0), Some(0.0)));
    assert_eq!(loose["ndcg_at_10"], strict["ndcg_at_10"]);
    let zero = eval("0");
    assert!(!zero.status.success(), "a threshold of 0 would count unjudged-irrelevant grades");
    assert!(String::from_utf8_lossy(&zero.stderr).contains("--min-relevance"), "{}", String::from_utf8_lossy(&zero.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

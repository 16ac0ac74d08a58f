//! The native CLI: same scores as the library, JSON out, clear errors and non-zero exit on bad input.
#![cfg(feature = "cli")]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::crossrank;

/// Writes `text` to `dir/name` (creating `dir`) and returns the path.
fn write_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
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
        (&["rerank", "--model", &tiny(), "--query", "q", "--top-k", "0"], "\n\n", "crossrank: error [invalid_input]: topK must be a whole number"),
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

/// A first stage that found nothing: no candidates give an empty ranking, as in the browser.
#[test]
fn no_candidates_rank_as_an_empty_list() {
    for stdin in ["", "\n\n", "[]"] {
        let output = crossrank(&["rerank", "--model", &tiny(), "--query", "q"], stdin);
        assert!(output.status.success(), "{stdin:?}: {}", String::from_utf8_lossy(&output.stderr));
        let ranked: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(ranked, serde_json::json!([]), "{stdin:?}");
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
    // Natively the int8 kernel is AVX-512 VNNI or AVX2 where the CPU has them, else the scalar definitions.
    assert!(matches!(info["int8_kernel"].as_str(), Some("avx512-vnni" | "avx2" | "scalar")), "{}", info["int8_kernel"]);
    let refused = crossrank(&["convert", "--model", &tiny(), "--dtype", "q6_k", "--out", &out_path], "");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("divisible by 256"));
}

/// `eval --min-relevance`: TREC's convention for graded judgements (grade ≥ 2 answers the query)
/// changes MRR and P@1 only; nDCG keeps the grades. First stage only, so no model is needed.
#[test]
fn eval_min_relevance_sets_what_the_binary_metrics_count() {
    let dir = std::env::temp_dir().join(format!("crossrank-eval-{}", std::process::id()));
    let file = |name: &str, text: &str| write_file(&dir, name, text);
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

/// eval's inputs: a missing header, an empty file, a negative grade, a document judged twice and a
/// candidate listed twice used to give wrong metrics (or all zeros) with exit 0; each is a named error.
#[test]
fn eval_input_errors_are_named() {
    let dir = std::env::temp_dir().join(format!("crossrank-eval-errors-{}", std::process::id()));
    let file = |name: &str, text: &str| write_file(&dir, name, text);
    let corpus = file("corpus.jsonl", "{\"_id\": \"a\", \"text\": \"related\"}\n{\"_id\": \"b\", \"text\": \"answers\"}\n");
    let queries = file("queries.jsonl", "{\"_id\": \"q\", \"text\": \"question\"}\n");
    let good_qrels = file("qrels.tsv", "query-id\tcorpus-id\tscore\nq\ta\t1\nq\tb\t2\n");
    let good_candidates = file("candidates.tsv", "query-id\tcorpus-id\trank\nq\ta\t1\nq\tb\t2\n");
    let eval = |qrels: &str, candidates: &str| {
        let out = crossrank(&["eval", "--corpus", &corpus, "--queries", &queries, "--qrels", qrels, "--candidates", candidates], "");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert!(eval(&good_qrels, &good_candidates).0, "the good files must pass");
    let cases = [
        ("qrels without a header", file("q1.tsv", "q\ta\t1\nq\tb\t2\n"), good_candidates.clone(), "expected the header `query-id\tcorpus-id\tscore`"),
        ("candidates without a header", good_qrels.clone(), file("c1.tsv", "q\ta\t1\nq\tb\t2\n"), "is the header missing?"),
        ("empty qrels", file("q2.tsv", ""), good_candidates.clone(), "is empty"),
        ("qrels with a header only", file("q3.tsv", "query-id\tcorpus-id\tscore\n"), good_candidates.clone(), "has a header but no rows"),
        ("a negative grade", file("q4.tsv", "query-id\tcorpus-id\tscore\nq\ta\t-1\n"), good_candidates.clone(), "grade -1 is negative"),
        ("a document judged twice", file("q5.tsv", "query-id\tcorpus-id\tscore\nq\ta\t1\nq\ta\t2\n"), good_candidates.clone(), "judged twice"),
        ("a candidate listed twice", good_qrels.clone(), file("c2.tsv", "query-id\tcorpus-id\trank\nq\ta\t1\nq\ta\t2\n"), "a candidate twice"),
    ];
    for (name, qrels, candidates, needle) in cases {
        let (ok, stderr) = eval(&qrels, &candidates);
        assert!(!ok, "{name}: eval succeeded");
        assert!(stderr.contains("[invalid_input]") && stderr.contains(needle), "{name}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Endless input ends with a named error within a documented bound (256 MiB for a rerank input,
/// 64 MiB per score line), instead of growing until the kernel kills the process.
#[test]
fn endless_input_is_refused_within_a_bound() {
    let tiny = tiny();
    let rerank = Command::new(env!("CARGO_BIN_EXE_crossrank"))
        .args(["rerank", "--model", &tiny, "--query", "q", "--input", "/dev/zero"])
        .output()
        .unwrap();
    assert!(!rerank.status.success());
    let stderr = String::from_utf8_lossy(&rerank.stderr);
    assert!(stderr.contains("[invalid_input]") && stderr.contains("/dev/zero holds more than 256 MiB"), "{stderr}");
    let score = Command::new(env!("CARGO_BIN_EXE_crossrank"))
        .args(["score", "--model", &tiny])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    assert!(!score.status.success());
    let stderr = String::from_utf8_lossy(&score.stderr);
    assert!(stderr.contains("line 1 is longer than 64 MiB"), "{stderr}");
}

/// A candidate longer than what is held in memory (1 MiB) is scored on the prefix a pair reads and
/// echoed whole from the spill file: the output equals that of the same candidates as a JSON array
/// (parsed whole), with characters of every width cut by buffer ends, CRLF line ends and blank lines.
/// A bad byte past the held prefix is still found.
#[test]
fn a_long_candidate_is_held_in_part_and_echoed_whole() {
    let words = ["vitamin", "é", "日本語", "😀", "tab\there", "\"quoted\"", "back\\slash", "sunlight"];
    let long: String = (0..600_000).map(|i| words[i % words.len()]).collect::<Vec<_>>().join(" ");
    assert!(long.len() > 3 << 20);
    let candidates = ["sunlight and vitamin d", long.as_str(), "stocks fell"];
    let dir = std::env::temp_dir().join(format!("crossrank-cli-long-{}", std::process::id()));
    let lines = write_file(&dir, "lines.txt", &format!("\r\n{}\r\n\n{}\r\n{}", candidates[0], candidates[1], candidates[2]));
    let json = write_file(&dir, "candidates.json", &serde_json::to_string(&candidates).unwrap());
    let run = |input: &str| {
        let output = crossrank(&["rerank", "--model", &tiny(), "--query", "vitamin d from sunlight", "--input", input], "");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let (from_lines, from_json) = (run(&lines), run(&json));
    assert_eq!(from_lines, from_json);
    let echoed: Vec<&str> = from_lines.as_array().unwrap().iter().map(|row| row["document"].as_str().unwrap()).collect();
    assert!(echoed.contains(&long.as_str()), "the long candidate was not echoed whole");
    // A byte that is not UTF-8 at 3 MB, far past the held prefix.
    let mut bad = format!("{}\n", candidates[0]).into_bytes();
    bad.extend_from_slice(&long.as_bytes()[..3 << 20]);
    bad.extend_from_slice(b"\xff tail\n");
    let bad_path = dir.join("bad.txt");
    std::fs::write(&bad_path, bad).unwrap();
    let output = crossrank(&["rerank", "--model", &tiny(), "--query", "q", "--input", &bad_path.display().to_string()], "");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not UTF-8"), "{}", String::from_utf8_lossy(&output.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A JSON array is read as it streams in (src/bin/crossrank/json_candidates.rs): every escape, nested values
/// under other keys, and a 4 MB string held in part come out as serde_json reads them; malformed
/// input gets a named error.
#[test]
fn json_candidates_stream_as_serde_reads_them() {
    let long: String = (0..300_000).map(|i| ["vitamin", "caf\u{e9}", "tab\tq\"uote\"", "back\\slash", "😀", "line\nbreak"][i % 6]).collect::<Vec<_>>().join(" ");
    let inputs = [
        r#" [ "a\nb" , "caf\u00e9 \ud83d\ude00 \/ \b\f\r" ,
            {"id": {"x": [1, {"y": "z"}], "t": true, "n": null}, "text": "tab\there \"q\" \\", "score": -1.5e2},
            {"score": 3, "text": "plain", "other": "text"} ] "#
            .to_string(),
        serde_json::to_string(&[long.as_str(), "short"]).unwrap(),
        serde_json::to_string(&serde_json::json!([{"text": long, "score": 1}, {"text": "short", "score": 2.5}])).unwrap(),
        "[]".to_string(),
    ];
    let dir = std::env::temp_dir().join(format!("crossrank-cli-json-{}", std::process::id()));
    for (n, input) in inputs.iter().enumerate() {
        let path = write_file(&dir, &format!("{n}.json"), input);
        let output = crossrank(&["rerank", "--model", &tiny(), "--query", "vitamin", "--input", &path], "");
        assert!(output.status.success(), "input {n}: {}", String::from_utf8_lossy(&output.stderr));
        let ranked: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        let expected: Vec<serde_json::Value> = serde_json::from_str(input).unwrap();
        let text = |value: &serde_json::Value| value.as_str().or_else(|| value["text"].as_str()).unwrap().to_string();
        let mut got: Vec<(usize, String)> = ranked.iter().map(|row| (row["index"].as_u64().unwrap() as usize, row["document"].as_str().unwrap().to_string())).collect();
        got.sort();
        let want: Vec<(usize, String)> = expected.iter().map(text).enumerate().collect();
        assert_eq!(got, want, "input {n}: the documents differ from serde_json's reading");
    }
    // With a score on every candidate, weighted fusion uses them (the long one scored on its prefix).
    let path = dir.join("2.json").display().to_string();
    let output = crossrank(&["rerank", "--model", &tiny(), "--query", "vitamin", "--input", &path, "--fusion", "weighted", "--fusion-weight", "0"], "");
    let ranked: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(ranked[0]["index"], 1, "weight 0 orders by the first-stage score alone");
    let errors = [
        (r#"["a", ]"#, "do not parse"),
        (r#"["a" "b"]"#, "do not parse: expected `,` or `]`"),
        (r#"["\ud800"]"#, "lone leading surrogate"),
        (r#"["\udc00"]"#, "lone trailing surrogate"),
        ("[\"a\u{1}\"]", "control character in a string"),
        (r#"["unterminated"#, "unterminated string"),
        (r#"["a"] x"#, "trailing characters"),
        (r#"[{"text": 1}]"#, "candidate 0 is an object without a string \"text\""),
        (r#"[{"text": "a", "score": "high"}]"#, "candidate 0: \"score\" is not a number"),
        (r#"["a", {"text": "b", "text": "c"}]"#, "candidate 1 has \"text\" twice"),
        ("[1]", "candidate 0 is 1, not a string"),
        ("[null]", "candidate 0 is null, not a string"),
        ("[[1]]", "candidate 0 is an array, not a string"),
    ];
    for (n, (input, needle)) in errors.iter().enumerate() {
        let path = write_file(&dir, &format!("bad{n}.json"), input);
        let output = crossrank(&["rerank", "--model", &tiny(), "--query", "q", "--input", &path], "");
        assert!(!output.status.success(), "{input} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("[invalid_input]") && stderr.contains(needle), "{input}: {stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `score` streams: a query's scores are printed as soon as the next query starts, while stdin is
/// still open, so a long input shows results from the start.
#[test]
fn score_prints_each_batch_before_the_input_ends() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossrank"))
        .args(["score", "--model", &tiny()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let line = |query: &str, document: &str| serde_json::json!({ "query": query, "document": document }).to_string() + "\n";
    stdin.write_all((line("first", "a") + &line("first", "b") + &line("second", "c")).as_bytes()).unwrap();
    stdin.flush().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // The first query's two scores arrive with stdin still open.
    for _ in 0..2 {
        let line = receiver.recv_timeout(std::time::Duration::from_secs(60)).expect("no output while stdin is open: score does not stream");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(value["logit"].as_f64().unwrap().is_finite());
    }
    drop(stdin);
    let last = receiver.recv_timeout(std::time::Duration::from_secs(60)).unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(&last).unwrap()["score"].as_f64().is_some());
    assert!(child.wait().unwrap().success());
}

/// `convert` and `info` for the other families: the file records which family it is.
#[test]
fn convert_then_info_for_electra_and_xlm_roberta() {
    for (dir, model_type) in [("tests/models/tiny-electra", "electra"), ("tests/models/tiny-xlmr", "xlm-roberta")] {
        let out = std::env::temp_dir().join(format!("crossrank-cli-{}-{model_type}.gguf", std::process::id()));
        let out_path = out.display().to_string();
        let model = common::root().join(dir).display().to_string();
        let convert = crossrank(&["convert", "--model", &model, "--dtype", "q8_0", "--out", &out_path], "");
        assert!(convert.status.success(), "{dir}: {}", String::from_utf8_lossy(&convert.stderr));
        let info: serde_json::Value = serde_json::from_slice(&crossrank(&["info", &out_path], "").stdout).unwrap();
        assert_eq!(info["config"]["model_type"], model_type);
        assert_eq!(info["precision"], "q8_0");
        assert_eq!(info["default_max_length"], 512);
        let scored = crossrank(&["score", "--model", &out_path], "{\"query\": \"vitamin d\", \"document\": \"Vitamin D comes from sunlight.\"}\n");
        assert!(scored.status.success(), "{dir}: {}", String::from_utf8_lossy(&scored.stderr));
        std::fs::remove_file(&out).unwrap();
    }
}

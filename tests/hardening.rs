//! The bad-input catalogue at the Rust layer (issue 9): every entry gets its exact error code, or a
//! correct answer, and the same reranker keeps working afterwards.

mod common;

use candle_core::Device;
use crossrank::local::load_model;
use crossrank::{RerankOptions, Reranker, WindowOptions};

fn tiny() -> Reranker {
    load_model(&common::tiny_dir(), &Device::Cpu).unwrap()
}

fn tiny_gguf() -> Vec<u8> {
    let hf = crossrank::local::read_hf_dir(&common::tiny_dir(), &Device::Cpu).unwrap();
    let config = String::from_utf8(hf.config_json.clone()).unwrap();
    let input = crossrank::gguf::ConvertInput { config_json: &config, tokenizer: &hf.tokenizer, source: "tiny", max_length: None };
    crossrank::gguf::convert(&hf.weights, &input, crossrank::gguf::Precision::Q8_0).unwrap()
}

/// A deterministic byte stream (no RNG dependency): xorshift64.
fn pseudo_random_bytes(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn empty_and_random_model_files() {
    let device = Device::Cpu;
    let config = std::fs::read(common::tiny_dir().join("config.json")).unwrap();
    let tokenizer = std::fs::read(common::tiny_dir().join("tokenizer.json")).unwrap();
    let source = || crossrank::TokenizerSource::Json(&tokenizer);
    for bytes in [Vec::new(), pseudo_random_bytes(10, 1), pseudo_random_bytes(100_000, 2), b"GGUF".to_vec()] {
        assert_eq!(Reranker::from_gguf(&bytes, &device).err().unwrap().code(), "model_format");
        assert_eq!(Reranker::from_safetensors(&config, &bytes, source(), &device).err().unwrap().code(), "model_format");
    }
    // GGUF magic followed by noise.
    let mut noisy = b"GGUF\x03\x00\x00\x00".to_vec();
    noisy.extend(pseudo_random_bytes(4096, 3));
    assert_eq!(Reranker::from_gguf(&noisy, &device).err().unwrap().code(), "model_format");
    // Every prefix of a valid quantised GGUF fails cleanly.
    let gguf = tiny_gguf();
    for cut in (0..gguf.len()).step_by(gguf.len() / 97) {
        let error = Reranker::from_gguf(&gguf[..cut], &device).err().unwrap();
        assert_eq!(error.code(), "model_format", "cut at {cut}: {error}");
    }
    assert!(Reranker::from_gguf(&gguf, &device).is_ok());
    // A config that is not JSON, or JSON of the wrong shape.
    let safetensors = std::fs::read(common::tiny_dir().join("model.safetensors")).unwrap();
    for bad in [&b""[..], b"{", b"[]", b"{\"hidden_size\": \"big\"}"] {
        assert_eq!(Reranker::from_safetensors(bad, &safetensors, source(), &device).err().unwrap().code(), "config");
    }
    assert_eq!(
        Reranker::from_safetensors(&config, &safetensors, crossrank::TokenizerSource::Json(b"not json"), &device).err().unwrap().code(),
        "tokenizer"
    );
}

#[test]
fn odd_documents_are_scored_not_refused() {
    let reranker = tiny();
    let huge = "lorem ipsum dolor sit amet ".repeat(40_000); // ~1 MB
    let documents = ["", "   \t\n ", "\u{0}\u{0}", "\u{fffd}\u{fffd}", "e\u{301}\u{200d}🏳️‍🌈", &huge];
    let ranked = reranker.rerank("query", &documents, &RerankOptions::default()).unwrap();
    assert_eq!(ranked.len(), documents.len());
    assert!(ranked.iter().all(|r| r.logit.is_finite()));
    // The 1 MB document is cut to 512 tokens: the same score as its first part.
    let head: String = huge.chars().take(5_000).collect();
    let cut = reranker.logits("query", &[&huge, &head]).unwrap();
    assert!((cut[0] - cut[1]).abs() < 1e-5);
    // Whitespace-only documents score like empty ones (the tokenizer drops whitespace).
    let blank = reranker.logits("query", &["", "   \t\n "]).unwrap();
    assert!((blank[0] - blank[1]).abs() < 1e-6);
}

#[test]
fn ten_thousand_documents_in_bounded_batches() {
    let reranker = tiny();
    let texts: Vec<String> = (0..10_000).map(|i| format!("document number {i} about topic {}", i % 37)).collect();
    let documents: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ranked = reranker.rerank("topic 5", &documents, &RerankOptions { top_k: Some(10), ..Default::default() }).unwrap();
    assert_eq!(ranked.len(), 10);
    // Batching does not change scores.
    let single = reranker.logits("topic 5", &[documents[ranked[0].index]]).unwrap()[0];
    assert!((single - ranked[0].logit).abs() < 1e-5);
}

#[test]
fn bad_options_are_named() {
    let reranker = tiny();
    let code = |options: RerankOptions| reranker.rerank("q", &["a", "b"], &options).unwrap_err().code();
    assert_eq!(code(RerankOptions { top_k: Some(0), ..Default::default() }), "invalid_input");
    assert_eq!(code(RerankOptions { batch_size: 0, ..Default::default() }), "invalid_input");
    assert_eq!(code(RerankOptions { max_length: Some(100_000), ..Default::default() }), "invalid_input");
    let windows = Some(WindowOptions { overlap: 1_000, ..Default::default() });
    assert_eq!(code(RerankOptions { windows, ..Default::default() }), "invalid_input");
    // A top_k beyond the list is not an error: every document comes back.
    assert_eq!(reranker.rerank("q", &["a", "b"], &RerankOptions { top_k: Some(99), ..Default::default() }).unwrap().len(), 2);
}

/// Long and odd texts for the bounded tokenisation: every kind of place a prefix could be cut.
fn long_texts() -> Vec<(&'static str, String)> {
    let words = "The cohort study followed patients for years, measuring serum vitamin-D (25-OH) levels; outcomes: 12.5% fewer fractures!";
    vec![
        ("english, 1 MB", std::iter::repeat(words).take(8_000).collect::<Vec<_>>().join(" ")),
        ("whitespace runs", std::iter::repeat("a \t\n  b\u{a0}\u{a0}c\u{2028}d   ").take(20_000).collect()),
        ("combining marks, emoji, RTL", std::iter::repeat("cafe\u{301} 👩\u{200d}👩\u{200d}👧 القاهرة هي عاصمة مصر שלום עולם ").take(20_000).collect()),
        ("CJK without spaces", std::iter::repeat("東京は今日晴れです北京和上海的天气也很好서울은흐립니다").take(20_000).collect()),
        ("a giant word, then words", format!("{} and then some ordinary words follow {}", "x".repeat(300_000), words.repeat(200))),
        ("no whitespace at all", "abcdefghij".repeat(100_000)),
    ]
}

/// Tokenising only a prefix (src/tokenize.rs `encode_prefix`) gives exactly the ids full
/// tokenisation gives, for the BERT WordPiece and the XLM-R SentencePiece tokenizers, and
/// tokenises a bounded amount: memory per document is O(max_length), not O(document).
#[test]
fn bounded_tokenisation_equals_full_tokenisation() {
    for dir in ["tests/models/minilm-l4", "tests/models/tiny", "tests/models/tiny-xlmr"] {
        let hf = crossrank::local::read_hf_dir(&common::root().join(dir), &Device::Cpu).unwrap();
        for (name, text) in long_texts() {
            let whole = hf.tokenizer.encode_whole(&text).unwrap();
            for need in [16, 128, 512] {
                let bounded = hf.tokenizer.encode_bounded(&text, need).unwrap();
                let n = need.min(whole.len());
                assert_eq!(&bounded[..n], &whole[..n], "{dir}, {name}, need {need}: the first tokens differ");
                // A bounded prefix (at least 4 KB), grown ×4 at a time (a giant word may take the whole text).
                if name != "a giant word, then words" && name != "no whitespace at all" {
                    assert!(bounded.len() <= 32 * need.max(128), "{dir}, {name}: {} tokens tokenised for {need}", bounded.len());
                }
            }
        }
    }
}

/// Windows read a long passage's tokens in pieces cut where whitespace starts (src/tokenize.rs
/// `passage_tokens`): every span and word start is whole tokenisation's, for every tokenizer
/// family, and a bounded read is a prefix of the whole.
#[test]
fn passage_tokens_in_pieces_equal_whole_tokenisation() {
    for dir in ["tests/models/minilm-l4", "tests/models/tiny", "tests/models/tiny-xlmr"] {
        let hf = crossrank::local::read_hf_dir(&common::root().join(dir), &Device::Cpu).unwrap();
        for (name, text) in long_texts() {
            let whole = hf.tokenizer.passage_tokens_whole(&text).unwrap();
            let pieces = hf.tokenizer.passage_tokens(&text, usize::MAX).unwrap();
            assert!(pieces.complete, "{dir}, {name}");
            assert_eq!(pieces.offsets.len(), whole.offsets.len(), "{dir}, {name}: token count");
            let first_difference = (0..whole.offsets.len()).find(|&i| pieces.offsets[i] != whole.offsets[i] || pieces.word_starts[i] != whole.word_starts[i]);
            assert_eq!(first_difference, None, "{dir}, {name}: spans or word starts differ");
            let bounded = hf.tokenizer.passage_tokens(&text, 3000).unwrap();
            let n = bounded.offsets.len();
            assert!(n >= 3000.min(whole.offsets.len()), "{dir}, {name}: {n} tokens read for 3000");
            assert_eq!(bounded.offsets[..], whole.offsets[..n], "{dir}, {name}: a bounded read is not a prefix");
            assert_eq!(bounded.complete, n == whole.offsets.len(), "{dir}, {name}");
        }
    }
}

/// A huge document with windows: at most MAX_WINDOWS_PER_DOCUMENT windows, the first windows of
/// the whole text (its head alone gives the same ones), found without tokenising all of it.
#[test]
fn windows_of_a_huge_document_stop_at_the_bound() {
    let hf = crossrank::local::read_hf_dir(&common::root().join("tests/models/minilm-l4"), &Device::Cpu).unwrap();
    let words: Vec<String> = (0..2_000_000).map(|i| format!("word{}", i % 97)).collect();
    let huge = words.join(" ");
    let head = words[..60_000].join(" ");
    let split = |text: &str| crossrank::windows::split(&hf.tokenizer, 4, text, 128, 32).unwrap();
    let windows = split(&huge);
    assert_eq!(windows.len(), crossrank::windows::MAX_WINDOWS_PER_DOCUMENT);
    assert_eq!(windows, split(&head));
    assert!(windows.windows(2).all(|pair| pair[0].start < pair[1].start && pair[0].end < pair[1].end && pair[1].start < pair[0].end));
    // The browser reads the huge text in prefixes growing ×4 from 64 Ki until one decides its windows.
    let decides = |start: &str| crossrank::windows::prefix_suffices(&hf.tokenizer, 4, start, 128, 32).unwrap();
    assert!(!decides(&huge[..20_000]), "20 KB cannot hold 256 windows");
    let mut length = 1 << 16;
    while !decides(&huge[..length]) {
        length *= 4;
    }
    assert!(length < huge.len() / 4, "{length} bytes read of {}", huge.len());
    assert_eq!(split(&huge[..length]), windows);
    let texts = crossrank::windows::texts(&huge, &windows);
    for (window, text) in windows.iter().zip(&texts) {
        assert_eq!(*text, crossrank::windows::text(&head, window));
    }
}

/// Nothing past MAX_TEXT_BYTES of a text is tokenised: 5 MiB of NUL (which yield no tokens) and then
/// words tokenise as their first 4 MiB, with and without windows, and a prefix that long decides.
#[test]
fn text_past_the_read_bound_is_never_tokenised() {
    let hf = crossrank::local::read_hf_dir(&common::root().join("tests/models/minilm-l4"), &Device::Cpu).unwrap();
    let bound = crossrank::tokenize::MAX_TEXT_BYTES;
    let text = format!("{}{}", "\0".repeat(bound + (1 << 20)), "vitamin d from sunlight ".repeat(100));
    let cut = &text[..bound];
    let tokens = hf.tokenizer.encode_bounded(&text, 128).unwrap();
    assert_eq!(tokens, hf.tokenizer.encode_bounded(cut, 128).unwrap());
    assert!(tokens.is_empty(), "the words past the bound were read");
    assert!(hf.tokenizer.prefix_suffices(cut, 128).unwrap());
    let split = |text: &str| crossrank::windows::split(&hf.tokenizer, 4, text, 128, 32).unwrap();
    assert_eq!(split(&text), split(cut));
    assert!(crossrank::windows::prefix_suffices(&hf.tokenizer, 4, cut, 128, 32).unwrap());
}

/// The browser reads a huge document in growing prefixes until `prefix_suffices`: from that
/// prefix on, bounded tokenisation gives exactly the whole text's tokens (so nothing past the
/// prefix need cross into wasm memory), and no shorter prefix than needed is accepted.
#[test]
fn a_sufficient_prefix_tokenises_as_the_whole_text() {
    let hf = crossrank::local::read_hf_dir(&common::root().join("tests/models/minilm-l4"), &Device::Cpu).unwrap();
    for (name, text) in long_texts() {
        for max_length in [16, 128, 512] {
            let whole = hf.tokenizer.encode_bounded(&text, max_length).unwrap();
            // The prefixes the worker tries: ×4 from 64 Ki characters (here bytes: the texts' lengths).
            let mut length = 1 << 16;
            while length < text.len() && !hf.tokenizer.prefix_suffices(&text[..floor_boundary(&text, length)], max_length).unwrap() {
                length *= 4;
            }
            let start = &text[..floor_boundary(&text, length.min(text.len()))];
            assert_eq!(hf.tokenizer.encode_bounded(start, max_length).unwrap(), whole, "{name}, max_length {max_length}: prefix of {} bytes", start.len());
        }
    }
    // A start with too few tokens (whitespace, then the text) does not suffice.
    let late = format!("{}{}", " ".repeat(100_000), "word ".repeat(1000));
    assert!(!hf.tokenizer.prefix_suffices(&late[..90_000], 128).unwrap());
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Scoring a document through the bounded path equals scoring its first 600 words alone: nothing
/// past what max_length keeps can change a logit.
#[test]
fn a_huge_document_scores_as_its_kept_prefix() {
    let reranker = tiny();
    let words: Vec<String> = (0..200_000).map(|i| format!("word{}", i % 97)).collect();
    let huge = words.join(" ");
    let head = words[..600].join(" ");
    let options = RerankOptions { max_length: Some(128), ..RerankOptions::default() };
    let logits = reranker.logits_with("word5 word7", &[&huge, &head], &options).unwrap();
    assert_eq!(logits[0], logits[1]);
}

//! Pair encoding for a cross-encoder: `[CLS] query [SEP] passage [SEP]` with real token type ids
//! (0 for the query segment, 1 for the passage), longest-first truncation, and padding to the
//! longest pair of a batch.
//!
//! A `tokenizer.json` may carry its own truncation and padding (all-MiniLM-L6-v2's cut and pad at
//! 128); sentence-transformers overrides them on every call, and so do we: both are replaced here.

use std::collections::HashMap;

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::utils::truncation::truncate_encodings;
use tokenizers::{PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

/// Rejects the `tokenizer.json` inputs on which tokenizers 0.23.2 panics instead of returning an
/// error (found by fuzzing, see HARDENING.md): any JSON syntax error inside the `decoder` value
/// (`.expect("Helper")` in its `DecoderWrapper` deserializer), and a `Precompiled` normalizer whose
/// `precompiled_charsmap` is missing or unreadable (`.expect("Precompiled")`). A document that is
/// valid JSON can no longer hit the first; the second is tried here exactly as tokenizers would.
fn check_tokenizer_json(file: &str, bytes: &[u8]) -> Result<()> {
    let json: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Error::tokenizer(file, format!("not a readable tokenizer.json ({e})")))?;
    fn check_normalizer(file: &str, normalizer: &serde_json::Value) -> Result<()> {
        match normalizer {
            serde_json::Value::Object(fields) => {
                if fields.get("type").and_then(serde_json::Value::as_str) == Some("Precompiled") {
                    let text = serde_json::to_string(normalizer).map_err(|e| Error::tokenizer(file, e))?;
                    serde_json::from_str::<tokenizers::normalizers::precompiled::Precompiled>(&text)
                        .map_err(|e| Error::tokenizer(file, format!("unreadable Precompiled normalizer ({e})")))?;
                }
                fields.values().try_for_each(|value| check_normalizer(file, value))
            }
            serde_json::Value::Array(items) => items.iter().try_for_each(|item| check_normalizer(file, item)),
            _ => Ok(()),
        }
    }
    json.get("normalizer").map_or(Ok(()), |normalizer| check_normalizer(file, normalizer))
}

/// The first bound on a text's prefix, in bytes per token kept: English averages ~5 bytes per
/// WordPiece token, CJK 3 per character; a shorter prefix is simply grown.
const PREFIX_BYTES_PER_TOKEN: usize = 12;
const MIN_PREFIX_BYTES: usize = 4096;

/// The most of one text that is ever tokenised. A text whose first 4 MiB yield fewer tokens than
/// a pair (or its windows) reads — control characters, one giant "word", a blob without spaces —
/// is cut there: tokenising such text costs 40–500 bytes of memory per byte, and past this bound a
/// text could cost gigabytes (`/dev/zero` as a document). Text with words reaches `max_length`
/// tokens (or 256 windows) long before it.
pub const MAX_TEXT_BYTES: usize = 4 << 20;

/// `text` cut at [`MAX_TEXT_BYTES`] (at a character boundary).
pub(crate) fn within_bound(text: &str) -> &str {
    &text[..floor_char_boundary(text, MAX_TEXT_BYTES.min(text.len()))]
}

/// The size [`PairTokenizer::passage_tokens`] tokenises a long text in: large enough that the
/// tokenizer's per-call cost does not count, small enough that its working memory (hundreds of
/// bytes per input byte) stays small, and that a pre-tokenizer regex that backtracks over the
/// whole input (quadratic time) only ever sees 8 KiB: time grows linearly with the document (HARDENING.md).
pub const PASSAGE_PIECE_BYTES: usize = 8 << 10;

/// Tokens of a passage, from [`PairTokenizer::passage_tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassageTokens {
    /// Each token's character span in the text.
    pub offsets: Vec<(usize, usize)>,
    /// Whether each token starts a word (not a `##` piece).
    pub word_starts: Vec<bool>,
    /// These are all of the text's tokens (else the text goes on past them).
    pub complete: bool,
}

/// Where the first piece of `text` of about `limit` bytes ends: where the last run of whitespace in
/// its second half starts (the next piece begins with that whitespace, as full tokenisation sees
/// it). Without whitespace there the piece grows ×4, up to all of `text`.
fn piece_end(text: &str, mut limit: usize) -> usize {
    while limit < text.len() {
        if let Some(cut) = whitespace_cut(&text[..floor_char_boundary(text, limit)]) {
            return cut;
        }
        limit = limit.saturating_mul(4);
    }
    text.len()
}

/// Where the last run of whitespace in the second half of `window` starts, unless that is its start.
fn whitespace_cut(window: &str) -> Option<usize> {
    let at = window.rfind(char::is_whitespace).filter(|&at| at >= window.len() / 2)?;
    Some(window[..at].trim_end().len()).filter(|&cut| cut > 0)
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Token ids of one (query, passage) pair, before padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPair {
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
}

/// A padded batch, row-major `(rows, seq_len)`.
#[derive(Debug, Clone, PartialEq)]
pub struct PaddedBatch {
    pub rows: usize,
    pub seq_len: usize,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub attention_mask: Vec<f32>,
}

/// The tokenizer files of a Hugging Face model directory, in memory.
pub enum TokenizerSource<'a> {
    /// `tokenizer.json`.
    Json(&'a [u8]),
    /// A WordPiece `vocab.txt`; `lowercase` comes from `tokenizer_config.json`'s `do_lower_case`.
    VocabTxt { text: &'a str, lowercase: bool },
}

pub struct PairTokenizer {
    tokenizer: Tokenizer,
    file: String,
    pad_id: u32,
}

impl PairTokenizer {
    pub fn from_source(source: TokenizerSource<'_>) -> Result<Self> {
        match source {
            TokenizerSource::Json(bytes) => Self::from_tokenizer_json("tokenizer.json", bytes),
            TokenizerSource::VocabTxt { text, lowercase } => Self::from_vocab_txt("vocab.txt", text, lowercase),
        }
    }

    /// The tokenizer as `tokenizer.json` text (what a crossrank GGUF stores), without truncation or padding.
    pub fn to_json(&self) -> Result<String> {
        self.tokenizer.to_string(false).map_err(|e| Error::tokenizer(&self.file, e))
    }

    /// From a `tokenizer.json`; its own truncation and padding settings are discarded.
    pub fn from_tokenizer_json(file: &str, bytes: &[u8]) -> Result<Self> {
        check_tokenizer_json(file, bytes)?;
        let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| Error::tokenizer(file, format!("not a readable tokenizer.json ({e})")))?;
        Self::new(file, tokenizer)
    }

    /// From a WordPiece `vocab.txt` with BERT's normaliser and special tokens.
    pub fn from_vocab_txt(file: &str, text: &str, lowercase: bool) -> Result<Self> {
        let vocab: HashMap<String, u32> =
            text.lines().enumerate().filter(|(_, token)| !token.is_empty()).map(|(id, token)| (token.to_string(), id as u32)).collect();
        let special = |token: &str| vocab.get(token).copied().ok_or_else(|| Error::tokenizer(file, format!("vocabulary has no {token} token")));
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        special("[UNK]")?;
        let wordpiece = WordPiece::builder().vocab(vocab.into_iter().collect::<ahash::AHashMap<_, _>>()).unk_token("[UNK]".into()).build().map_err(|e| Error::tokenizer(file, e))?;
        let mut tokenizer = Tokenizer::new(wordpiece);
        tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase))).map_err(|e| Error::tokenizer(file, e))?;
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
        tokenizer.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        Self::new(file, tokenizer)
    }

    fn new(file: &str, mut tokenizer: Tokenizer) -> Result<Self> {
        if tokenizer.get_post_processor().is_none() {
            return Err(Error::tokenizer(
                file,
                "has no post_processor, so pairs would lack the special tokens ([CLS] q [SEP] d [SEP] or <s> q </s></s> d </s>) the model was trained with",
            ));
        }
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| Error::tokenizer(file, e))?;
        let pad_id = tokenizer.token_to_id("[PAD]").or_else(|| tokenizer.token_to_id("<pad>")).unwrap_or(0);
        Ok(Self { tokenizer, file: file.to_string(), pad_id })
    }

    /// The tokenizer's model: "WordPiece", "Unigram", "BPE" or "WordLevel".
    pub fn model_kind(&self) -> &'static str {
        match self.tokenizer.get_model() {
            tokenizers::ModelWrapper::WordPiece(_) => "WordPiece",
            tokenizers::ModelWrapper::Unigram(_) => "Unigram",
            tokenizers::ModelWrapper::BPE(_) => "BPE",
            tokenizers::ModelWrapper::WordLevel(_) => "WordLevel",
        }
    }

    /// The id padding gets.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// The largest token id this tokenizer can produce (checked against the model's vocabulary).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// The id of `token` (vocabulary or added token), if the tokenizer has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The token with id `id`, if any.
    pub fn token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// The token with the largest id the tokenizer can emit (vocabulary and added tokens), and
    /// that id: the embedding table must have a row for it. A vocabulary's ids need not be dense
    /// (`vocab_size` counts entries, not the largest id), so this looks at every one, once.
    pub fn largest_id(&self) -> Option<(String, u32)> {
        self.tokenizer.get_vocab(true).into_iter().max_by_key(|&(_, id)| id)
    }

    /// Whether `text` tokenises to nothing (empty, whitespace, or only characters the normaliser
    /// drops, such as U+200B, U+00AD, controls or U+FFFD): a pair with it would hold only special
    /// tokens, which a cross-encoder still scores. Only a prefix is tokenised, until one token.
    pub fn is_blank(&self, text: &str) -> Result<bool> {
        Ok(!has_content(&self.encode_prefix(text, 1)?))
    }

    /// Encodes `query` against every passage, truncating the longer segment first (token by token,
    /// as transformers' `truncation="longest_first"`) so that each pair fits `max_length` tokens.
    /// The query is tokenised once for all passages.
    pub fn encode_pairs(&self, query: &str, passages: &[&str], max_length: usize) -> Result<Vec<EncodedPair>> {
        Ok(self.encode_pairs_noting_blanks(query, passages, max_length)?.into_iter().map(|(pair, _)| pair).collect())
    }

    /// [`Self::encode_pairs`], with whether each passage is blank ([`Self::is_blank`]), read from
    /// the tokens the pair was built from (no second tokenisation).
    pub fn encode_pairs_noting_blanks(&self, query: &str, passages: &[&str], max_length: usize) -> Result<Vec<(EncodedPair, bool)>> {
        let special_tokens = self.tokenizer.get_post_processor().map_or(0, |processor| processor.added_tokens(true));
        if max_length < special_tokens + 2 {
            return Err(Error::invalid(format!(
                "maxLength {max_length} leaves no room for text: a pair needs {special_tokens} special tokens plus at least 2"
            )));
        }
        let truncation = TruncationParams {
            max_length: max_length - special_tokens,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        };
        // Neither side can keep more than max_length tokens, so no more are tokenised.
        let encode = |text: &str| self.encode_prefix(text, max_length);
        let query_encoding = encode(query)?;
        passages
            .iter()
            .map(|passage| {
                let passage_encoding = encode(passage)?;
                let blank = !has_content(&passage_encoding);
                let (query_part, passage_part) = truncate_encodings(query_encoding.clone(), Some(passage_encoding), &truncation)
                    .map_err(|e| Error::tokenizer(&self.file, e))?;
                let encoding =
                    self.tokenizer.post_process(query_part, passage_part, true).map_err(|e| Error::tokenizer(&self.file, e))?;
                Ok((EncodedPair { input_ids: encoding.get_ids().to_vec(), token_type_ids: encoding.get_type_ids().to_vec() }, blank))
            })
            .collect()
    }

    /// The tokens of `text` without special tokens, of which at least the first `need` are exactly
    /// full tokenisation's (all of them when the text has fewer). Only a prefix of a long text is
    /// tokenised, so memory and time per text are O(`need`), not O(text): a 10 MB document
    /// tokenised whole took 5 GB. The prefix ends where a run of whitespace starts; pre-tokenisers
    /// split there and normalisers do not reach across it, so the prefix's tokens are the text's.
    /// The bound grows ×4 until the prefix has `need` tokens. A text with no whitespace in the last
    /// half of the bound (a giant "word") is cut anywhere, but only once it gives 2 × `need` tokens,
    /// far from the cut.
    fn encode_prefix(&self, text: &str, need: usize) -> Result<tokenizers::Encoding> {
        let text = within_bound(text);
        match self.encode_decided_prefix(text, need)? {
            Some(encoding) => Ok(encoding),
            None => self.tokenizer.encode(text, false).map_err(|e| Error::tokenizer(&self.file, e)),
        }
    }

    /// [`Self::encode_prefix`]'s growing bound, within `text`: the encoding of the first prefix
    /// that has enough tokens, or `None` when the bound outgrows `text` first (then all of `text`
    /// is needed). It reads only `text[..bound]` at each step, so on the start of a longer text it
    /// decides exactly as on the whole.
    fn encode_decided_prefix(&self, text: &str, need: usize) -> Result<Option<tokenizers::Encoding>> {
        let mut limit = need.saturating_mul(PREFIX_BYTES_PER_TOKEN).max(MIN_PREFIX_BYTES);
        while limit < text.len() {
            let window = &text[..floor_char_boundary(text, limit)];
            let (prefix, enough) = match whitespace_cut(window) {
                Some(cut) => (&text[..cut], need),
                None => (window, need.saturating_mul(2)),
            };
            let encoding = self.tokenizer.encode(prefix, false).map_err(|e| Error::tokenizer(&self.file, e))?;
            if encoding.len() >= enough {
                return Ok(Some(encoding));
            }
            limit = limit.saturating_mul(4);
        }
        Ok(None)
    }

    /// Whether `start`, the beginning of a longer text, already holds every token a pair of at
    /// most `max_length` tokens reads from that text (without windows). The browser build reads a
    /// huge document across the JS boundary in growing prefixes until this holds, instead of
    /// copying all of it into wasm memory, which never shrinks.
    pub fn prefix_suffices(&self, start: &str, max_length: usize) -> Result<bool> {
        Ok(start.len() >= MAX_TEXT_BYTES || self.encode_decided_prefix(start, max_length)?.is_some())
    }

    /// Every token of `text`, however long: the reference `encode_pairs` must agree with (tests).
    #[doc(hidden)]
    pub fn encode_whole(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode(text, false).map_err(|e| Error::tokenizer(&self.file, e))?.get_ids().to_vec())
    }

    /// [`Self::passage_tokens`] of all of `text` in one piece: the reference it must agree with (tests).
    #[doc(hidden)]
    pub fn passage_tokens_whole(&self, text: &str) -> Result<PassageTokens> {
        let mut tokens = PassageTokens { offsets: Vec::new(), word_starts: Vec::new(), complete: true };
        self.push_spans(text, 0, &mut tokens)?;
        Ok(tokens)
    }

    /// Appends the spans (shifted by `chars_before`) and word starts of `piece`'s tokens.
    fn push_spans(&self, piece: &str, chars_before: usize, tokens: &mut PassageTokens) -> Result<()> {
        let encoding = self.tokenizer.encode_char_offsets(piece, false).map_err(|e| Error::tokenizer(&self.file, e))?;
        let word_ids = encoding.get_word_ids();
        for (i, &(start, end)) in encoding.get_offsets().iter().enumerate() {
            tokens.offsets.push((start + chars_before, end + chars_before));
            tokens.word_starts.push(i == 0 || word_ids[i] != word_ids[i - 1]);
        }
        Ok(())
    }

    /// The first tokens of `text` as `encode_pairs` tokenises it (at least `need` exact ones).
    #[doc(hidden)]
    pub fn encode_bounded(&self, text: &str, need: usize) -> Result<Vec<u32>> {
        Ok(self.encode_prefix(text, need)?.get_ids().to_vec())
    }

    /// How many tokens `text` has on its own, without special tokens.
    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.tokenizer.encode(text, false).map_err(|e| Error::tokenizer(&self.file, e))?.len())
    }

    /// The first tokens of `text` (at least `need` of them, or all when it has fewer): each one's
    /// character span, whether it starts a word (not a `##` piece), and whether these are all of
    /// `text`'s tokens. The text is tokenised in pieces of about [`PASSAGE_PIECE_BYTES`] that start
    /// where a run of whitespace starts (so a piece boundary never falls inside a word, and the
    /// tokens are full tokenisation's; tests/hardening.rs checks it), and only until `need` tokens
    /// are there: a huge document costs the memory of the tokens kept, not of all of it.
    pub fn passage_tokens(&self, text: &str, need: usize) -> Result<PassageTokens> {
        let text = within_bound(text);
        let mut tokens = PassageTokens { offsets: Vec::new(), word_starts: Vec::new(), complete: false };
        let (mut rest, mut chars_before) = (text, 0);
        while !rest.is_empty() {
            if tokens.offsets.len() >= need {
                return Ok(tokens);
            }
            let piece = &rest[..piece_end(rest, PASSAGE_PIECE_BYTES)];
            self.push_spans(piece, chars_before, &mut tokens)?;
            chars_before += piece.chars().count();
            rest = &rest[piece.len()..];
        }
        tokens.complete = true;
        Ok(tokens)
    }

    /// Pads `pairs` to the longest of them; padding gets `[PAD]`, type 0, mask 0.
    pub(crate) fn pad(&self, pairs: &[&EncodedPair]) -> PaddedBatch {
        PaddedBatch::new(pairs, self.pad_id)
    }
}

impl PaddedBatch {
    /// `pairs` padded to the longest of them with `pad_id`, type 0, mask 0.
    pub(crate) fn new(pairs: &[&EncodedPair], pad_id: u32) -> Self {
        let seq_len = pairs.iter().map(|pair| pair.input_ids.len()).max().unwrap_or(0);
        let rows = pairs.len();
        let mut batch = PaddedBatch {
            rows,
            seq_len,
            input_ids: vec![pad_id; rows * seq_len],
            token_type_ids: vec![0; rows * seq_len],
            attention_mask: vec![0.0; rows * seq_len],
        };
        for (row, pair) in pairs.iter().enumerate() {
            let start = row * seq_len;
            let len = pair.input_ids.len();
            batch.input_ids[start..start + len].copy_from_slice(&pair.input_ids);
            batch.token_type_ids[start..start + len].copy_from_slice(&pair.token_type_ids);
            batch.attention_mask[start..start + len].fill(1.0);
        }
        batch
    }
}

/// Whether an encoding holds any text: a token other than the word-boundary marker alone.
/// XLM-RoBERTa's Metaspace pre-tokenizer turns whitespace into a lone `▁` token, which is no more
/// text than the nothing BERT's WordPiece makes of it; without this, "  " would count as text there.
fn has_content(encoding: &tokenizers::Encoding) -> bool {
    encoding.get_tokens().iter().any(|token| !token.trim_start_matches('\u{2581}').is_empty())
}

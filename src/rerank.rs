//! The public entry point: a [`Reranker`] built from model bytes (never from paths, so the same
//! code runs in wasm), scoring a query against candidate documents and ordering them.

use candle_core::Tensor;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fusion::{self, ScoreScale};
use crate::options::RerankOptions;
use crate::windows::{self, Aggregate, Window};
use crate::model::{Config, CrossEncoder, Family};
use crate::tokenize::{EncodedPair, PaddedBatch, PairTokenizer};

/// A batch on a GPU (CUDA, and the WebGPU encoder's by default), or of an f32 model on a CPU with
/// several threads, holds at most this many tokens (pairs × longest pair): 8 pairs of 128 tokens,
/// 2 of 512. The feed-forward activations (tokens × intermediate size) are then at most ~6 MiB per
/// copy, and attention is bounded separately ([`crate::model::ATTENTION_ELEMENTS_PER_STEP`]), so
/// peak memory is bounded whatever the input size. A single pair longer than this is still one
/// batch.
pub const MAX_TOKENS_PER_BATCH: usize = 1024;

/// A batch on a CPU holds at most this many tokens where the batches run one per thread: always
/// in wasm (a worker has one thread), and natively for int8 models (each of rayon's threads takes
/// whole batches) and on one thread. A pair longer than 64 tokens is a batch of its own, shorter
/// ones share one. Smaller batches are faster there, not slower: a batch's activations (128
/// tokens × 1536 f32 = 768 KiB in the feed-forward) stay in L2 between a layer's passes, and no
/// pair is padded to a longer one; the kernels read the weights once per 64 rows whatever the
/// batch ([`crate::int8`]). Against 1,024 tokens (BENCHMARKS.md, issue 34, sixth and seventh
/// rounds): in Chromium W30 5.5% faster, W30-short (pairs of ~90 tokens) 12%, pairs of ~30 tokens
/// 13%; natively W30 9% on one thread, and on two W30-short 22% (the threads no longer fork and
/// join for each operation of a small batch). An f32 model on several threads keeps
/// [`MAX_TOKENS_PER_BATCH`] (its W30 was 20% slower in 128-token batches: candle's f32 attention
/// holds a whole head's scores, and two of them no longer fit in cache). Memory is bounded per
/// thread: each holds one batch at a time. The same logits either way: a pair's logits never
/// depend on the pairs batched with it.
pub const MAX_TOKENS_PER_CPU_BATCH: usize = 128;

/// One query and its candidates, for [`Reranker::rerank_many`].
#[derive(Debug, Clone, Copy)]
pub struct RerankRequest<'a> {
    pub query: &'a str,
    pub documents: &'a [&'a str],
    /// The first stage's scores (higher is better), for fusion; without them the input order is
    /// taken as the first stage's ranking. f64, as JS and JSON send them: any finite score is
    /// taken, and scores that differ past f32's precision keep their order.
    pub first_stage: Option<&'a [f64]>,
}

/// One document's score before ordering: what the model said, and which window won.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredDocument {
    /// The raw logit; with windows, the aggregate of the window logits.
    pub logit: f32,
    pub best_window: Option<Window>,
    /// The document tokenises to nothing (empty, whitespace, or only characters the tokenizer
    /// drops, such as U+200B or controls; [`PairTokenizer::is_blank`]): [`order`] puts it last
    /// with score 0, whatever the model said of it (a cross-encoder can rate nothing above a
    /// relevant passage).
    pub blank: bool,
}

/// One document's place in the new order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RankedDocument {
    /// Position of the document in the caller's input.
    pub index: usize,
    /// The cross-encoder's raw output (sentence-transformers' score with `activation_fn=Identity`);
    /// with windows, the aggregate of the window logits.
    pub logit: f32,
    /// `sigmoid(logit)` by default (sentence-transformers' score for a one-label model), in (0, 1).
    pub score: f32,
    /// The fused score the order follows, when fusion was asked for.
    pub fused: Option<f32>,
    /// With windows: the best-scoring window, in character offsets into the document.
    pub best_window: Option<Window>,
}

/// The tokenizer must be the kind the family was trained with, and every id it can produce (vocab,
/// special tokens, padding, token types) must index the model's tables: an id past a table fails
/// every request later, or with a quantised table silently reads zeros.
fn check_tokenizer_fits(config: &Config, tokenizer: &PairTokenizer) -> Result<()> {
    let mismatch = |message: String| Error::Tokenizer { file: tokenizer.file().to_string(), message };
    let family = config.family();
    let kind = tokenizer.model_kind();
    let fits = match family {
        Family::Bert | Family::Electra => kind == "WordPiece",
        Family::XlmRoberta => kind == "Unigram" || kind == "BPE",
    };
    if !fits {
        return Err(mismatch(format!(
            "is a {kind} tokenizer, but a model_type \"{}\" model reads {}: they do not belong together",
            family.name(),
            if family == Family::XlmRoberta { "SentencePiece Unigram or BPE tokens" } else { "WordPiece tokens" }
        )));
    }
    let vocab_size = config.vocab_size;
    if tokenizer.vocab_size() > vocab_size {
        return Err(mismatch(format!(
            "the tokenizer has {} tokens but the model's embedding table only {vocab_size}: they do not belong together",
            tokenizer.vocab_size()
        )));
    }
    // Every id the tokenizer can emit, not only as many as it has: an id past the table is read
    // by candle's index_select as a row of zeros (f32) or fails every request (GGUF).
    if let Some((token, id)) = tokenizer.largest_id().filter(|&(_, id)| id as usize >= vocab_size) {
        return Err(mismatch(format!(
            "its token {token:?} has id {id}, past the model's {vocab_size}-row embedding table: they do not belong together"
        )));
    }
    // A probe pair shows the special tokens and type ids the post-processor adds.
    let probe = tokenizer.encode_pairs("a", &["b"], config.max_positions().min(64))?;
    let ids = probe.iter().flat_map(|pair| pair.input_ids.iter().copied()).chain([tokenizer.pad_id()]);
    if let Some(id) = ids.filter(|&id| id as usize >= vocab_size).max() {
        return Err(mismatch(format!("produces token id {id}, past the model's {vocab_size}-row embedding table (a special token's id?)")));
    }
    let types = probe.iter().flat_map(|pair| pair.token_type_ids.iter().copied());
    if let Some(kind) = types.filter(|&kind| kind as usize >= config.type_vocab_size).max() {
        return Err(mismatch(format!(
            "produces token type {kind}, but the model has type_vocab_size = {}",
            config.type_vocab_size
        )));
    }
    check_pair_layout(family, tokenizer, &probe[0])
}

/// The probe pair ("a", "b") must come out as the family was trained to read pairs: `[CLS] a [SEP]
/// b [SEP]` with token types 0 then 1 (BERT, ELECTRA), `<s> a </s></s> b </s>` (XLM-RoBERTa). A
/// post-processor that adds other special tokens, swaps them or adds none loads and scores, wrongly
/// (3.35 vs 2.69 on one pair): its behaviour is checked, not its type.
fn check_pair_layout(family: Family, tokenizer: &PairTokenizer, probe: &EncodedPair) -> Result<()> {
    let mismatch = |message: String| Error::Tokenizer { file: tokenizer.file().to_string(), message };
    let (cls_name, sep_name) = match family {
        Family::Bert | Family::Electra => ("[CLS]", "[SEP]"),
        Family::XlmRoberta => ("<s>", "</s>"),
    };
    let special = |name: &str| {
        tokenizer.token_id(name).ok_or_else(|| {
            mismatch(format!("has no {name} token, which a model_type \"{}\" model's pairs are built with", family.name()))
        })
    };
    let (cls, sep) = (special(cls_name)?, special(sep_name)?);
    let (a, b) = (tokenizer.encode_whole("a")?, tokenizer.encode_whole("b")?);
    let middle: &[u32] = if family == Family::XlmRoberta { &[sep, sep] } else { &[sep] };
    let expected: Vec<u32> = [&[cls][..], &a, middle, &b, &[sep]].concat();
    let layout = if family == Family::XlmRoberta { format!("{cls_name} a {sep_name}{sep_name} b {sep_name}") } else { format!("{cls_name} a {sep_name} b {sep_name}") };
    if probe.input_ids != expected {
        let tokens: Vec<String> = probe.input_ids.iter().map(|&id| tokenizer.token(id).unwrap_or_else(|| format!("#{id}"))).collect();
        return Err(mismatch(format!(
            "its post_processor makes the pair (\"a\", \"b\") [{}], but a model_type \"{}\" model reads {layout}: it would score every pair wrongly",
            tokens.join(" "),
            family.name()
        )));
    }
    // BERT and ELECTRA tell the segments apart by token type (XLM-RoBERTa has one type).
    if family != Family::XlmRoberta {
        let query_types = 2 + a.len();
        let expected: Vec<u32> = (0..probe.token_type_ids.len()).map(|i| u32::from(i >= query_types)).collect();
        if probe.token_type_ids != expected {
            return Err(mismatch(format!(
                "its post_processor gives the pair (\"a\", \"b\") token types {:?}, but a model_type \"{}\" model reads 0 for {cls_name} a {sep_name} and 1 for b {sep_name}",
                probe.token_type_ids,
                family.name()
            )));
        }
    }
    Ok(())
}

/// Shorter defaults leave no room for a passage next to a typical query.
const MIN_DEFAULT_MAX_LENGTH: usize = 16;

/// The one check of a default `max_length`, whether it is being written into a file or read from one.
pub(crate) fn check_default_max_length(max_length: usize, positions: usize) -> Result<usize> {
    if max_length < MIN_DEFAULT_MAX_LENGTH {
        return Err(Error::invalid(format!("a default max_length of {max_length} is too short (at least {MIN_DEFAULT_MAX_LENGTH})")));
    }
    check_within_positions("max_length", max_length, positions)
}

/// Every `max_length`, a call's or a default, must fit the model's position embeddings; `name` is
/// what the message calls it: the option's name (JS's, which every front end parses), or the file's.
fn check_within_positions(name: &str, max_length: usize, positions: usize) -> Result<usize> {
    if max_length > positions {
        return Err(Error::invalid(format!("{name} {max_length} exceeds the model's {positions} position embeddings")));
    }
    Ok(max_length)
}

/// Reading a long text only as far as scoring needs it, as the front ends that hold huge
/// documents do (the browser across the JS boundary, the CLI's `rerank` input): in prefixes
/// growing ×4 from a first length until [`Reranker::prefix_suffices`] says one decides everything
/// scoring reads. Lengths are in the caller's unit (UTF-16 units in the browser, bytes in the
/// CLI). Deciding tokenises a prefix once more than scoring does: bounded work (each prefix is 4×
/// the last), only for such texts.
#[derive(Debug, Clone, Copy)]
pub struct GrowingPrefix {
    /// The length of the next prefix to try.
    next: usize,
}

impl GrowingPrefix {
    pub const fn new(first: usize) -> Self {
        Self { next: first }
    }

    /// A text of `length` units that can be read in prefixes (`fetch(n)`: its first `n` units):
    /// the first prefix that `suffices`, or `None` when the whole text is needed (a text of at
    /// most the first length is always read whole).
    pub fn read<P: AsRef<str>>(
        mut self,
        length: usize,
        mut fetch: impl FnMut(usize) -> P,
        suffices: impl Fn(&str) -> Result<bool>,
    ) -> Result<Option<P>> {
        while self.next < length {
            if let Some(prefix) = self.check(length, &mut fetch, &suffices)? {
                return Ok(Some(prefix));
            }
        }
        Ok(None)
    }

    /// For a text that arrives in pieces, with `available` units of it at hand: once they pass the
    /// next length, the prefix `fetch(next)` gives (the text cut there, or all of it at hand) is
    /// checked with `suffices` and returned if it does; the next length grows ×4 either way.
    pub fn check<P: AsRef<str>>(
        &mut self,
        available: usize,
        fetch: impl FnOnce(usize) -> P,
        suffices: impl FnOnce(&str) -> Result<bool>,
    ) -> Result<Option<P>> {
        if available <= self.next {
            return Ok(None);
        }
        let prefix = fetch(self.next);
        let sufficient = suffices(prefix.as_ref())?;
        self.next = self.next.saturating_mul(4);
        Ok(sufficient.then_some(prefix))
    }
}

pub struct Reranker {
    model: CrossEncoder,
    tokenizer: PairTokenizer,
    /// The `max_length` used when a call names none: the length the model was trained at when its
    /// files say so (`model_max_length`), else its position embeddings.
    default_max_length: usize,
}

impl Reranker {
    pub(crate) fn new(model: CrossEncoder, tokenizer: PairTokenizer) -> Result<Self> {
        check_tokenizer_fits(model.config(), &tokenizer)?;
        let default_max_length = model.config().max_positions();
        Ok(Self { model, tokenizer, default_max_length })
    }

    /// Sets the length used when a call names no `max_length`. A model fine-tuned on short pairs
    /// can rank much worse on longer ones, so its files carry the length it was trained at.
    pub fn with_default_max_length(mut self, max_length: usize) -> Result<Self> {
        self.default_max_length = check_default_max_length(max_length, self.max_positions())?;
        Ok(self)
    }

    /// The tokenizer, for callers that prepare texts (the browser build reads huge documents only
    /// as far as [`PairTokenizer::prefix_suffices`] says).
    pub fn tokenizer(&self) -> &PairTokenizer {
        &self.tokenizer
    }

    /// Whether `start`, the beginning of a longer document, already decides everything scoring it
    /// against `query` with `options` reads: the tokens a pair keeps, or with windows every window.
    /// Callers that stream a huge document (the browser across the JS boundary, the CLI's input)
    /// hold it only this far.
    pub fn prefix_suffices(&self, query: &str, start: &str, options: &RerankOptions) -> Result<bool> {
        let max_length = self.check_max_length(options.max_length)?;
        match options.windows {
            None => self.tokenizer.prefix_suffices(start, max_length),
            Some(window) => windows::prefix_suffices(&self.tokenizer, self.tokenizer.count_tokens(query)?, start, max_length, window.overlap),
        }
    }

    /// The `max_length` a call without one gets.
    pub fn default_max_length(&self) -> usize {
        self.default_max_length
    }

    pub fn config(&self) -> &Config {
        self.model.config()
    }

    /// The longest pair the model accepts.
    pub fn max_positions(&self) -> usize {
        self.model.config().max_positions()
    }

    /// Token ids of each (query, document) pair exactly as they enter the model.
    pub fn encode(&self, query: &str, documents: &[&str], max_length: Option<usize>) -> Result<Vec<EncodedPair>> {
        let max_length = self.check_max_length(max_length)?;
        self.tokenizer.encode_pairs(query, documents, max_length)
    }

    /// Raw logits, one per document, in input order.
    pub fn logits(&self, query: &str, documents: &[&str]) -> Result<Vec<f32>> {
        self.logits_with(query, documents, &RerankOptions::default())
    }

    /// Raw logits with explicit options (`top_k`, fusion, scale and threshold are ignored); with
    /// windows, each document's aggregate logit.
    pub fn logits_with(&self, query: &str, documents: &[&str], options: &RerankOptions) -> Result<Vec<f32>> {
        let request = RerankRequest { query, documents, first_stage: None };
        let scored = self.score_many(&[request], options)?;
        Ok(scored.into_iter().next().unwrap_or_default().into_iter().map(|document| document.logit).collect())
    }

    /// The first half of [`Reranker::rerank_many`]: encodes every (query, document or window) pair
    /// of every request, scores them all in shared length-sorted batches, and gives each document
    /// its logit (and best window), in input order. All options are checked, even those only
    /// [`order`] uses, so that a bad one fails before the work.
    pub fn score_many(&self, requests: &[RerankRequest<'_>], options: &RerankOptions) -> Result<Vec<Vec<ScoredDocument>>> {
        let prepared = self.prepare(requests, options, self.batch_limits(options.batch_size))?;
        let logits = self.score_batches(prepared.batch_count(), |index| prepared.batch(index))?;
        prepared.finish(&logits)
    }

    /// Everything [`Reranker::score_many`] does before the encoder runs: options checked, pairs
    /// encoded (windows split), and grouped into length-sorted batches within `limits`. Another
    /// backend (the browser's WebGPU encoder) computes the batches' logits and hands them to
    /// [`PreparedScoring::finish`], so tokenising, windows and aggregation are this one code.
    pub fn prepare(&self, requests: &[RerankRequest<'_>], options: &RerankOptions, limits: BatchLimits) -> Result<PreparedScoring> {
        options.validate()?;
        let max_length = self.check_max_length(options.max_length)?;
        let mut pairs = Vec::new();
        // For every pair: (request, document, window).
        let mut owners: Vec<(usize, usize, Option<Window>)> = Vec::new();
        for (request_index, request) in requests.iter().enumerate() {
            // No candidates, nothing to judge: an empty ranking (a first stage that found nothing).
            if request.documents.is_empty() {
                continue;
            }
            // One rule for text without tokens: a query that tokenises to nothing ("\u{200b}",
            // "\x01") is as empty as "" (the model would still rank documents against it).
            if request.query.trim().is_empty() {
                return Err(Error::invalid("the query is empty"));
            }
            if self.tokenizer.is_blank(request.query)? {
                return Err(Error::invalid("the query is empty: it has no tokens (only characters the tokenizer drops)"));
            }
            match options.windows {
                None => {
                    pairs.extend(self.tokenizer.encode_pairs_noting_blanks(request.query, request.documents, max_length)?);
                    owners.extend((0..request.documents.len()).map(|document| (request_index, document, None)));
                }
                Some(window_options) => {
                    let query_tokens = self.tokenizer.count_tokens(request.query)?;
                    for (document, passage) in request.documents.iter().enumerate() {
                        let windows = windows::split(&self.tokenizer, query_tokens, passage, max_length, window_options.overlap)?;
                        let texts = windows::texts(passage, &windows);
                        // A document without tokens has one window, the whole text: blank as well.
                        pairs.extend(self.tokenizer.encode_pairs_noting_blanks(request.query, &texts, max_length)?);
                        owners.extend(windows.into_iter().map(|window| (request_index, document, Some(window))));
                    }
                }
            }
        }
        let (pairs, blanks): (Vec<EncodedPair>, Vec<bool>) = pairs.into_iter().unzip();
        let batches = batches_by_length(&pairs, limits);
        Ok(PreparedScoring {
            pairs,
            batches,
            pad_id: self.tokenizer.pad_id(),
            owners,
            blanks,
            documents_per_request: requests.iter().map(|request| request.documents.len()).collect(),
            aggregate: options.windows.map(|w| w.aggregate).unwrap_or_default(),
        })
    }

    /// Scores already-encoded pairs. Pairs are grouped by length (longest first) so that each
    /// batch is padded only to its own longest pair, then logits are put back in input order.
    pub fn score_encoded(&self, pairs: &[EncodedPair], batch_size: usize) -> Result<Vec<f32>> {
        let batches = batches_by_length(pairs, self.batch_limits(batch_size));
        let batch_logits = self.score_batches(batches.len(), |b| self.tokenizer.pad(&batches[b].iter().map(|&index| &pairs[index]).collect::<Vec<_>>()))?;
        let mut logits = vec![0.0f32; pairs.len()];
        for (&index, logit) in batches.iter().flatten().zip(batch_logits) {
            logits[index] = logit;
        }
        Ok(logits)
    }

    /// `batch_size` pairs within the token bound of this reranker's device and model: on the CPU
    /// [`MAX_TOKENS_PER_CPU_BATCH`], except an f32 model's on several threads, which keeps a GPU's
    /// [`MAX_TOKENS_PER_BATCH`].
    fn batch_limits(&self, batch_size: usize) -> BatchLimits {
        #[cfg(target_arch = "wasm32")]
        let threads = 1;
        #[cfg(not(target_arch = "wasm32"))]
        let threads = rayon::current_num_threads();
        let small = self.model.device().is_cpu() && (threads <= 1 || self.model.runs_int8());
        BatchLimits { max_rows: batch_size, max_tokens: if small { MAX_TOKENS_PER_CPU_BATCH } else { MAX_TOKENS_PER_BATCH } }
    }

    /// The logits of batches `0 .. count` (`batch(index)` pads one), concatenated in batch order.
    /// On the CPU the threads take whole batches (a free thread the next one), each built only
    /// when its thread takes it; a GPU takes them one after another.
    fn score_batches(&self, count: usize, batch: impl Fn(usize) -> PaddedBatch + Sync + Send) -> Result<Vec<f32>> {
        let per_batch = if self.model.device().is_cpu() {
            crate::cpu::map_tasks(count, |index| self.score_batch(batch(index)))
        } else {
            (0..count).map(|index| self.score_batch(batch(index))).collect()
        };
        let mut logits = Vec::new();
        for batch_logits in per_batch {
            logits.extend(batch_logits?);
        }
        Ok(logits)
    }

    /// The encoder on one padded batch: one finite logit per row.
    pub fn score_batch(&self, batch: PaddedBatch) -> Result<Vec<f32>> {
        let device = self.model.device();
        let shape = (batch.rows, batch.seq_len);
        let input_ids = Tensor::from_vec(batch.input_ids, shape, device)?;
        let token_type_ids = Tensor::from_vec(batch.token_type_ids, shape, device)?;
        let padded = batch.attention_mask.contains(&0.0);
        let attention_mask = if padded { Some(Tensor::from_vec(batch.attention_mask, shape, device)?) } else { None };
        let logits = self.model.forward(&input_ids, &token_type_ids, attention_mask.as_ref())?.to_vec1::<f32>()?;
        check_finite_logits(&logits, "of its batch")?;
        Ok(logits)
    }

    /// Scores every document against `query` and returns them best first (ties keep input order),
    /// cut to `top_k`. No documents give an empty ranking (the options are still checked).
    pub fn rerank(&self, query: &str, documents: &[&str], options: &RerankOptions) -> Result<Vec<RankedDocument>> {
        let request = RerankRequest { query, documents, first_stage: None };
        Ok(self.rerank_many(&[request], options)?.pop().unwrap_or_default())
    }

    /// Reranks several queries' candidates with one set of options, batching pairs across queries.
    pub fn rerank_many(&self, requests: &[RerankRequest<'_>], options: &RerankOptions) -> Result<Vec<Vec<RankedDocument>>> {
        let scored = self.score_many(requests, options)?;
        requests.iter().zip(scored).map(|(request, documents)| order(&documents, request.first_stage, options)).collect()
    }

    fn check_max_length(&self, max_length: Option<usize>) -> Result<usize> {
        match max_length {
            None => Ok(self.default_max_length),
            Some(length) => check_within_positions("maxLength", length, self.max_positions()),
        }
    }
}

/// One document's logit from its windows' (a single entry without windows).
/// How big a batch may be: at most `max_rows` pairs and `max_tokens` tokens (rows × longest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_rows: usize,
    pub max_tokens: usize,
}

impl BatchLimits {
    /// A GPU's batches: `batchSize` pairs within [`MAX_TOKENS_PER_BATCH`].
    pub fn gpu(options: &RerankOptions) -> Self {
        Self { max_rows: options.batch_size, max_tokens: MAX_TOKENS_PER_BATCH }
    }
}

/// Pair indices in batches: sorted by length, longest first, so that each batch is padded only
/// to its own longest pair; a pair longer than `max_tokens` is a batch of its own.
fn batches_by_length(pairs: &[EncodedPair], limits: BatchLimits) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(pairs[index].input_ids.len()));
    let mut batches = Vec::new();
    let mut rest = &order[..];
    while !rest.is_empty() {
        // The first pair of a batch is its longest, since `order` is sorted by length.
        let longest = pairs[rest[0]].input_ids.len().max(1);
        let fit = (limits.max_tokens / longest).max(1);
        let (batch, tail) = rest.split_at(limits.max_rows.max(1).min(fit).min(rest.len()));
        batches.push(batch.to_vec());
        rest = tail;
    }
    batches
}

/// A non-finite logit is an error naming where it is: `pair {index} {context}`.
fn check_finite_logits(logits: &[f32], context: &str) -> Result<()> {
    match logits.iter().position(|logit| !logit.is_finite()) {
        Some(index) => Err(Error::Compute(format!("the model produced a non-finite logit ({}) for pair {index} {context}", logits[index]))),
        None => Ok(()),
    }
}

/// A rerank's pairs, encoded and batched, waiting for their logits ([`Reranker::prepare`]).
#[derive(Debug)]
pub struct PreparedScoring {
    pairs: Vec<EncodedPair>,
    /// Indices into `pairs`, one list per batch, in the order the logits come back.
    batches: Vec<Vec<usize>>,
    pad_id: u32,
    /// For every pair: (request, document, window).
    owners: Vec<(usize, usize, Option<Window>)>,
    blanks: Vec<bool>,
    documents_per_request: Vec<usize>,
    aggregate: Aggregate,
}

impl PreparedScoring {
    pub fn batch_count(&self) -> usize {
        self.batches.len()
    }

    pub fn pair_count(&self) -> usize {
        self.pairs.len()
    }

    /// Batch `index` padded to its longest pair (built when asked: only one is in memory at once).
    pub fn batch(&self, index: usize) -> PaddedBatch {
        PaddedBatch::new(&self.batches[index].iter().map(|&pair| &self.pairs[pair]).collect::<Vec<_>>(), self.pad_id)
    }

    /// Every document's logit (windows aggregated), in input order, from every batch's logits
    /// concatenated in batch order.
    pub fn finish(&self, logits: &[f32]) -> Result<Vec<Vec<ScoredDocument>>> {
        if logits.len() != self.pairs.len() {
            return Err(Error::invalid(format!("expected {} logits (one per pair, in batch order), got {}", self.pairs.len(), logits.len())));
        }
        check_finite_logits(logits, "in batch order")?;
        let mut by_pair = vec![0.0f32; self.pairs.len()];
        for (&pair, &logit) in self.batches.iter().flatten().zip(logits) {
            by_pair[pair] = logit;
        }
        // Gather window logits per document, then aggregate.
        let mut per_document: Vec<Vec<Vec<ScoredDocument>>> = self.documents_per_request.iter().map(|&n| vec![Vec::new(); n]).collect();
        for ((&(request, document, window), logit), &blank) in self.owners.iter().zip(by_pair).zip(&self.blanks) {
            per_document[request][document].push(ScoredDocument { logit, best_window: window, blank });
        }
        Ok(per_document
            .into_iter()
            .map(|documents| documents.into_iter().map(|windows| aggregate_windows(&windows, self.aggregate)).collect())
            .collect())
    }
}

fn aggregate_windows(windows: &[ScoredDocument], aggregate: Aggregate) -> ScoredDocument {
    let none = ScoredDocument { logit: f32::NAN, best_window: None, blank: false };
    let best = windows.iter().copied().reduce(|best, next| if next.logit > best.logit { next } else { best }).unwrap_or(none);
    let document = match aggregate {
        Aggregate::Max => best,
        Aggregate::Mean => ScoredDocument {
            logit: windows.iter().map(|window| window.logit).sum::<f32>() / windows.len() as f32,
            best_window: best.best_window,
            blank: false,
        },
        Aggregate::First => windows.first().copied().unwrap_or(none),
    };
    // Blank when it has no tokens: then its one window, the whole text, is blank too.
    ScoredDocument { blank: !windows.is_empty() && windows.iter().all(|window| window.blank), ..document }
}

/// The second half of [`Reranker::rerank_many`], which needs no model: scores, fuses, orders
/// (stably), thresholds and cuts one request's scored documents. Blank documents come last, in
/// input order, with score 0 (and fused 0): scores, min-max and fusion are computed over the others.
pub fn order(documents: &[ScoredDocument], first_stage: Option<&[f64]>, options: &RerankOptions) -> Result<Vec<RankedDocument>> {
    options.validate()?;
    let (filled, blank): (Vec<usize>, Vec<usize>) = (0..documents.len()).partition(|&i| !documents[i].blank);
    let logits: Vec<f32> = filled.iter().map(|&i| documents[i].logit).collect();
    let scores = match options.score_scale {
        ScoreScale::Sigmoid => logits.iter().map(|&logit| sigmoid(logit)).collect(),
        ScoreScale::MinMax => fusion::min_max(&logits),
    };
    if let (Some(first_stage), Some(_)) = (first_stage, options.fusion) {
        if first_stage.len() != documents.len() {
            return Err(Error::invalid(format!("{} first-stage scores for {} documents", first_stage.len(), documents.len())));
        }
        if let Some(position) = first_stage.iter().position(|s| !s.is_finite()) {
            return Err(Error::invalid(format!("first-stage score {position} is not a finite number")));
        }
    }
    let first_stage: Option<Vec<f64>> = first_stage.map(|scores| filled.iter().map(|&i| scores[i]).collect());
    let fused = options.fusion.map(|fusion| fusion::fuse(&fusion, &logits, first_stage.as_deref())).transpose()?;
    let mut ranked: Vec<RankedDocument> = filled
        .iter()
        .enumerate()
        .map(|(k, &index)| RankedDocument {
            index,
            logit: documents[index].logit,
            score: scores[k],
            fused: fused.as_ref().map(|fused| fused[k]),
            best_window: documents[index].best_window,
        })
        .collect();
    // Sorting on the logit, not the score: sigmoid saturates to 1.0 and would make distinct logits tie.
    match &fused {
        Some(_) => ranked.sort_by(|a, b| b.fused.unwrap_or(0.0).total_cmp(&a.fused.unwrap_or(0.0))),
        None => ranked.sort_by(|a, b| b.logit.total_cmp(&a.logit)),
    }
    ranked.extend(blank.into_iter().map(|index| RankedDocument {
        index,
        logit: documents[index].logit,
        score: 0.0,
        fused: fused.as_ref().map(|_| 0.0),
        best_window: documents[index].best_window,
    }));
    if let Some(threshold) = options.threshold {
        ranked.retain(|r| r.score >= threshold);
    }
    if let Some(k) = options.top_k {
        ranked.truncate(k);
    }
    Ok(ranked)
}

pub fn sigmoid(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

#[cfg(test)]
mod tests {
    use super::GrowingPrefix;

    /// The lengths read, and what comes back: the schedule the browser and the CLI both had
    /// (first, ×4, … while shorter than the text; the text whole when no prefix suffices).
    #[test]
    fn growing_prefix_reads_first_times_four_until_one_suffices() {
        let text = "x".repeat(100);
        let read = |needed: usize| {
            let mut lengths = Vec::new();
            let fetch = |n: usize| {
                lengths.push(n);
                &text[..n]
            };
            let prefix = GrowingPrefix::new(4).read(text.len(), fetch, |p| Ok(p.len() >= needed)).unwrap().map(str::len);
            (lengths, prefix)
        };
        assert_eq!(read(10), (vec![4, 16], Some(16)));
        assert_eq!(read(1000), (vec![4, 16, 64], None));
        assert_eq!(GrowingPrefix::new(100).read(100, |_| -> &str { unreachable!() }, |_| Ok(true)).unwrap(), None);

        // A text arriving in pieces is checked once past each length, on all that is at hand.
        let mut growing = GrowingPrefix::new(4);
        let mut checked = Vec::new();
        for available in [3, 4, 5, 6, 17, 80] {
            let suffices = |p: &str| {
                checked.push(p.len());
                Ok(false)
            };
            growing.check(available, |_| &text[..available], suffices).unwrap();
        }
        assert_eq!(checked, [5, 17, 80]);
    }
}

//! Long documents: instead of cutting a passage at `max_length`, split it into overlapping windows
//! (the query kept whole in each) and score the document by its best window, so a RAG app can
//! also cite the passage that won.
//!
//! Windows start and end on word boundaries, so each window's text, tokenised alone, gives exactly
//! the window's tokens: the score of the winning window equals that text scored as a document.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tokenize::{within_bound, PairTokenizer, PassageTokens, MAX_TEXT_BYTES};

/// How the window scores of one document become its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// The best window (the default): a document is as relevant as its most relevant part.
    #[default]
    Max,
    /// The mean window logit: favours documents relevant throughout.
    Mean,
    /// The first window only: plain truncation, with the window reported.
    First,
}

impl Aggregate {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "max" => Ok(Aggregate::Max),
            "mean" => Ok(Aggregate::Mean),
            "first" => Ok(Aggregate::First),
            other => Err(Error::invalid(format!("unknown window aggregate \"{other}\" (expected max, mean or first)"))),
        }
    }
}

/// Options for long documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOptions {
    /// Passage tokens shared by consecutive windows.
    pub overlap: usize,
    pub aggregate: Aggregate,
}

impl Default for WindowOptions {
    fn default() -> Self {
        Self { overlap: 64, aggregate: Aggregate::Max }
    }
}

/// A window of a document, in character offsets (Unicode scalar values) into the document text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Which window (0 = the start of the document).
    pub index: usize,
    pub start: usize,
    pub end: usize,
}

/// The fewest passage tokens a window may hold; a longer query is cut (longest-first) instead.
const MIN_WINDOW_TOKENS: usize = 32;

/// A document is scored by at most this many windows, its first ones; past them it is cut, as a
/// pair without windows is cut at `max_length`. 256 windows are ~13k tokens at max_length 128 and
/// ~110k at 512; the bound keeps one document's cost (time, and memory: it is tokenised only this
/// far) bounded whatever its size.
pub const MAX_WINDOWS_PER_DOCUMENT: usize = 256;

/// Splits `passage` into windows of at most the tokens left beside a query of `query_tokens`
/// tokens (counted once per query by the caller) in `max_length`, overlapping by `overlap` tokens.
/// Returns the windows' character spans, in order; together they cover every token of the passage
/// up to [`MAX_WINDOWS_PER_DOCUMENT`] windows. An empty passage is one empty window.
pub fn split(tokenizer: &PairTokenizer, query_tokens: usize, passage: &str, max_length: usize, overlap: usize) -> Result<Vec<Window>> {
    Ok(split_reading(tokenizer, query_tokens, passage, max_length, overlap)?.0)
}

/// Whether `start`, the beginning of a longer text, decides all of that text's windows: [`split`]
/// stopped reading tokens inside it (its pieces were all cut inside `start`, so the longer text
/// gives the same pieces, tokens and windows). The browser reads a huge document only this far.
pub fn prefix_suffices(tokenizer: &PairTokenizer, query_tokens: usize, start: &str, max_length: usize, overlap: usize) -> Result<bool> {
    Ok(start.len() >= MAX_TEXT_BYTES || !split_reading(tokenizer, query_tokens, start, max_length, overlap)?.1)
}

/// [`split`], and whether it read every token of `passage`.
fn split_reading(tokenizer: &PairTokenizer, query_tokens: usize, passage: &str, max_length: usize, overlap: usize) -> Result<(Vec<Window>, bool)> {
    // Nothing past the read bound is tokenised, so nothing past it is in a window either.
    let passage = within_bound(passage);
    let budget = max_length.saturating_sub(query_tokens + 3).max(MIN_WINDOW_TOKENS.min(max_length.saturating_sub(3)));
    if budget == 0 {
        return Err(Error::invalid(format!("maxLength {max_length} leaves no room for passage windows")));
    }
    if overlap >= budget {
        return Err(Error::invalid(format!("window overlap {overlap} must be smaller than the window ({budget} tokens)")));
    }
    // Tokens enough for every window a document may have (they usually step budget − overlap);
    // more when word boundaries made them step less.
    let mut need = budget.saturating_mul(MAX_WINDOWS_PER_DOCUMENT + 1);
    loop {
        let tokens = tokenizer.passage_tokens(passage, need)?;
        if let Some(windows) = place(&tokens, passage, budget, overlap) {
            return Ok((windows, tokens.complete));
        }
        need = need.saturating_mul(2);
    }
}

/// The windows over `tokens`, or `None` when they need tokens past those read.
fn place(tokens: &PassageTokens, passage: &str, budget: usize, overlap: usize) -> Option<Vec<Window>> {
    let PassageTokens { offsets, word_starts, complete } = tokens;
    let n = offsets.len();
    if *complete && n <= budget {
        return Some(vec![Window { index: 0, start: 0, end: passage.chars().count() }]);
    }
    // The last token index ≤ `limit` that starts a word (so that no word is split), else `limit`.
    let word_start_at_or_before = |limit: usize, floor: usize| -> usize {
        (floor + 1..=limit).rev().find(|&i| word_starts[i]).unwrap_or(limit)
    };
    let mut windows = Vec::new();
    let mut start = 0;
    loop {
        if start + budget >= n && !complete {
            return None;
        }
        let end = if start + budget >= n { n } else { word_start_at_or_before(start + budget, start) };
        windows.push(Window { index: windows.len(), start: offsets[start].0, end: offsets[end - 1].1 });
        if end == n || windows.len() == MAX_WINDOWS_PER_DOCUMENT {
            return Some(windows);
        }
        // Step back `overlap` tokens from the end, to a word start, but always move forward.
        start = word_start_at_or_before(end.saturating_sub(overlap).max(start + 1), start);
    }
}

/// The text of a window.
pub fn text(passage: &str, window: &Window) -> String {
    texts(passage, std::slice::from_ref(window)).concat()
}

/// The text of each window, as slices of `passage`, in one walk over its characters (windows hold
/// character offsets; walking to each one's start again would cost windows × length).
pub fn texts<'a>(passage: &'a str, windows: &[Window]) -> Vec<&'a str> {
    let mut marks: Vec<usize> = windows.iter().flat_map(|window| [window.start, window.end]).collect();
    marks.sort_unstable();
    marks.dedup();
    // The byte offset of every character offset in `marks` (the end of the text included).
    let mut boundaries = passage.char_indices().map(|(byte, _)| byte).chain(std::iter::once(passage.len())).enumerate();
    let bytes: Vec<usize> = marks
        .iter()
        .map(|&mark| boundaries.by_ref().find(|&(chars, _)| chars == mark).map_or(passage.len(), |(_, byte)| byte))
        .collect();
    let byte_of = |chars: usize| bytes[marks.binary_search(&chars).unwrap_or(0)];
    windows.iter().map(|window| &passage[byte_of(window.start)..byte_of(window.end)]).collect()
}

//! XLM-RoBERTa and RoBERTa (`XLMRobertaForSequenceClassification`): BERT's layers, position ids
//! counted from `pad_token_id + 1` (see [`super::Family`]), one token type, and a head without a
//! pooler: `classifier.dense` → tanh → `classifier.out_proj` on `<s>`. Its SentencePiece (Unigram)
//! or byte-level BPE tokenizer, with `<s> q </s></s> d </s>`, comes whole from `tokenizer.json`.

use super::{classifier, Config, Head};
use crate::error::Result;
use crate::linear::Linear;
use crate::weights::Weights;

pub(super) fn head(top: &Weights, config: &Config) -> Result<Head> {
    let hidden = config.hidden_size;
    let weights = classifier(top, "dense.weight", "XLMRobertaForSequenceClassification")?;
    Ok(Head::Classification {
        dense: Linear::load(&weights.pp("dense"), hidden, hidden)?,
        tanh: true,
        out_proj: Linear::load(&weights.pp("out_proj"), hidden, 1)?,
    })
}

//! ELECTRA (`ElectraForSequenceClassification`): BERT's layers behind embeddings that may be
//! narrower than the hidden size (`embedding_size`, projected up by `embeddings_project`), and a
//! head without a pooler: `classifier.dense` → GELU → `classifier.out_proj` on [CLS].

use super::{classifier, Config, Head};
use crate::error::Result;
use crate::linear::Linear;
use crate::weights::Weights;

/// The projection (when the embeddings are narrower) and the head.
pub(super) fn load(top: &Weights, root: &Weights, config: &Config) -> Result<(Option<Linear>, Head)> {
    let (width, hidden) = (config.embedding_width(), config.hidden_size);
    let project = if width != hidden { Some(Linear::load(&root.pp("embeddings_project"), width, hidden)?) } else { None };
    let weights = classifier(top, "dense.weight", "ElectraForSequenceClassification")?;
    // transformers' ElectraClassificationHead uses the exact GELU whatever `hidden_act` says.
    let head = Head::Classification {
        dense: Linear::load(&weights.pp("dense"), hidden, hidden)?,
        tanh: false,
        out_proj: Linear::load(&weights.pp("out_proj"), hidden, 1)?,
    };
    Ok((project, head))
}

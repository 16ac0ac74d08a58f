//! BERT (`BertForSequenceClassification`): the pooler (dense + tanh on [CLS]) under the encoder's
//! prefix, then `classifier` at the top level.

use super::{classifier, Config, Head};
use crate::error::Result;
use crate::linear::Linear;
use crate::weights::Weights;

pub(super) fn head(top: &Weights, root: &Weights, config: &Config) -> Result<Head> {
    let hidden = config.hidden_size;
    let dense = Linear::load(&root.pp("pooler").pp("dense"), hidden, hidden)?;
    let classifier = Linear::load(&classifier(top, "weight", "BertForSequenceClassification")?, hidden, 1)?;
    Ok(Head::Pooler { dense, classifier })
}

//! The CLI's option flags, shared by `rerank`, `score` and `eval`. They become the same
//! [`OptionValues`] the browser binding deserialises, and go through the one parser
//! ([`OptionValues::parse`]), so every front end checks options alike.

use clap::ValueEnum;
use crossrank::options::{FusionValues, WindowValues};
use crossrank::{Fusion, OptionValues, RerankOptions, Result, WindowOptions, DEFAULT_BATCH_SIZE};

/// How pairs are built and scored.
#[derive(clap::Args)]
pub struct ScoringArgs {
    /// Tokens per (query, document) pair; defaults to the length the model was trained at (its
    /// recorded default), else its position embeddings.
    #[arg(long)]
    max_length: Option<usize>,
    /// Pairs per forward pass.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE)]
    batch_size: usize,
    /// Score long documents by overlapping windows instead of truncating them.
    #[arg(long)]
    windows: bool,
    /// Tokens shared by consecutive windows.
    #[arg(long, default_value_t = WindowOptions::default().overlap)]
    window_overlap: usize,
    /// max, mean or first.
    #[arg(long, default_value = "max")]
    window_aggregate: String,
}

impl ScoringArgs {
    pub fn values(&self) -> OptionValues {
        OptionValues {
            max_length: self.max_length.map(|length| length as f64),
            batch_size: Some(self.batch_size as f64),
            windows: self.windows.then(|| WindowValues::Options {
                overlap: Some(self.window_overlap as f64),
                aggregate: Some(self.window_aggregate.clone()),
            }),
            ..OptionValues::default()
        }
    }
}

/// The parameter of each fusion with the first stage.
#[derive(clap::Args)]
pub struct FusionArgs {
    /// k of reciprocal rank fusion.
    #[arg(long, default_value_t = Fusion::DEFAULT_RRF_K)]
    pub rrf_k: f32,
    /// Weight of the cross-encoder in weighted fusion (1 = cross-encoder alone).
    #[arg(long, default_value_t = 0.5)]
    pub fusion_weight: f32,
}

impl FusionArgs {
    pub fn rrf(&self) -> FusionValues {
        FusionValues::Rrf { k: Some(f64::from(self.rrf_k)) }
    }

    pub fn weighted(&self) -> FusionValues {
        FusionValues::Weighted { weight: f64::from(self.fusion_weight) }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FusionName {
    Rrf,
    Weighted,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScaleName {
    Sigmoid,
    Minmax,
}

/// How documents are scored and ordered (`rerank` and `score`).
#[derive(clap::Args)]
pub struct RankingArgs {
    #[command(flatten)]
    scoring: ScoringArgs,
    /// Order by a fusion with the first stage: rrf (ranks) or weighted (normalised scores).
    #[arg(long, value_enum)]
    fusion: Option<FusionName>,
    #[command(flatten)]
    fusion_args: FusionArgs,
    /// What `score` holds.
    #[arg(long, value_enum, default_value = "sigmoid")]
    score_scale: ScaleName,
    /// Drop results whose score is below this.
    #[arg(long)]
    threshold: Option<f32>,
}

impl RankingArgs {
    pub fn options(&self, top_k: Option<usize>) -> Result<RerankOptions> {
        OptionValues {
            top_k: top_k.map(|k| k as f64),
            fusion: self.fusion.map(|fusion| match fusion {
                FusionName::Rrf => self.fusion_args.rrf(),
                FusionName::Weighted => self.fusion_args.weighted(),
            }),
            score_scale: Some(match self.score_scale {
                ScaleName::Sigmoid => "sigmoid".to_string(),
                ScaleName::Minmax => "minmax".to_string(),
            }),
            threshold: self.threshold.map(f64::from),
            ..self.scoring.values()
        }
        .parse()
    }
}

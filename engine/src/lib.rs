//! berth: a CPU inference engine for BERT-family text encoders.
//!
//! [`Model`] loads a `.berth` file and runs the tasks, text in and results out: sentence
//! embeddings, classification of texts and pairs, reranking, token classification, extractive
//! question answering and fill-mask, as sentence-transformers and transformers' pipelines
//! compute them (each method has an example). Below it, this crate holds the `.berth` file
//! format ([`format`], specified in `docs/FORMAT.md`), the model and tokenizer configuration it
//! carries ([`config`]), the exact tensor set a config implies ([`schema`]), the tokenizer
//! ([`tokenizer`]), the fast forward pass ([`fast`]), and the reference forward pass
//! ([`reference`]) that mirrors Hugging Face transformers and that every fast path is held
//! against.
//!
//! ```no_run
//! use berth::format::BerthFile;
//! use berth::reference::{Inputs, ReferenceModel};
//!
//! let file = BerthFile::open("all-MiniLM-L6-v2.berth")?;
//! let model = ReferenceModel::new(&file)?;
//! let ids = [101, 7592, 2088, 102];
//! let out = model.forward(&Inputs {
//!     batch: 1,
//!     seq: ids.len(),
//!     input_ids: &ids,
//!     attention_mask: None,
//!     token_type_ids: None,
//! })?;
//! println!("{:?}", out.sentence_embedding.map(|e| e.data));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod config;
pub mod error;
pub mod fast;
pub mod format;
mod model;
pub mod reference;
pub mod schema;
pub mod tokenizer;

pub use error::{Error, FormatError, InputError, Result};
pub use model::{
    Aggregation, Answer, Classification, Embeddings, Entity, Fill, FillMask, Label, Model,
    ModelOptions, QaOptions, Ranked, ScoreFn, Tags, DEFAULT_MAX_BATCH_TOKENS,
};

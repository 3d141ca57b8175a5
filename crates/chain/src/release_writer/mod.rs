//! Writing a release folder (see `siuo_core::release` for its format): the
//! draft of the next release and its staging ([`publish`]), the dataset
//! card ([`card`]), the Croissant metadata ([`croissant`]), the Hugging Face
//! parquet shards ([`hf_parquet`]) and the export settings ([`config`]).

pub mod card;
pub mod config;
pub mod croissant;
pub mod hf_parquet;
pub mod publish;

//! The stage chain of siuo ([`stage`]): generate, check, dedupe, verify,
//! difficulty and export, each reading the finished output of the one
//! before it, and their backends behind one trait per kind:
//! [`generator::Generator`], [`image_source::ImageSource`],
//! [`text_classifier::TextClassifier`] and
//! [`image_classifier::ImageClassifier`]; the jury that verifies cases
//! ([`jury`]); the panel of target models and judges that the difficulty
//! stage and `siuo eval` share ([`panel`]); and the writer of release
//! folders ([`release_writer`]).
//!
//! It builds on `siuo-core` and never knows a command: the commands are in
//! `siuo`.

pub mod calibration_store;
pub mod classifier_panel;
pub mod config;
pub mod generator;
pub mod image_classifier;
pub mod image_source;
pub mod jury;
pub mod panel;
pub mod project;
pub mod release_writer;
pub mod remote_classifier;
pub mod similarity;
pub mod stage;
pub mod text_classifier;

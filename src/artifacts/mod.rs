//! Artifacts: zip files (CodePipeline's format) passed from action to action, sealed at rest
//! with a data key per pipeline in authenticated chunks that stream, and kept in a store under
//! the SHA-256 of their stored bytes. The data keys (wrapped by the master key), the S3 store,
//! size limits per pipeline and retention build on these parts.

pub mod archive;
pub mod links;
pub mod sealed;
pub mod store;

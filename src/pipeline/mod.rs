//! Pipelines: CodePipeline's declaration (the wire form), the built-in action types, and the one
//! validating conversion into a [`Pipeline`]. Pure: no IO.

pub mod action_types;
pub mod import;
pub mod push;
pub mod rebase;
pub mod triggers;
mod validate;
pub mod wire;

#[cfg(test)]
mod tests;

pub use validate::{
    MAX_ACTIONS, MAX_ACTIONS_PER_STAGE, MAX_STAGES, Problem, ProblemKind, Problems, REGION,
    check_format, references, validate,
};

use wire::PipelineDeclaration;

/// How a pipeline handles a new execution while one is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionMode {
    Superseded,
    Queued,
    Parallel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineType {
    V1,
    V2,
}

/// A pipeline declaration that passed every rule, with CodePipeline's defaults filled in
/// (`runOrder: 1`, `configuration: {}`, empty artifact lists, `executionMode`, `pipelineType`).
/// It can only be built by [`validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    declaration: PipelineDeclaration,
    execution_mode: ExecutionMode,
    pipeline_type: PipelineType,
}

impl Pipeline {
    pub fn name(&self) -> &str {
        &self.declaration.name
    }

    pub fn execution_mode(&self) -> ExecutionMode {
        self.execution_mode
    }

    pub fn pipeline_type(&self) -> PipelineType {
        self.pipeline_type
    }

    /// The declaration with defaults filled, as GetPipeline returns it.
    pub fn declaration(&self) -> &PipelineDeclaration {
        &self.declaration
    }

    /// The same pipeline at another version number (versions are server-managed).
    pub fn with_version(mut self, version: i64) -> Self {
        self.declaration.version = Some(version);
        self
    }
}

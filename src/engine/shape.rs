//! What the engine needs of a pipeline version: its stages in order, each stage's actions and the
//! runOrder groups they form. Built from a valid [`Pipeline`], so it is never empty or malformed.

use crate::pipeline::Pipeline;
use crate::pipeline::wire::PipelineDeclaration;

/// One stage: its actions (in declaration order) and their runOrder groups, lowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageShape {
    pub name: String,
    pub actions: Vec<String>,
    /// Indexes into `actions`, one list per distinct runOrder, ascending.
    pub groups: Vec<Vec<usize>>,
    /// Each action's type (category, owner, provider, version), for the state-change events;
    /// empty for shapes built without a declaration.
    pub types: Vec<[String; 4]>,
}

/// The stages of the pipeline version an execution runs (pinned for its whole life).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub stages: Vec<StageShape>,
}

impl Shape {
    pub fn of(pipeline: &Pipeline) -> Shape {
        Shape::of_declaration(pipeline.declaration())
    }

    /// The shape of a stored version (validated when it was saved).
    pub fn of_declaration(declaration: &PipelineDeclaration) -> Shape {
        let stages = declaration
            .stages
            .iter()
            .map(|stage| {
                let orders: Vec<i64> = stage
                    .actions
                    .iter()
                    .map(|a| a.run_order.unwrap_or(1))
                    .collect();
                let mut shape = StageShape::new(
                    &stage.name,
                    stage.actions.iter().map(|a| a.name.clone()).collect(),
                    &orders,
                );
                shape.types = stage
                    .actions
                    .iter()
                    .map(|a| {
                        let t = &a.action_type_id;
                        [
                            t.category.clone(),
                            t.owner.clone(),
                            t.provider.clone(),
                            t.version.clone(),
                        ]
                    })
                    .collect();
                shape
            })
            .collect();
        Shape { stages }
    }

    /// The index of the stage with this name.
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        self.stages.iter().position(|s| s.name == name)
    }
}

impl StageShape {
    /// A stage whose action `i` has runOrder `run_orders[i]`.
    pub fn new(name: &str, actions: Vec<String>, run_orders: &[i64]) -> StageShape {
        let mut distinct: Vec<i64> = run_orders.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let groups = distinct
            .iter()
            .map(|order| {
                run_orders
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| *o == order)
                    .map(|(i, _)| i)
                    .collect()
            })
            .collect();
        StageShape {
            name: name.to_string(),
            actions,
            groups,
            types: Vec::new(),
        }
    }
}

//! The planner: a table of cases per rule, then properties over random pipelines and random event
//! orders.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::pipeline::ExecutionMode;

/// A shape from a compact description: each stage is a list of run orders, one per action.
fn shape(stages: &[&[i64]]) -> Arc<Shape> {
    Arc::new(Shape {
        stages: stages
            .iter()
            .enumerate()
            .map(|(si, orders)| {
                StageShape::new(
                    &format!("S{si}"),
                    (0..orders.len()).map(|a| format!("A{a}")).collect(),
                    orders,
                )
            })
            .collect(),
    })
}

fn id(n: u128) -> ExecutionId {
    Uuid::from_u128(n)
}

fn start(runs: &mut Runs, n: u128, s: &Arc<Shape>) -> Vec<Effect> {
    apply(
        runs,
        Event::Start {
            id: id(n),
            seq: n as u64,
            shape: s.clone(),
        },
    )
    .unwrap()
}

fn complete(runs: &mut Runs, n: u128, stage: usize, action: usize, ok: bool) -> Vec<Effect> {
    let attempt = runs.get(id(n)).unwrap().stages[stage].actions[action].attempt;
    apply(
        runs,
        Event::ActionCompleted {
            id: id(n),
            stage,
            action,
            attempt,
            succeeded: ok,
        },
    )
    .unwrap()
}

fn started(effects: &[Effect]) -> Vec<(usize, usize)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::StartAction { stage, action, .. } => Some((*stage, *action)),
            _ => None,
        })
        .collect()
}

fn status(runs: &Runs, n: u128) -> ExecutionStatus {
    runs.get(id(n)).unwrap().status
}

fn stage_status(runs: &Runs, n: u128, stage: usize) -> Option<StageStatus> {
    runs.get(id(n)).unwrap().stages[stage].status
}

// ---- Flow ---------------------------------------------------------------------------------

fn rollback(runs: &mut Runs, n: u128, s: &Arc<Shape>, stage: usize) -> Vec<Effect> {
    apply(
        runs,
        Event::Rollback {
            id: id(n),
            seq: n as u64,
            shape: s.clone(),
            stage,
        },
    )
    .unwrap()
}

#[test]
fn a_rollback_execution_runs_only_its_stage_and_ends_with_it() {
    let s = shape(&[&[1], &[1], &[1, 2], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Queued);
    assert_eq!(started(&rollback(&mut runs, 1, &s, 2)), [(2, 0)]);
    assert_eq!(stage_status(&runs, 1, 0), None, "earlier stages do not run");
    assert_eq!(started(&complete(&mut runs, 1, 2, 0, true)), [(2, 1)]);
    let last = complete(&mut runs, 1, 2, 1, true);
    assert!(started(&last).is_empty(), "the next stage does not run");
    assert_eq!(status(&runs, 1), ExecutionStatus::Succeeded);
    assert_eq!(stage_status(&runs, 1, 3), None);

    // It waits for the stage like any execution, and fails like one.
    start(&mut runs, 2, &s);
    complete(&mut runs, 2, 0, 0, true);
    complete(&mut runs, 2, 1, 0, true);
    assert_eq!(runs.get(id(2)).unwrap().place, Place::In { stage: 2 });
    assert!(
        started(&rollback(&mut runs, 3, &s, 2)).is_empty(),
        "the stage is taken"
    );
    complete(&mut runs, 2, 2, 0, false);
    assert_eq!(status(&runs, 2), ExecutionStatus::Failed);
    assert_eq!(runs.get(id(3)).unwrap().place, Place::In { stage: 2 });
    complete(&mut runs, 3, 2, 0, false);
    assert_eq!(status(&runs, 3), ExecutionStatus::Failed);
    // A stage it does not have is refused.
    assert!(
        apply(
            &mut runs,
            Event::Rollback {
                id: id(4),
                seq: 4,
                shape: s.clone(),
                stage: 9
            }
        )
        .is_err()
    );
}

#[test]
fn run_order_groups_run_in_turn_and_the_execution_succeeds() {
    let s = shape(&[&[1], &[1, 1, 5, 3]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    assert_eq!(started(&start(&mut runs, 1, &s)), [(0, 0)]);
    // Stage 1's groups: runOrder 1 (actions 0, 1), 3 (action 3), 5 (action 2).
    assert_eq!(
        started(&complete(&mut runs, 1, 0, 0, true)),
        [(1, 0), (1, 1)]
    );
    assert!(
        started(&complete(&mut runs, 1, 1, 1, true)).is_empty(),
        "one of the group is still running"
    );
    assert_eq!(started(&complete(&mut runs, 1, 1, 0, true)), [(1, 3)]);
    assert_eq!(started(&complete(&mut runs, 1, 1, 3, true)), [(1, 2)]);
    let last = complete(&mut runs, 1, 1, 2, true);
    assert!(last.contains(&Effect::ExecutionStatus {
        id: id(1),
        status: ExecutionStatus::Succeeded
    }));
    assert_eq!(stage_status(&runs, 1, 1), Some(StageStatus::Succeeded));
    assert_eq!(runs.get(id(1)).unwrap().place, Place::Finished);
}

#[test]
fn a_failure_lets_running_actions_finish_then_fails_the_stage_and_the_execution() {
    let s = shape(&[&[1], &[1, 1, 2]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    complete(&mut runs, 1, 0, 0, true);
    let after_failure = complete(&mut runs, 1, 1, 0, false);
    assert!(started(&after_failure).is_empty());
    assert_eq!(
        status(&runs, 1),
        ExecutionStatus::InProgress,
        "action 1 still runs"
    );
    assert_eq!(stage_status(&runs, 1, 1), Some(StageStatus::InProgress));
    // The running one succeeds, yet the next group never starts.
    let end = complete(&mut runs, 1, 1, 1, true);
    assert!(started(&end).is_empty());
    assert_eq!(stage_status(&runs, 1, 1), Some(StageStatus::Failed));
    assert_eq!(status(&runs, 1), ExecutionStatus::Failed);
    assert_eq!(runs.get(id(1)).unwrap().stages[1].actions[2].attempt, 0);
}

#[test]
fn a_completion_for_another_attempt_or_a_finished_action_changes_nothing() {
    let s = shape(&[&[1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    let before = runs.clone();
    for (stage, action, attempt) in [(0, 0, 2), (0, 0, 0), (1, 0, 1), (5, 0, 1), (0, 9, 1)] {
        let effects = apply(
            &mut runs,
            Event::ActionCompleted {
                id: id(1),
                stage,
                action,
                attempt,
                succeeded: true,
            },
        )
        .unwrap();
        assert!(effects.is_empty(), "{stage} {action} {attempt}");
        assert_eq!(runs, before);
    }
    complete(&mut runs, 1, 0, 0, true);
    let after = runs.clone();
    let again = apply(
        &mut runs,
        Event::ActionCompleted {
            id: id(1),
            stage: 0,
            action: 0,
            attempt: 1,
            succeeded: false,
        },
    )
    .unwrap();
    assert!(
        again.is_empty(),
        "a second completion of the same attempt is ignored"
    );
    assert_eq!(runs, after);
    assert!(
        apply(
            &mut runs,
            Event::ActionCompleted {
                id: id(99),
                stage: 0,
                action: 0,
                attempt: 1,
                succeeded: true
            }
        )
        .unwrap()
        .is_empty()
    );
}

// ---- Modes ----------------------------------------------------------------------------------

#[test]
fn superseded_keeps_one_waiting_execution_per_stage_the_newest() {
    let s = shape(&[&[1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    complete(&mut runs, 1, 0, 0, true); // 1 is in S1
    start(&mut runs, 2, &s);
    complete(&mut runs, 2, 0, 0, true); // 2 waits in front of S1
    assert!(matches!(
        runs.get(id(2)).unwrap().place,
        Place::Waiting { stage: 1, .. }
    ));
    start(&mut runs, 3, &s);
    let effects = complete(&mut runs, 3, 0, 0, true); // 3 arrives: 2 is superseded
    assert!(effects.contains(&Effect::ExecutionStatus {
        id: id(2),
        status: ExecutionStatus::Superseded
    }));
    assert_eq!(status(&runs, 2), ExecutionStatus::Superseded);
    // 1 finishes: 3 enters.
    let effects = complete(&mut runs, 1, 1, 0, true);
    assert!(effects.contains(&Effect::StartAction {
        id: id(3),
        stage: 1,
        action: 0,
        attempt: 1
    }));
    assert_eq!(runs.occupant("S1").unwrap().id, id(3));
}

#[test]
fn queued_waits_first_come_first_served_and_supersedes_nothing() {
    let s = shape(&[&[1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Queued);
    start(&mut runs, 1, &s);
    complete(&mut runs, 1, 0, 0, true);
    for n in 2..=4 {
        start(&mut runs, n, &s);
        complete(&mut runs, n, 0, 0, true);
    }
    let queue: Vec<ExecutionId> = runs.waiting("S1").iter().map(|e| e.id).collect();
    assert_eq!(queue, [id(2), id(3), id(4)]);
    for (finishing, next) in [(1, 2), (2, 3), (3, 4)] {
        complete(&mut runs, finishing, 1, 0, true);
        assert_eq!(status(&runs, finishing), ExecutionStatus::Succeeded);
        assert_eq!(runs.occupant("S1").unwrap().id, id(next));
    }
}

#[test]
fn the_source_stage_is_a_gate_too() {
    let s = shape(&[&[1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    let effects = start(&mut runs, 2, &s);
    assert!(started(&effects).is_empty(), "S0 is locked by 1");
    assert!(matches!(
        runs.get(id(2)).unwrap().place,
        Place::Waiting { stage: 0, .. }
    ));
    start(&mut runs, 3, &s);
    assert_eq!(status(&runs, 2), ExecutionStatus::Superseded);
}

#[test]
fn parallel_runs_every_execution_on_its_own() {
    let s = shape(&[&[1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Parallel);
    for n in 1..=3 {
        assert_eq!(started(&start(&mut runs, n, &s)), [(0, 0)], "{n}");
    }
    for n in 1..=3 {
        assert_eq!(started(&complete(&mut runs, n, 0, 0, true)), [(1, 0)]);
    }
    for n in 1..=3 {
        complete(&mut runs, n, 1, 0, true);
        assert_eq!(status(&runs, n), ExecutionStatus::Succeeded);
    }
}

#[test]
fn a_failure_releases_the_stage_for_the_waiting_execution() {
    let s = shape(&[&[1], &[1]]);
    for mode in [ExecutionMode::Superseded, ExecutionMode::Queued] {
        let mut runs = Runs::new(mode);
        start(&mut runs, 1, &s);
        complete(&mut runs, 1, 0, 0, true);
        start(&mut runs, 2, &s);
        complete(&mut runs, 2, 0, 0, true);
        let effects = complete(&mut runs, 1, 1, 0, false);
        assert_eq!(status(&runs, 1), ExecutionStatus::Failed);
        assert!(effects.contains(&Effect::StartAction {
            id: id(2),
            stage: 1,
            action: 0,
            attempt: 1
        }));
        // 2 entered after 1 failed: 1 can no longer be retried there.
        let refused = apply(
            &mut runs,
            Event::Retry {
                id: id(1),
                stage: "S1".into(),
                all_actions: false,
            },
        );
        assert_eq!(refused, Err(Refusal::NotLatest("S1".into())));
        assert_eq!(
            refused.unwrap_err().exception(),
            "NotLatestPipelineExecutionException"
        );
    }
}

// ---- Transitions ----------------------------------------------------------------------------

#[test]
fn a_disabled_transition_holds_executions_and_enabling_it_lets_one_in() {
    let s = shape(&[&[1], &[1]]);
    for mode in [
        ExecutionMode::Superseded,
        ExecutionMode::Queued,
        ExecutionMode::Parallel,
    ] {
        let mut runs = Runs::new(mode);
        apply(
            &mut runs,
            Event::Transition {
                stage: "S1".into(),
                enabled: false,
            },
        )
        .unwrap();
        start(&mut runs, 1, &s);
        let held = complete(&mut runs, 1, 0, 0, true);
        assert!(started(&held).is_empty(), "{mode:?}");
        assert!(matches!(
            runs.get(id(1)).unwrap().place,
            Place::Waiting { stage: 1, .. }
        ));
        start(&mut runs, 2, &s);
        complete(&mut runs, 2, 0, 0, true);
        let expected_superseded = mode == ExecutionMode::Superseded;
        assert_eq!(
            status(&runs, 1) == ExecutionStatus::Superseded,
            expected_superseded,
            "{mode:?}"
        );
        let opened = apply(
            &mut runs,
            Event::Transition {
                stage: "S1".into(),
                enabled: true,
            },
        )
        .unwrap();
        let entering: Vec<ExecutionId> = opened
            .iter()
            .filter_map(|e| match e {
                Effect::StartAction { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        let expected = match mode {
            ExecutionMode::Superseded => vec![id(2)],
            ExecutionMode::Queued => vec![id(1)],
            ExecutionMode::Parallel => vec![id(1), id(2)],
        };
        assert_eq!(entering, expected, "{mode:?}");
    }
}

#[test]
fn the_source_stage_has_no_inbound_transition_to_disable() {
    let s = shape(&[&[1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    apply(
        &mut runs,
        Event::Transition {
            stage: "S0".into(),
            enabled: false,
        },
    )
    .unwrap();
    assert_eq!(started(&start(&mut runs, 1, &s)), [(0, 0)]);
}

// ---- Stop -----------------------------------------------------------------------------------

#[test]
fn stop_and_wait_lets_running_actions_finish_and_starts_nothing() {
    let s = shape(&[&[1, 1, 2], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    apply(
        &mut runs,
        Event::Stop {
            id: id(1),
            abandon: false,
        },
    )
    .unwrap();
    assert_eq!(status(&runs, 1), ExecutionStatus::Stopping);
    assert_eq!(stage_status(&runs, 1, 0), Some(StageStatus::Stopping));
    assert_eq!(
        apply(
            &mut runs,
            Event::Stop {
                id: id(1),
                abandon: false
            }
        ),
        Err(Refusal::DuplicatedStop)
    );
    assert!(started(&complete(&mut runs, 1, 0, 0, true)).is_empty());
    let end = complete(&mut runs, 1, 0, 1, true);
    assert!(started(&end).is_empty(), "the next group never starts");
    assert_eq!(status(&runs, 1), ExecutionStatus::Stopped);
    assert_eq!(stage_status(&runs, 1, 0), Some(StageStatus::Stopped));
    let again = apply(
        &mut runs,
        Event::Stop {
            id: id(1),
            abandon: true,
        },
    );
    assert_eq!(again, Err(Refusal::NotStoppable("Stopped")));
    assert_eq!(
        again.unwrap_err().exception(),
        "PipelineExecutionNotStoppableException"
    );
}

#[test]
fn stop_and_abandon_ends_running_actions_at_once_and_may_follow_a_wait() {
    let s = shape(&[&[1, 1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Queued);
    start(&mut runs, 1, &s);
    start(&mut runs, 2, &s); // waits for S0
    apply(
        &mut runs,
        Event::Stop {
            id: id(1),
            abandon: false,
        },
    )
    .unwrap();
    let effects = apply(
        &mut runs,
        Event::Stop {
            id: id(1),
            abandon: true,
        },
    )
    .unwrap();
    let abandoned = effects
        .iter()
        .filter(|e| {
            matches!(
                e,
                Effect::ActionStatus {
                    status: ActionStatus::Abandoned,
                    ..
                }
            )
        })
        .count();
    assert_eq!(abandoned, 2);
    assert_eq!(status(&runs, 1), ExecutionStatus::Stopped);
    assert_eq!(
        runs.occupant("S0").unwrap().id,
        id(2),
        "the freed stage admits the next"
    );
    // A late completion of an abandoned attempt changes nothing.
    let late = apply(
        &mut runs,
        Event::ActionCompleted {
            id: id(1),
            stage: 0,
            action: 0,
            attempt: 1,
            succeeded: true,
        },
    )
    .unwrap();
    assert!(late.is_empty());
}

#[test]
fn a_waiting_execution_stops_at_once_never_enters_and_cannot_be_retried() {
    let s = shape(&[&[1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Queued);
    start(&mut runs, 1, &s);
    start(&mut runs, 2, &s);
    apply(
        &mut runs,
        Event::Stop {
            id: id(2),
            abandon: false,
        },
    )
    .unwrap();
    assert_eq!(status(&runs, 2), ExecutionStatus::Stopped);
    complete(&mut runs, 1, 0, 0, true);
    assert!(runs.occupant("S0").is_none());
    let retry = apply(
        &mut runs,
        Event::Retry {
            id: id(2),
            stage: "S0".into(),
            all_actions: false,
        },
    );
    assert!(matches!(retry, Err(Refusal::StageNotRetryable(_))));
}

// ---- Retry ----------------------------------------------------------------------------------

#[test]
fn retry_failed_actions_reruns_only_what_did_not_succeed() {
    let s = shape(&[&[1], &[1, 1, 2]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    complete(&mut runs, 1, 0, 0, true);
    complete(&mut runs, 1, 1, 0, true);
    complete(&mut runs, 1, 1, 1, false);
    assert_eq!(status(&runs, 1), ExecutionStatus::Failed);
    let effects = apply(
        &mut runs,
        Event::Retry {
            id: id(1),
            stage: "S1".into(),
            all_actions: false,
        },
    )
    .unwrap();
    assert_eq!(
        started(&effects),
        [(1, 1)],
        "only the failed action, with a new attempt"
    );
    assert_eq!(runs.get(id(1)).unwrap().stages[1].actions[1].attempt, 2);
    assert_eq!(status(&runs, 1), ExecutionStatus::InProgress);
    assert_eq!(started(&complete(&mut runs, 1, 1, 1, true)), [(1, 2)]);
    complete(&mut runs, 1, 1, 2, true);
    assert_eq!(status(&runs, 1), ExecutionStatus::Succeeded);
}

#[test]
fn retry_all_actions_reruns_the_stage_from_its_first_group() {
    let s = shape(&[&[1], &[1, 2]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    complete(&mut runs, 1, 0, 0, true);
    complete(&mut runs, 1, 1, 0, true);
    complete(&mut runs, 1, 1, 1, false);
    let effects = apply(
        &mut runs,
        Event::Retry {
            id: id(1),
            stage: "S1".into(),
            all_actions: true,
        },
    )
    .unwrap();
    assert_eq!(started(&effects), [(1, 0)]);
    assert_eq!(runs.get(id(1)).unwrap().stages[1].actions[0].attempt, 2);
}

#[test]
fn retry_after_a_stop_continues_from_where_it_stopped() {
    let s = shape(&[&[1, 2], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    apply(
        &mut runs,
        Event::Stop {
            id: id(1),
            abandon: false,
        },
    )
    .unwrap();
    complete(&mut runs, 1, 0, 0, true);
    assert_eq!(status(&runs, 1), ExecutionStatus::Stopped);
    let effects = apply(
        &mut runs,
        Event::Retry {
            id: id(1),
            stage: "S0".into(),
            all_actions: false,
        },
    )
    .unwrap();
    assert_eq!(
        started(&effects),
        [(0, 1)],
        "the group after the one that finished"
    );
}

#[test]
fn only_a_failed_or_stopped_stage_of_a_failed_or_stopped_execution_is_retryable() {
    let s = shape(&[&[1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    let cases = [
        ("S0", "running"),
        ("S1", "never entered"),
        ("Nope", "no such stage"),
    ];
    for (stage, why) in cases {
        let r = apply(
            &mut runs,
            Event::Retry {
                id: id(1),
                stage: stage.into(),
                all_actions: false,
            },
        );
        assert!(
            matches!(r, Err(Refusal::StageNotRetryable(_))),
            "{why}: {r:?}"
        );
        assert_eq!(r.unwrap_err().exception(), "StageNotRetryableException");
    }
    complete(&mut runs, 1, 0, 0, true);
    complete(&mut runs, 1, 1, 0, true);
    let r = apply(
        &mut runs,
        Event::Retry {
            id: id(1),
            stage: "S1".into(),
            all_actions: true,
        },
    );
    assert!(
        matches!(r, Err(Refusal::StageNotRetryable(_))),
        "succeeded: {r:?}"
    );
    assert_eq!(
        apply(
            &mut runs,
            Event::Retry {
                id: id(7),
                stage: "S0".into(),
                all_actions: false
            }
        ),
        Err(Refusal::ExecutionNotFound)
    );
}

#[test]
fn a_refused_event_changes_nothing() {
    let s = shape(&[&[1], &[1]]);
    let mut runs = Runs::new(ExecutionMode::Superseded);
    start(&mut runs, 1, &s);
    let before = runs.clone();
    assert!(
        apply(
            &mut runs,
            Event::Stop {
                id: id(5),
                abandon: false
            }
        )
        .is_err()
    );
    assert!(
        apply(
            &mut runs,
            Event::Start {
                id: id(1),
                seq: 9,
                shape: s.clone()
            }
        )
        .is_err()
    );
    assert_eq!(runs, before);
}

// ---- Properties ------------------------------------------------------------------------------

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Start,
    /// Completes the n-th outstanding attempt (mod their count).
    Complete {
        pick: usize,
        succeeded: bool,
    },
    Stop {
        pick: usize,
        abandon: bool,
    },
    Retry {
        pick: usize,
        stage: usize,
        all: bool,
    },
    Toggle {
        stage: usize,
    },
    /// A completion for an attempt that is not current.
    Stale {
        pick: usize,
    },
}

fn arb_shape() -> impl Strategy<Value = Vec<Vec<i64>>> {
    prop::collection::vec(prop::collection::vec(1i64..4, 1..4), 2..5)
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Start),
        8 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(pick, succeeded)| Step::Complete { pick, succeeded }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, abandon)| Step::Stop { pick, abandon }),
        1 => (any::<usize>(), 0usize..5, any::<bool>()).prop_map(|(pick, stage, all)| Step::Retry { pick, stage, all }),
        1 => (1usize..5).prop_map(|stage| Step::Toggle { stage }),
        1 => any::<usize>().prop_map(|pick| Step::Stale { pick }),
    ]
}

fn arb_mode() -> impl Strategy<Value = ExecutionMode> {
    prop_oneof![
        Just(ExecutionMode::Superseded),
        Just(ExecutionMode::Queued),
        Just(ExecutionMode::Parallel)
    ]
}

/// Outstanding attempts: (execution, stage, action, attempt) started and not yet ended.
fn outstanding(runs: &Runs) -> Vec<(ExecutionId, usize, usize, u32)> {
    let mut out = Vec::new();
    for e in &runs.executions {
        for (si, stage) in e.stages.iter().enumerate() {
            for (ai, a) in stage.actions.iter().enumerate() {
                if a.status == Some(ActionStatus::InProgress) {
                    out.push((e.id, si, ai, a.attempt));
                }
            }
        }
    }
    out
}

fn check_invariants(runs: &Runs) -> Result<(), TestCaseError> {
    let mut inside: BTreeMap<&str, usize> = BTreeMap::new();
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &runs.executions {
        match e.place {
            Place::In { stage } => {
                *inside.entry(&e.shape.stages[stage].name).or_default() += 1;
                prop_assert!(
                    !e.status.is_terminal(),
                    "a terminal execution holds a stage"
                );
                prop_assert!(matches!(
                    e.stages[stage].status,
                    Some(StageStatus::InProgress | StageStatus::Stopping)
                ));
            }
            Place::Waiting { stage, .. } => {
                *waiting.entry(&e.shape.stages[stage].name).or_default() += 1;
                prop_assert_eq!(e.status, ExecutionStatus::InProgress);
            }
            Place::Finished => prop_assert!(e.status.is_terminal()),
        }
        // Nothing runs outside the stage the execution is in.
        for (si, stage) in e.stages.iter().enumerate() {
            let runs_here = stage
                .actions
                .iter()
                .any(|a| a.status == Some(ActionStatus::InProgress));
            if runs_here {
                prop_assert_eq!(e.place, Place::In { stage: si });
            }
        }
    }
    if runs.mode != ExecutionMode::Parallel {
        prop_assert!(
            inside.values().all(|n| *n <= 1),
            "two executions in one stage: {inside:?}"
        );
    }
    if runs.mode == ExecutionMode::Superseded {
        prop_assert!(
            waiting.values().all(|n| *n <= 1),
            "two waiting at one stage: {waiting:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random pipelines, random event orders: the invariants hold after every event, a stale
    /// completion changes nothing, and once every transition is open and every job ends, every
    /// execution is terminal.
    #[test]
    fn random_histories_keep_the_rules_and_always_end(
        stages in arb_shape(),
        mode in arb_mode(),
        steps in prop::collection::vec(arb_step(), 1..80),
    ) {
        let stage_refs: Vec<&[i64]> = stages.iter().map(Vec::as_slice).collect();
        let s = shape(&stage_refs);
        let mut runs = Runs::new(mode);
        let mut next = 1u128;
        for step in steps {
            let ids: Vec<ExecutionId> = runs.executions.iter().map(|e| e.id).collect();
            match step {
                Step::Start => {
                    apply(&mut runs, Event::Start { id: id(next), seq: next as u64, shape: s.clone() }).unwrap();
                    next += 1;
                }
                Step::Complete { pick, succeeded } => {
                    let jobs = outstanding(&runs);
                    if !jobs.is_empty() {
                        let (e, stage, action, attempt) = jobs[pick % jobs.len()];
                        apply(&mut runs, Event::ActionCompleted { id: e, stage, action, attempt, succeeded }).unwrap();
                    }
                }
                Step::Stop { pick, abandon } => {
                    if !ids.is_empty() {
                        let before = runs.clone();
                        if apply(&mut runs, Event::Stop { id: ids[pick % ids.len()], abandon }).is_err() {
                            prop_assert_eq!(&runs, &before, "a refused stop changed something");
                        }
                    }
                }
                Step::Retry { pick, stage, all } => {
                    if !ids.is_empty() {
                        let before = runs.clone();
                        let name = format!("S{stage}");
                        if apply(&mut runs, Event::Retry { id: ids[pick % ids.len()], stage: name, all_actions: all }).is_err() {
                            prop_assert_eq!(&runs, &before, "a refused retry changed something");
                        }
                    }
                }
                Step::Toggle { stage } => {
                    let name = format!("S{stage}");
                    let enabled = runs.disabled.contains(&name);
                    apply(&mut runs, Event::Transition { stage: name, enabled }).unwrap();
                }
                Step::Stale { pick } => {
                    let jobs = outstanding(&runs);
                    if !jobs.is_empty() {
                        let (e, stage, action, attempt) = jobs[pick % jobs.len()];
                        let before = runs.clone();
                        let effects = apply(&mut runs, Event::ActionCompleted { id: e, stage, action, attempt: attempt + 1, succeeded: true }).unwrap();
                        prop_assert!(effects.is_empty());
                        prop_assert_eq!(&runs, &before);
                    }
                }
            }
            check_invariants(&runs)?;
        }
        // Open every gate, then let every job end (successfully or not): everything ends.
        for stage in 0..5 {
            apply(&mut runs, Event::Transition { stage: format!("S{stage}"), enabled: true }).unwrap();
        }
        let mut guard = 0;
        while let Some(&(e, stage, action, attempt)) = outstanding(&runs).first() {
            apply(&mut runs, Event::ActionCompleted { id: e, stage, action, attempt, succeeded: guard % 3 != 0 }).unwrap();
            check_invariants(&runs)?;
            guard += 1;
            prop_assert!(guard < 10_000, "jobs never stop coming");
        }
        for e in &runs.executions {
            prop_assert!(e.status.is_terminal(), "{:?} is {:?} at {:?}", e.id, e.status, e.place);
        }
    }
}

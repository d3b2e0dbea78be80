//! Micro-benchmarks run with `sluice bench …` (figures go to `docs/benchmarks.md`).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use crate::access::{
    Action, NamedPolicy, PolicyDocument, PolicySet, Principal, Resource, authorize,
};

/// A small deterministic generator (xorshift), so every run measures the same policies.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Statements like real ones: mostly Allow, a few Deny; exact actions and wildcards; resources on
/// one team's pipelines, stages and approval actions, users, or `*`.
fn statement(rng: &mut Rng, policy: usize, star: bool) -> String {
    let action_pool = [
        "codepipeline:GetPipeline",
        "codepipeline:GetPipelineState",
        "codepipeline:Get*",
        "codepipeline:List*",
        "codepipeline:StartPipelineExecution",
        "codepipeline:PutApprovalResult",
        "codepipeline:RetryStageExecution",
        "codepipeline:*Stage*",
        "iam:GetUser",
        "iam:*AccessKey*",
    ];
    let actions: Vec<String> = (0..1 + rng.below(3))
        .map(|_| format!("{:?}", action_pool[rng.below(action_pool.len())]))
        .collect();
    let team = policy % 10;
    let app = rng.below(20);
    // Denies are rare and aimed (a production stage, one pipeline), as in real policies.
    let deny = rng.below(20) == 0;
    let resource = match if deny || !star {
        1 + rng.below(5)
    } else {
        rng.below(6)
    } {
        0 => "*".to_string(),
        1 => format!("arn:sluice:codepipeline:::team{team}-app{app}"),
        2 => format!("arn:sluice:codepipeline:::team{team}-app{app}/*"),
        3 => format!("arn:sluice:codepipeline:::team{team}-*/Prod/Gate{app}"),
        4 => format!("arn:aws:codepipeline:us-east-1:111122223333:team{team}-app{app}/Prod"),
        _ => format!("arn:sluice:iam:::user/member{app}"),
    };
    let effect = if deny { "Deny" } else { "Allow" };
    format!(
        r#"{{"Effect":"{effect}","Action":[{}],"Resource":"{resource}"}}"#,
        actions.join(",")
    )
}

/// Builds `policies` policies of `statements` statements each. Without `star`, no statement
/// names the resource `*`.
pub fn policy_set(policies: usize, statements: usize, star: bool) -> PolicySet {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let named = (0..policies)
        .map(|p| {
            let body: Vec<String> = (0..statements)
                .map(|_| statement(&mut rng, p, star))
                .collect();
            let text = format!(
                r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                body.join(",")
            );
            // Twenty generated statements stay well within IAM's 6,144-character limit.
            let document =
                PolicyDocument::parse(&text).unwrap_or_else(|e| panic!("generated policy: {e}"));
            NamedPolicy {
                name: format!("policy{p}"),
                document: Arc::new(document),
            }
        })
        .collect();
    PolicySet::new(named)
}

/// `sluice bench authorize`: the cost of one decision, and of building the indexed set.
pub fn authorize_bench(policies: usize, statements: usize, decisions: usize) {
    let started = Instant::now();
    let set = Arc::new(policy_set(policies, statements, true));
    let build = started.elapsed();
    let principal = Principal::user("member3", set);

    let mut rng = Rng(0xdec1_5104);
    let requests: Vec<(Action, Resource)> = (0..4096)
        .map(|_| {
            let team = rng.below(10);
            let app = rng.below(20);
            let pipeline = format!("team{team}-app{app}");
            match rng.below(5) {
                0 => (Action::GetPipeline, Resource::pipeline(&pipeline)),
                1 => (
                    Action::StartPipelineExecution,
                    Resource::pipeline(&pipeline),
                ),
                2 => (
                    Action::PutApprovalResult,
                    Resource::pipeline_action(&pipeline, "Prod", &format!("Gate{app}")),
                ),
                3 => (
                    Action::RetryStageExecution,
                    Resource::stage(&pipeline, "Prod"),
                ),
                _ => (Action::ListPipelines, Resource::All),
            }
        })
        .collect();

    let (median, mean, p99, allowed) = time_decisions(&principal, &requests, decisions);
    println!("policies: {policies} x {statements} statements; {decisions} decisions per workload");
    println!(
        "build the indexed policy set: {:.2} ms",
        build.as_secs_f64() * 1000.0
    );
    println!(
        "mixed requests ({:.0}% allowed): median {median:.0} ns, mean {mean:.0} ns, p99 {p99:.0} ns per decision",
        allowed * 100.0
    );
    // The slowest case: nothing allows the request (no statement names `*`, and the pipeline is
    // unknown), so every statement naming the action is checked before the implicit deny.
    let scoped = Principal::user("member3", Arc::new(policy_set(policies, statements, false)));
    let refused: Vec<(Action, Resource)> = requests
        .iter()
        .map(|(action, resource)| {
            let resource = match resource {
                Resource::All => Resource::All,
                _ => Resource::pipeline_action("unknown", "Prod", "Gate"),
            };
            (*action, resource)
        })
        .collect();
    let (median, mean, p99, allowed) = time_decisions(&scoped, &refused, decisions);
    println!(
        "requests nothing allows ({:.0}% allowed): median {median:.0} ns, mean {mean:.0} ns, p99 {p99:.0} ns per decision",
        allowed * 100.0
    );
}

/// Times `decisions` decisions cycling over `requests`, in batches of 1,000 after a warm-up.
/// Returns the median, mean and 99th percentile of the batch means (ns), and the allowed share.
fn time_decisions(
    principal: &Principal,
    requests: &[(Action, Resource)],
    decisions: usize,
) -> (f64, f64, f64, f64) {
    for (action, resource) in requests.iter().cycle().take(decisions / 10) {
        black_box(authorize(principal, *action, resource));
    }
    let batch = 1000;
    let mut allowed = 0usize;
    let mut per_decision_ns: Vec<f64> = Vec::with_capacity(decisions / batch);
    let mut iter = requests.iter().cycle();
    for _ in 0..decisions / batch {
        let t = Instant::now();
        for _ in 0..batch {
            let (action, resource) = iter.next().expect("cycle never ends");
            allowed += usize::from(
                black_box(authorize(principal, *action, black_box(resource))).is_allowed(),
            );
        }
        per_decision_ns.push(t.elapsed().as_nanos() as f64 / batch as f64);
    }
    per_decision_ns.sort_by(f64::total_cmp);
    let n = per_decision_ns.len();
    let mean = per_decision_ns.iter().sum::<f64>() / n as f64;
    (
        per_decision_ns[n / 2],
        mean,
        per_decision_ns[n * 99 / 100],
        allowed as f64 / (n * batch) as f64,
    )
}

/// `sluice bench password`: the cost of hashing and verifying one password (argon2id with the
/// production parameters), on the calling thread.
pub fn password_bench(rounds: usize) {
    use crate::identity::{NewPassword, PasswordHasher};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let hasher = PasswordHasher::new(1);
        let password =
            NewPassword::parse("correct horse battery staple", "bench").expect("a valid password");
        let mut hash_ms = Vec::with_capacity(rounds);
        let mut verify_ms = Vec::with_capacity(rounds);
        let mut phc = String::new();
        for _ in 0..rounds {
            let t = Instant::now();
            phc = hasher.hash(&password).await.expect("hashing");
            hash_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            let t = Instant::now();
            black_box(
                hasher
                    .verify("correct horse battery staple", Some(&phc))
                    .await
                    .expect("verifying"),
            );
            verify_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let t = Instant::now();
        black_box(hasher.verify("whatever", None).await.expect("verifying"));
        let unknown = t.elapsed().as_secs_f64() * 1000.0;
        hash_ms.sort_by(f64::total_cmp);
        verify_ms.sort_by(f64::total_cmp);
        println!("argon2id {}", phc.split('$').nth(3).unwrap_or_default());
        println!("hash:   median {:.1} ms (n={rounds})", hash_ms[rounds / 2]);
        println!(
            "verify: median {:.1} ms (n={rounds}); unknown user (dummy hash): {unknown:.1} ms",
            verify_ms[rounds / 2]
        );
    });
}

/// The largest declaration CodePipeline's quotas allow: 50 stages, 500 actions (50 side by side in
/// one stage), each build reading the source and the previous stage's output, with references.
pub fn largest_declaration() -> serde_json::Value {
    use serde_json::json;
    let build = |name: String, input: &str, output: Option<String>| {
        let mut a = json!({
            "name": name,
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "configuration": {"BuildSpec": "version: 0.2\nphases: {build: {commands: [make]}}",
                              "EnvironmentVariables": "[{\"name\":\"COMMIT\",\"value\":\"#{Src.CommitId}\"}]"},
            "inputArtifacts": [{"name": input}]
        });
        if let Some(o) = output {
            a["outputArtifacts"] = json!([{"name": o}]);
        }
        a
    };
    let mut stages = vec![json!({"name": "Source", "actions": [{
        "name": "Checkout",
        "namespace": "Src",
        "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
        "configuration": {"RepositoryUrl": "https://git.example.com/app.git", "Branch": "main"},
        "outputArtifacts": [{"name": "Source"}]
    }]})];
    let wide: Vec<_> = (0..50)
        .map(|i| build(format!("Wide{i}"), "Source", Some(format!("W{i}"))))
        .collect();
    stages.push(json!({"name": "Wide", "actions": wide}));
    let mut remaining = 449;
    for s in 0..48 {
        let n = (if s < 17 { 10 } else { 9 }).min(remaining);
        remaining -= n;
        let input = format!("W{}", s % 50);
        let actions: Vec<_> = (0..n)
            .map(|i| build(format!("S{s}A{i}"), &input, None))
            .collect();
        stages.push(json!({"name": format!("Stage{s}"), "actions": actions}));
    }
    json!({"name": "largest", "stages": stages})
}

/// `sluice bench validate`: parsing and validating the largest legal declaration.
pub fn validate_bench(rounds: usize) {
    let text = largest_declaration().to_string();
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let decl: crate::pipeline::wire::PipelineDeclaration =
            serde_json::from_str(black_box(&text)).expect("the generated declaration parses");
        let pipeline =
            crate::pipeline::validate(decl).expect("the largest legal pipeline is valid");
        black_box(pipeline);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "largest legal declaration: 50 stages, 500 actions, {} bytes of JSON",
        text.len()
    );
    println!(
        "parse + validate: median {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={rounds})",
        times[rounds / 2],
        times[rounds * 99 / 100],
        times[rounds - 1]
    );
}

/// `sluice bench throughput`: action transitions per second through the whole engine, next to
/// a bare `FOR UPDATE SKIP LOCKED` claim-and-complete loop on the same queue and database.
///
/// Both phases run `workers` tasks for at most `seconds`, or until the queue is empty. Bare: jobs
/// that carry nothing are claimed and finished. Engine: executions of 1 + 2 + 2 + 2 pipelines
/// (many pipelines with a few executions each, started beforehand) whose actions "run"
/// instantly: each task claims an action job and finishes it through `finish_action_job` (fenced
/// finish, outputs, the planner, the next attempts and their jobs, the events, in one
/// transaction), so what is measured is the engine, not processes. (Changes to one pipeline's
/// executions are serialized by its runs lock, so many pipelines are what lets workers overlap.)
pub async fn throughput_bench(
    services: crate::ops::Services,
    workers: usize,
    seconds: u64,
) -> Result<(), crate::error::AppError> {
    use std::sync::atomic::{AtomicU64, Ordering};

    let s = services;
    let lease = time::Duration::seconds(60);
    let run = |label: &'static str, engine: bool| {
        let s = s.clone();
        async move {
            let done = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let deadline = started + std::time::Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for _ in 0..workers {
                let (s, done) = (s.clone(), done.clone());
                tasks.push(tokio::spawn(async move {
                    let owner = uuid::Uuid::new_v4();
                    let mut idle_since: Option<Instant> = None;
                    while Instant::now() < deadline {
                        let Ok(mut conn) = s.pool.acquire().await else {
                            continue;
                        };
                        let claimed =
                            crate::db::jobs::claim(&mut conn, owner, 1, s.clock.now(), lease).await;
                        drop(conn);
                        let Some(job) = claimed.ok().and_then(|mut j| j.pop()) else {
                            // Drained (another task may still be finishing what starts more).
                            let since = *idle_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > std::time::Duration::from_millis(500) {
                                break;
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                            continue;
                        };
                        idle_since = None;
                        let finished = if engine {
                            let output = Ok(crate::providers::Output::default());
                            crate::ops::executions::finish_action_job(&s, &job, &output)
                                .await
                                .unwrap_or(false)
                        } else {
                            let Ok(mut conn) = s.pool.acquire().await else {
                                continue;
                            };
                            crate::db::jobs::finish(
                                &mut conn,
                                job.id,
                                job.lease,
                                crate::db::jobs::Outcome::Succeeded,
                                None,
                                s.clock.now(),
                            )
                            .await
                            .unwrap_or(false)
                        };
                        if finished {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            let n = done.load(Ordering::Relaxed);
            // The drained tail (half a second of nothing) is not work.
            let elapsed = started.elapsed().as_secs_f64().min(seconds as f64);
            let busy = if elapsed < seconds as f64 {
                (elapsed - 0.5).max(0.001)
            } else {
                elapsed
            };
            let rate = n as f64 / busy;
            println!("{label:<28} {n:>8} in {busy:>6.2} s = {rate:>8.1} per second");
            rate
        }
    };

    // Bare: plenty of empty jobs.
    {
        let mut tx = s.pool.begin().await?;
        let now = s.clock.now();
        for i in 0..(workers as u64 * seconds * 1500).min(400_000) {
            crate::db::jobs::enqueue(&mut tx, "bench", &serde_json::json!({"n": i}), 1, now, now)
                .await?;
        }
        tx.commit().await?;
    }
    let bare = run("bare SKIP LOCKED loop", false).await;
    {
        let mut conn = s.pool.acquire().await?;
        crate::db::jobs::cancel_kind(&mut conn, "bench", s.clock.now()).await?;
    }

    // Engine: one pipeline, many executions waiting to run.
    let operator = crate::ops::Caller::operator(crate::audit::Actor {
        user_name: Some("bench".into()),
        ..Default::default()
    });
    let command = |name: &str| {
        serde_json::json!({"name": name,
            "actionTypeId": {"category": "Build", "owner": "Sluice", "provider": "Command", "version": "1"},
            "inputArtifacts": [{"name": "Src"}],
            "configuration": {"BuildSpec": "version: 0.2\nphases:\n  build:\n    commands:\n      - 'true'\n"}})
    };
    let pipelines = (workers * 16).clamp(16, 256);
    for p in 0..pipelines {
        let decl = serde_json::json!({"name": format!("throughput-{p}"), "executionMode": "PARALLEL", "stages": [
            {"name": "Source", "actions": [{"name": "Checkout",
                "actionTypeId": {"category": "Source", "owner": "Sluice", "provider": "Git", "version": "1"},
                "configuration": {"RepositoryUrl": "/nonexistent", "Branch": "main"},
                "outputArtifacts": [{"name": "Src"}]}]},
            {"name": "One", "actions": [command("A"), command("B")]},
            {"name": "Two", "actions": [command("A"), command("B")]},
            {"name": "Three", "actions": [command("A"), command("B")]}
        ]});
        let decl = serde_json::from_value(decl)
            .map_err(|e| crate::error::AppError::Internal(anyhow::Error::new(e)))?;
        // CreatePipeline starts the first execution; two more each.
        crate::ops::pipelines::create_pipeline(&s, &operator, decl, Vec::new()).await?;
        for _ in 0..2 {
            crate::ops::executions::start_pipeline_execution(
                &s,
                &operator,
                &format!("throughput-{p}"),
                Default::default(),
            )
            .await?;
        }
    }
    let engine = run("engine transitions", true).await;
    println!(
        "engine / bare = {:.0} % (target at least 25 %)",
        engine / bare.max(1.0) * 100.0
    );
    Ok(())
}

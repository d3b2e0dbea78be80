//! How a deploy to a deployment group rolls out, CodeDeploy's way: the hosts go in batches sized
//! so that at least `MinimumHealthyHosts` of them are never being deployed to, a failure on any
//! host stops the rollout (no host not yet started starts), and with `AutoRollback` every host
//! that took the new release is switched back. Pure: the hosts' states in, what to do next out.

/// CodeDeploy's predefined configurations (`CodeDeployDefault.OneAtATime` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentConfig {
    /// All hosts but one stay healthy.
    OneAtATime,
    /// At least half (rounded down) stay healthy.
    HalfAtATime,
    /// No host needs to stay healthy.
    AllAtOnce,
}

impl DeploymentConfig {
    /// `OneAtATime` or `CodeDeployDefault.OneAtATime`, and so on.
    pub fn parse(text: &str) -> Result<Self, String> {
        let name = text.trim();
        let name = name.strip_prefix("CodeDeployDefault.").unwrap_or(name);
        match name {
            "OneAtATime" => Ok(Self::OneAtATime),
            "HalfAtATime" => Ok(Self::HalfAtATime),
            "AllAtOnce" => Ok(Self::AllAtOnce),
            _ => Err(format!(
                "DeploymentConfig {text:?} is not one of OneAtATime, HalfAtATime, AllAtOnce"
            )),
        }
    }

    fn min_healthy(self, hosts: usize) -> usize {
        match self {
            Self::OneAtATime => hosts.saturating_sub(1),
            Self::HalfAtATime => hosts / 2,
            Self::AllAtOnce => 0,
        }
    }
}

/// `MinimumHealthyHosts`: a number of hosts (`2`) or a share of the group (`75%`, rounded up as
/// CodeDeploy rounds a fleet percentage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinimumHealthyHosts {
    Hosts(usize),
    Percent(u8),
}

impl MinimumHealthyHosts {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let bad = || {
            format!(
                "MinimumHealthyHosts {text:?} must be a number of hosts (2) or a percentage of the group (75%)"
            )
        };
        match t.strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p < 100)
                .map(Self::Percent)
                .ok_or_else(bad),
            None => t.parse::<usize>().map(Self::Hosts).map_err(|_| bad()),
        }
    }

    fn of(self, hosts: usize) -> usize {
        match self {
            Self::Hosts(n) => n,
            Self::Percent(p) => (hosts * usize::from(p)).div_ceil(100),
        }
    }
}

/// The batch size for a group of `hosts`: how many may be deployed to at once.
pub fn batch_size(
    hosts: usize,
    config: DeploymentConfig,
    minimum: Option<MinimumHealthyHosts>,
) -> Result<usize, String> {
    if hosts == 0 {
        return Err("the deployment group has no live host".into());
    }
    let min = minimum.map_or_else(|| config.min_healthy(hosts), |m| m.of(hosts));
    if min >= hosts {
        return Err(format!(
            "MinimumHealthyHosts keeps {min} of {hosts} host{} healthy, which leaves none to deploy to",
            if hosts == 1 { "" } else { "s" }
        ));
    }
    Ok(hosts - min)
}

/// Where one host is in the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// Not started.
    Pending,
    Deploying,
    /// Serves the new release.
    Deployed,
    /// Its deploy failed (the host put itself back).
    Failed,
    /// Never started: the rollout stopped first.
    Skipped,
    RollingBack,
    /// Switched back to what it served before.
    RolledBack,
    /// Switching back failed: it may serve either release.
    RollbackFailed,
}

impl Host {
    fn in_flight(self) -> bool {
        matches!(self, Host::Deploying | Host::RollingBack)
    }
}

/// What the rollout does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start deploying to these hosts (by index).
    Deploy(Vec<usize>),
    /// Switch these hosts back; the rest of the pending ones are skipped.
    RollBack { hosts: Vec<usize>, skip: Vec<usize> },
    /// Stop without rolling back: skip these pending hosts.
    Skip(Vec<usize>),
    /// Hosts are busy: wait for one of them.
    Wait,
    /// Nothing more to do.
    Done(Outcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every host serves the new release.
    Succeeded,
    /// A host failed; what the others serve is in their states.
    Failed,
}

/// The next step of a rollout over `hosts` in batches of `batch`, in host order.
pub fn next(hosts: &[Host], batch: usize, auto_rollback: bool) -> Next {
    let batch = batch.max(1);
    let failed = hosts.iter().any(|h| matches!(h, Host::Failed));
    let pending: Vec<usize> = indexes(hosts, Host::Pending);
    if failed {
        if !pending.is_empty() {
            let to_back = if auto_rollback {
                indexes(hosts, Host::Deployed)
            } else {
                Vec::new()
            };
            return if to_back.is_empty() {
                Next::Skip(pending)
            } else {
                Next::RollBack {
                    hosts: to_back,
                    skip: pending,
                }
            };
        }
        // Hosts still deploying finish first: one may still fail or succeed (and then be
        // rolled back with the others).
        if hosts.iter().any(|h| h.in_flight()) {
            return Next::Wait;
        }
        let to_back = indexes(hosts, Host::Deployed);
        if auto_rollback && !to_back.is_empty() {
            return Next::RollBack {
                hosts: to_back,
                skip: Vec::new(),
            };
        }
        return Next::Done(Outcome::Failed);
    }
    let deploying = hosts.iter().filter(|h| h.in_flight()).count();
    if pending.is_empty() {
        return if deploying > 0 {
            Next::Wait
        } else {
            Next::Done(Outcome::Succeeded)
        };
    }
    // A batch goes only when the last one is done: batches are waves, as in CodeDeploy.
    if deploying > 0 {
        return Next::Wait;
    }
    Next::Deploy(pending.into_iter().take(batch).collect())
}

fn indexes(hosts: &[Host], state: Host) -> Vec<usize> {
    hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| **h == state)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn codedeploys_configurations_size_their_batches() {
        use DeploymentConfig::*;
        assert_eq!(batch_size(3, OneAtATime, None), Ok(1));
        assert_eq!(batch_size(3, HalfAtATime, None), Ok(2));
        assert_eq!(batch_size(4, HalfAtATime, None), Ok(2));
        assert_eq!(batch_size(3, AllAtOnce, None), Ok(3));
        assert_eq!(batch_size(1, OneAtATime, None), Ok(1));
        let min = |t| MinimumHealthyHosts::parse(t).unwrap();
        assert_eq!(batch_size(10, AllAtOnce, Some(min("7"))), Ok(3));
        assert_eq!(batch_size(10, AllAtOnce, Some(min("75%"))), Ok(2));
        assert!(
            batch_size(3, AllAtOnce, Some(min("3")))
                .unwrap_err()
                .contains("keeps 3 of 3 hosts healthy")
        );
        assert!(
            batch_size(0, AllAtOnce, None)
                .unwrap_err()
                .contains("no live host")
        );
        assert_eq!(
            DeploymentConfig::parse("CodeDeployDefault.HalfAtATime"),
            Ok(HalfAtATime)
        );
        for bad in ["", "oneatatime", "Blue"] {
            assert!(DeploymentConfig::parse(bad).is_err(), "{bad}");
        }
        for bad in ["", "x", "-1", "100%", "1.5", "%"] {
            assert!(MinimumHealthyHosts::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_at_a_time_with_the_second_failing_rolls_the_first_back_and_skips_the_third() {
        use Host::*;
        assert_eq!(
            next(&[Pending, Pending, Pending], 1, true),
            Next::Deploy(vec![0])
        );
        assert_eq!(next(&[Deploying, Pending, Pending], 1, true), Next::Wait);
        assert_eq!(
            next(&[Deployed, Pending, Pending], 1, true),
            Next::Deploy(vec![1])
        );
        assert_eq!(
            next(&[Deployed, Failed, Pending], 1, true),
            Next::RollBack {
                hosts: vec![0],
                skip: vec![2]
            }
        );
        assert_eq!(next(&[RollingBack, Failed, Skipped], 1, true), Next::Wait);
        assert_eq!(
            next(&[RolledBack, Failed, Skipped], 1, true),
            Next::Done(Outcome::Failed)
        );
        // Without AutoRollback the first keeps the new release.
        assert_eq!(
            next(&[Deployed, Failed, Pending], 1, false),
            Next::Skip(vec![2])
        );
        assert_eq!(
            next(&[Deployed, Failed, Skipped], 1, false),
            Next::Done(Outcome::Failed)
        );
        // All at once: everything together, success when all are deployed.
        assert_eq!(next(&[Pending; 3], 3, true), Next::Deploy(vec![0, 1, 2]));
        assert_eq!(
            next(&[Deployed; 3], 3, true),
            Next::Done(Outcome::Succeeded)
        );
        // A failure while others still deploy waits for them, then rolls back those that took it.
        assert_eq!(next(&[Failed, Deploying, Deployed], 3, true), Next::Wait);
        assert_eq!(
            next(&[Failed, Deployed, Deployed], 3, true),
            Next::RollBack {
                hosts: vec![1, 2],
                skip: vec![]
            }
        );
    }

    /// Runs a rollout to its end: each started host ends by `fails` (a deploy fails on those),
    /// rollbacks succeed; the states at the end, and the most hosts ever deploying at once.
    fn simulate(
        hosts: usize,
        batch: usize,
        fails: &[bool],
        auto_rollback: bool,
    ) -> (Vec<Host>, usize, Outcome) {
        let mut states = vec![Host::Pending; hosts];
        let mut widest = 0;
        for _ in 0..4 * hosts + 4 {
            match next(&states, batch, auto_rollback) {
                Next::Deploy(hs) => {
                    for h in hs {
                        states[h] = Host::Deploying;
                    }
                }
                Next::RollBack { hosts: hs, skip } => {
                    for h in hs {
                        states[h] = Host::RollingBack;
                    }
                    for h in skip {
                        states[h] = Host::Skipped;
                    }
                }
                Next::Skip(skip) => {
                    for h in skip {
                        states[h] = Host::Skipped;
                    }
                }
                Next::Wait => {
                    // Every host in flight ends.
                    for (i, s) in states.iter_mut().enumerate() {
                        *s = match *s {
                            Host::Deploying if fails[i] => Host::Failed,
                            Host::Deploying => Host::Deployed,
                            Host::RollingBack => Host::RolledBack,
                            other => other,
                        };
                    }
                }
                Next::Done(outcome) => return (states, widest, outcome),
            }
            widest = widest.max(states.iter().filter(|s| **s == Host::Deploying).count());
        }
        panic!("the rollout never ended: {states:?}");
    }

    proptest! {
        #[test]
        fn a_rollout_keeps_its_batches_stops_at_a_failure_and_puts_back_what_it_must(
            fails in proptest::collection::vec(proptest::bool::weighted(0.2), 1..12),
            batch in 1usize..12,
            auto_rollback in any::<bool>(),
        ) {
            let hosts = fails.len();
            let (end, widest, outcome) = simulate(hosts, batch, &fails, auto_rollback);
            prop_assert!(widest <= batch, "at most a batch at once");
            prop_assert!(end.iter().all(|s| !s.in_flight() && *s != Host::Pending), "{:?}", end);
            let any_failed = end.contains(&Host::Failed);
            prop_assert_eq!(outcome == Outcome::Succeeded, !any_failed);
            if !any_failed {
                prop_assert!(end.iter().all(|s| *s == Host::Deployed));
            }
            if any_failed && auto_rollback {
                prop_assert!(!end.contains(&Host::Deployed), "{:?}", end);
            }
            // A host that would fail only fails if it was started; nothing after the wave with the
            // first failure starts.
            let first_failing_wave = (0..hosts).find(|i| fails[*i]).map(|i| i / batch);
            for (i, s) in end.iter().enumerate() {
                if let Some(w) = first_failing_wave && i / batch > w {
                    prop_assert_eq!(*s, Host::Skipped, "host {} after the failing wave", i);
                }
            }
        }
    }
}

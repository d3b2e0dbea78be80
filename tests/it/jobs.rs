//! The job queue against real PostgreSQL: no job is ever claimed twice at once, a lease fences
//! every write, expired leases come back, and a cancelled job stops its holder. The queue is a
//! persistence module the engine and workers build on; these tests call it directly.

use std::collections::HashMap;

use futures_util::future::join_all;
use serde_json::json;
use sluice::db::jobs::{self, Outcome};
use sqlx::{Connection, PgConnection};
use time::{Duration, OffsetDateTime, macros::datetime};
use uuid::Uuid;

use crate::harness::TestDatabase;

const T0: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);
const LEASE: Duration = Duration::seconds(30);

async fn conn(db: &TestDatabase) -> PgConnection {
    PgConnection::connect_with(&db.options).await.unwrap()
}

async fn enqueue_n(db: &TestDatabase, n: usize) -> Vec<i64> {
    let mut c = conn(db).await;
    let mut tx = c.begin().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            jobs::enqueue(&mut tx, "test", &json!({"n": i}), 2, T0, T0)
                .await
                .unwrap(),
        );
    }
    jobs::notify(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    ids
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_job_and_each_job_finishes_once() {
    let db = TestDatabase::migrated().await;
    let ids = enqueue_n(&db, 300).await;
    // 12 workers, each claiming up to 4 at a time and finishing what it got, until none is left.
    let workers = (0..12).map(|_| {
        let db = &db;
        async move {
            let owner = Uuid::new_v4();
            let mut c = conn(db).await;
            let mut done = Vec::new();
            loop {
                let got = jobs::claim(&mut c, owner, 4, T0, LEASE).await.unwrap();
                if got.is_empty() {
                    break;
                }
                for job in got {
                    assert_eq!(job.attempt, 1);
                    assert!(
                        jobs::finish(&mut c, job.id, job.lease, Outcome::Succeeded, None, T0)
                            .await
                            .unwrap()
                    );
                    done.push(job.id);
                }
            }
            done
        }
    });
    let mut seen: HashMap<i64, usize> = HashMap::new();
    for done in join_all(workers).await {
        for id in done {
            *seen.entry(id).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), ids.len());
    assert!(seen.values().all(|n| *n == 1), "a job was claimed twice");
    let counts = jobs::counts(&mut conn(&db).await).await.unwrap();
    assert_eq!(counts, [("succeeded".to_string(), 300)]);
}

#[tokio::test]
async fn a_lost_lease_can_never_write_a_result() {
    let db = TestDatabase::migrated().await;
    let [id] = enqueue_n(&db, 1).await[..] else {
        unreachable!()
    };
    let mut c = conn(&db).await;
    let first = jobs::claim(&mut c, Uuid::new_v4(), 10, T0, LEASE)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // Renewed in time, the lease survives a rescue.
    assert!(
        jobs::renew(
            &mut c,
            id,
            first[0].lease,
            T0 + Duration::seconds(20),
            LEASE
        )
        .await
        .unwrap()
    );
    assert!(
        jobs::rescue(&mut c, T0 + Duration::seconds(40))
            .await
            .unwrap()
            .is_empty()
    );
    // Silent past its lease: rescued, claimed again by someone else.
    let rescued = jobs::rescue(&mut c, T0 + Duration::seconds(51))
        .await
        .unwrap();
    assert_eq!(
        rescued
            .iter()
            .map(|r| (r.id, r.kind.as_str(), r.attempt, r.retried))
            .collect::<Vec<_>>(),
        [(id, "test", 1, true)]
    );
    assert_eq!(rescued[0].payload, json!({"n": 0}));
    let later = T0 + Duration::seconds(52);
    let second = jobs::claim(&mut c, Uuid::new_v4(), 10, later, LEASE)
        .await
        .unwrap();
    assert_eq!((second[0].id, second[0].attempt), (id, 2));
    // The first holder wakes up: it can neither renew nor finish.
    assert!(
        !jobs::renew(&mut c, id, first[0].lease, later, LEASE)
            .await
            .unwrap()
    );
    assert!(
        !jobs::finish(&mut c, id, first[0].lease, Outcome::Succeeded, None, later)
            .await
            .unwrap()
    );
    assert!(
        jobs::finish(
            &mut c,
            id,
            second[0].lease,
            Outcome::Failed,
            Some("exit 1"),
            later
        )
        .await
        .unwrap()
    );
    assert!(
        !jobs::finish(&mut c, id, second[0].lease, Outcome::Succeeded, None, later)
            .await
            .unwrap(),
        "only once"
    );
    let counts = jobs::counts(&mut c).await.unwrap();
    assert_eq!(counts, [("failed".to_string(), 1)]);
}

#[tokio::test]
async fn out_of_attempts_a_rescued_job_fails_and_a_given_back_one_does_not_count() {
    let db = TestDatabase::migrated().await;
    let [id] = enqueue_n(&db, 1).await[..] else {
        unreachable!()
    };
    let mut c = conn(&db).await;
    let owner = Uuid::new_v4();
    // A clean shutdown gives it back: the claim does not count.
    let held = jobs::claim(&mut c, owner, 1, T0, LEASE).await.unwrap();
    assert!(
        jobs::give_back(&mut c, id, held[0].lease, T0)
            .await
            .unwrap()
    );
    let mut now = T0;
    for attempt in 1..=2 {
        let held = jobs::claim(&mut c, owner, 1, now, LEASE).await.unwrap();
        assert_eq!(held[0].attempt, attempt);
        now += Duration::minutes(1);
        let rescued = jobs::rescue(&mut c, now).await.unwrap();
        assert_eq!(rescued[0].retried, attempt < 2, "max_attempts is 2");
    }
    assert!(
        jobs::claim(&mut c, owner, 1, now, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        jobs::counts(&mut c).await.unwrap(),
        [("failed".to_string(), 1)]
    );
}

#[tokio::test]
async fn a_cancelled_job_stops_its_holder_and_future_jobs_wait_for_their_time() {
    let db = TestDatabase::migrated().await;
    let [id] = enqueue_n(&db, 1).await[..] else {
        unreachable!()
    };
    let mut c = conn(&db).await;
    let held = jobs::claim(&mut c, Uuid::new_v4(), 1, T0, LEASE)
        .await
        .unwrap();
    assert!(jobs::cancel(&mut c, id, T0).await.unwrap());
    assert!(
        !jobs::renew(&mut c, id, held[0].lease, T0, LEASE)
            .await
            .unwrap(),
        "the holder learns at its next renewal"
    );
    assert!(
        !jobs::finish(&mut c, id, held[0].lease, Outcome::Succeeded, None, T0)
            .await
            .unwrap()
    );
    assert!(
        !jobs::cancel(&mut c, id, T0).await.unwrap(),
        "already ended"
    );

    let later = jobs::enqueue(&mut c, "test", &json!({}), 1, T0 + Duration::minutes(5), T0)
        .await
        .unwrap();
    assert!(
        jobs::claim(&mut c, Uuid::new_v4(), 1, T0, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    let due = jobs::claim(&mut c, Uuid::new_v4(), 1, T0 + Duration::minutes(5), LEASE)
        .await
        .unwrap();
    assert_eq!(due[0].id, later);
}

#[tokio::test]
async fn rescuers_racing_each_other_return_each_lease_once() {
    let db = TestDatabase::migrated().await;
    enqueue_n(&db, 50).await;
    let mut c = conn(&db).await;
    let owner = Uuid::new_v4();
    assert_eq!(
        jobs::claim(&mut c, owner, 50, T0, LEASE)
            .await
            .unwrap()
            .len(),
        50
    );
    let late = T0 + Duration::minutes(5);
    let rescuers = (0..8).map(|_| {
        let db = &db;
        async move { jobs::rescue(&mut conn(db).await, late).await.unwrap().len() }
    });
    let total: usize = join_all(rescuers).await.into_iter().sum();
    assert_eq!(total, 50);
    assert_eq!(
        jobs::counts(&mut c).await.unwrap(),
        [("available".to_string(), 50)]
    );
}

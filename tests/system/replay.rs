use std::time::Duration;

use system_tests::system::{Service, TestSystem};

/// The profile columns that make up the read model, in a stable order.
const SNAPSHOT: &str =
    "select user_id::text, display_name, registered_at::text, updated_at::text, sequence
                        from profiles order by user_id";

type Row = (String, String, String, String, i64);

/// Wipe the profile read model, replay `user.registered.v1` from registration's event log
/// to the profile queue only, and the profiles come back identical; email sees nothing of
/// it. Replaying again, or one user's events, changes nothing (the inbox has the ids).
#[tokio::test(flavor = "multi_thread")]
async fn replaying_the_event_log_rebuilds_the_profile_read_model() {
    let system = TestSystem::start().await;
    let mut users = Vec::new();
    for n in 0..5 {
        let user_id = system
            .register_ok(&format!("replay{n}@example.org"), &format!("Replay {n}"))
            .await;
        system
            .wait_for_profile(&user_id, Duration::from_secs(10))
            .await;
        users.push(user_id);
    }
    system.smtp.wait_for(5, Duration::from_secs(10)).await;
    let profile_db = system.db(Service::Profile).await;
    let before: Vec<Row> = sqlx::query_as(SNAPSHOT)
        .fetch_all(&profile_db)
        .await
        .expect("snapshot");
    assert_eq!(before.len(), 5);

    sqlx::query("truncate profiles, inbox")
        .execute(&profile_db)
        .await
        .expect("wipe");
    let replayed = replay(&system, &["--type", "user.registered.v1"]).await;
    assert_eq!(
        replayed,
        "replayed 5 events to ".to_owned() + &system.queue("profile.user-registered")
    );

    let after = wait_for_rows(&profile_db, 5).await;
    assert_eq!(after, before, "the rebuilt read model is identical");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        system.smtp.messages().len(),
        5,
        "the replay went to the profile queue only"
    );

    let again = replay(&system, &["--user", &users[2]]).await;
    assert!(again.starts_with("replayed 1 events"), "{again}");
    replay(&system, &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox")
        .fetch_one(&profile_db)
        .await
        .expect("count");
    assert_eq!(inbox, 5, "replayed events already handled change nothing");
    let unchanged: Vec<Row> = sqlx::query_as(SNAPSHOT)
        .fetch_all(&profile_db)
        .await
        .expect("snapshot");
    assert_eq!(unchanged, before);
}

/// `registration replay --to-queue profile.user-registered <args…>`; returns its output line.
async fn replay(system: &TestSystem, args: &[&str]) -> String {
    let mut command = vec!["replay", "--to-queue", "profile.user-registered"];
    command.extend_from_slice(args);
    let output = system.subcommand(Service::Registration, &command).await;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success(),
        "replay failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

async fn wait_for_rows(db: &sqlx::PgPool, count: usize) -> Vec<Row> {
    for _ in 0..200 {
        let rows: Vec<Row> = sqlx::query_as(SNAPSHOT)
            .fetch_all(db)
            .await
            .expect("snapshot");
        if rows.len() >= count {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the read model was not rebuilt in time");
}

/// With a retention of 0 days, published events leave the event log at the next cleanup;
/// unpublished ones would stay (they have not been delivered yet).
#[tokio::test(flavor = "multi_thread")]
async fn published_events_older_than_the_retention_are_purged() {
    let options = system_tests::system::Options {
        extra_env: vec![
            ("EVENT_LOG_RETENTION_DAYS".to_owned(), "0".to_owned()),
            ("EVENT_LOG_CLEANUP_INTERVAL_SECS".to_owned(), "1".to_owned()),
        ],
        ..Default::default()
    };
    let system = TestSystem::start_with(options).await;
    let user_id = system.register_ok("expired@example.org", "Expired").await;
    system
        .wait_for_profile(&user_id, Duration::from_secs(10))
        .await;

    for _ in 0..100 {
        if system
            .scalar(Service::Registration, "select count(*) from outbox")
            .await
            == 0
        {
            assert_eq!(
                system
                    .scalar(Service::Registration, "select count(*) from users")
                    .await,
                1
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the published event was not purged");
}

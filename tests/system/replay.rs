use system_tests::{
    defaults,
    eventually::{PATIENCE, eventually},
    system::{Options, Service, TestSystem},
};

/// The profile columns that make up the read model, in a stable order; the name sealed
/// (opened before comparing: each sealing draws a new nonce).
const SNAPSHOT: &str =
    "select user_id::text, display_name_sealed, registered_at::text, updated_at::text, sequence
                        from profiles order by user_id";

type Row = (String, String, String, String, i64);
type SealedRow = (String, Vec<u8>, String, String, i64);

/// Wipe the profile read model, replay `user.registered.v1` from registration's event log
/// to the profile queue only, and the profiles come back identical; email sees nothing of
/// it. Replaying again, or one user's events, changes nothing (the inbox has the ids).
#[tokio::test(flavor = "multi_thread")]
async fn replaying_the_event_log_rebuilds_the_profile_read_model() {
    let system = TestSystem::start().await;
    let mut users = Vec::new();
    for n in 0..5 {
        let user_id = system
            .sign_up_and_wait(&format!("replay{n}@example.org"), &format!("Replay {n}"))
            .await;
        users.push(user_id);
    }
    let profile_db = system.effects().db(Service::Profile).await;
    let snapshot = async || -> Vec<Row> {
        let rows: Vec<SealedRow> = sqlx::query_as(SNAPSHOT)
            .fetch_all(&profile_db)
            .await
            .expect("snapshot");
        let pii = defaults::sealer();
        rows.into_iter()
            .map(|(user_id, name, registered_at, updated_at, sequence)| {
                let name = pii
                    .open("profiles.display_name", &name)
                    .expect("the name opens with the test key");
                (user_id, name, registered_at, updated_at, sequence)
            })
            .collect()
    };
    let before = snapshot().await;
    assert_eq!(before.len(), 5);

    sqlx::query("truncate profiles, inbox")
        .execute(&profile_db)
        .await
        .expect("wipe");
    let replayed = replay(&system, &["--type", "user.registered.v1"]).await;
    assert_eq!(
        replayed,
        "replayed 5 events to ".to_owned() + &system.topology().queue("profile.user-registered")
    );

    let after = eventually("the read model rebuilt with 5 rows", PATIENCE, async || {
        let rows = snapshot().await;
        if rows.len() >= 5 {
            Ok(rows)
        } else {
            Err(format!("{} rows", rows.len()))
        }
    })
    .await;
    assert_eq!(after, before, "the rebuilt read model is identical");

    let again = replay(&system, &["--user", &users[2]]).await;
    assert!(again.starts_with("replayed 1 events"), "{again}");
    replay(&system, &[]).await;
    // The marker's event is queued behind every replayed one, in both consumer queues.
    let marker = system.effects().pass_marker().await;
    assert_eq!(
        system.smtp.messages().len(),
        5 + 1,
        "the replays went to the profile queue only: no mail but the five and the marker's"
    );
    // Stricter than the mails (the email inbox would turn a replayed event away): the
    // email consumer was handed the six sign-ups' events and nothing else.
    system
        .ops(Service::Email)
        .wait_for_metrics(&[
            r#"events_consumed_total{queue="email.user-registered",outcome="done"} 6"#,
        ])
        .await;
    let inbox: i64 = sqlx::query_scalar("select count(*) from inbox")
        .fetch_one(&profile_db)
        .await
        .expect("count");
    assert_eq!(
        inbox,
        5 + 1,
        "replayed events already handled change nothing (the five and the marker)"
    );
    let mut unchanged = snapshot().await;
    unchanged.retain(|row| row.0 != marker.user_id);
    assert_eq!(unchanged, before);
}

/// `registration replay --to-queue profile.user-registered <args…>`; returns its output line.
async fn replay(system: &TestSystem, args: &[&str]) -> String {
    let mut command = vec!["replay", "--to-queue", "profile.user-registered"];
    command.extend_from_slice(args);
    system.tool(Service::Registration).run_ok(&command).await
}

/// With a retention of 0 days, published events leave the event log at the next cleanup;
/// unpublished ones would stay (they have not been delivered yet).
#[tokio::test(flavor = "multi_thread")]
async fn published_events_older_than_the_retention_are_purged() {
    let options = Options {
        extra_env: vec![
            ("EVENT_LOG_RETENTION_DAYS".to_owned(), "0".to_owned()),
            ("EVENT_LOG_CLEANUP_INTERVAL_SECS".to_owned(), "1".to_owned()),
        ],
        ..Default::default()
    };
    let system = TestSystem::start_with(options).await;
    system
        .sign_up_and_wait("expired@example.org", "Expired")
        .await;

    let effects = system.effects();
    eventually("the published event to be purged", PATIENCE, async || {
        effects
            .scalar(Service::Registration, "select count(*) from outbox")
            .await
            == 0
    })
    .await;
    assert_eq!(
        effects
            .scalar(Service::Registration, "select count(*) from users")
            .await,
        1,
        "the user stays"
    );
}

//! Personal data at rest, across the three services: what a copy of their databases
//! shows, and a key rotation with rows an older version wrote in clear.

use sqlx::PgPool;
use system_tests::{
    defaults,
    system::{Service, TestSystem},
};

/// Every row of every table of a service's database, as PostgreSQL prints it: what a
/// dump or a stolen backup would show.
async fn everything_in(db: &PgPool) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables
         where table_schema = 'public' and table_type = 'BASE TABLE'",
    )
    .fetch_all(db)
    .await
    .expect("the tables are listed");
    let mut everything = String::new();
    for table in tables {
        let statement = format!("select coalesce(string_agg(t::text, ' '), '') from \"{table}\" t");
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(statement))
            .fetch_one(db)
            .await
            .expect("the table reads");
        everything.push_str(&rows.to_lowercase());
        everything.push('\n');
    }
    everything
}

/// Fails naming the service and the clear text if any of `clear` is in its database.
async fn assert_sealed(system: &TestSystem, clear: &[&str]) {
    for service in [Service::Registration, Service::Email, Service::Profile] {
        let db = system.effects().db(service).await;
        let everything = everything_in(&db).await;
        for text in clear {
            assert!(
                !everything.contains(&text.to_lowercase()),
                "{text:?} is in {}'s database in clear: {everything}",
                service.name()
            );
        }
        db.close().await;
    }
}

/// After the whole flow (sign-up, profile, welcome mail sent) no service's database holds
/// the address or the name in clear, and each still answers with them. Then rows written
/// in clear by an older version are added, every service restarts with a new key in front
/// of the old one and seals or re-seals everything before it serves, and after a second
/// restart with the new key alone everything still reads.
#[tokio::test(flavor = "multi_thread")]
async fn no_database_holds_personal_data_in_clear_and_a_new_key_reseals_all() {
    // Arrange
    let mut system = TestSystem::start().await;
    let user_id = system
        .sign_up_and_wait("Ada.Lovelace@Example.org", "Ada Lovelace")
        .await;
    system
        .emails()
        .wait_for_sent("ada.lovelace@example.org")
        .await;

    // Assert: sealed, and served in clear.
    assert_sealed(&system, &["lovelace", "example.org"]).await;
    let profile = system.profiles().wait_for(&user_id).await;
    assert_eq!(profile["display_name"], "Ada Lovelace");
    let mails = system.emails().to("ada.lovelace@example.org").await;
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains("Ada Lovelace"))
    );

    // Arrange: rows as the version before sealing wrote them.
    let legacy_user = "0190a0b0-0000-7000-8000-0000000000aa";
    let email_db = system.effects().db(Service::Email).await;
    sqlx::query(
        "insert into welcome_mails (event_id, user_id, recipient, subject, body, message_id)
         values (gen_random_uuid(), $1::uuid, 'old.timer@example.net', 'Welcome, Old Timer',
                 'Hello Old Timer', '<legacy-1@welcome.signup-demo>')",
    )
    .bind(legacy_user)
    .execute(&email_db)
    .await
    .expect("a legacy mail row");
    let profile_db = system.effects().db(Service::Profile).await;
    sqlx::query(
        "insert into profiles (user_id, display_name, registered_at, sequence, updated_at)
         values ($1::uuid, 'Old Timer', now(), 1, now())",
    )
    .bind(legacy_user)
    .execute(&profile_db)
    .await
    .expect("a legacy profile row");

    // Act: rotate.
    let new_key = "test-2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
    let both = format!("{new_key},{}", defaults::PII_KEYS);
    for service in [Service::Registration, Service::Email, Service::Profile] {
        system
            .processes()
            .restart_with(service, 0, &[("PII_KEYS", &both)])
            .await;
    }

    // Assert: everything sealed under test-2 (the sealed values begin 0x01, 6, "test-2").
    assert_sealed(
        &system,
        &[
            "lovelace",
            "old timer",
            "old.timer",
            "example.net",
            "example.org",
        ],
    )
    .await;
    let under_old_key: i64 = sqlx::query_scalar(
        "select count(*) from welcome_mails
         where substring(recipient_sealed from 3 for 6) <> 'test-2'
            or substring(body_sealed from 3 for 6) <> 'test-2'",
    )
    .fetch_one(&email_db)
    .await
    .expect("counted");
    assert_eq!(under_old_key, 0, "every mail re-sealed under test-2");
    let under_old_key: i64 = sqlx::query_scalar(
        "select count(*) from profiles where substring(display_name_sealed from 3 for 6) <> 'test-2'",
    )
    .fetch_one(&profile_db)
    .await
    .expect("counted");
    assert_eq!(under_old_key, 0, "every profile re-sealed under test-2");
    email_db.close().await;
    profile_db.close().await;

    // Act: the old key goes.
    for service in [Service::Registration, Service::Email, Service::Profile] {
        system
            .processes()
            .restart_with(service, 0, &[("PII_KEYS", new_key)])
            .await;
    }

    // Assert: all of it reads with the new key alone.
    let profile = system.profiles().wait_for(&user_id).await;
    assert_eq!(profile["display_name"], "Ada Lovelace");
    let old_profile = system.profiles().wait_for(legacy_user).await;
    assert_eq!(old_profile["display_name"], "Old Timer");
    let old_mails = system.emails().to("Old.Timer@example.net").await;
    assert_eq!(
        old_mails.len(),
        1,
        "found by the keyed hash of the normalised address"
    );
    assert_eq!(old_mails[0]["subject"], "Welcome, Old Timer");
    assert_eq!(
        system.emails().to("ada.lovelace@example.org").await.len(),
        1
    );
    let user = system
        .registration()
        .get(&format!("/users/{user_id}"))
        .await;
    assert_eq!(user.status(), 200);
}

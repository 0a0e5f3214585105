//! How each user ended, in every service's rows and at the SMTP server.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;
use system_tests::system::{Service, TestSystem};

use super::{Fate, User};

/// A profile row: sequence, erased, has a name.
pub(super) type ProfileRow = (i64, bool, bool);

/// How a user ended, in every service's rows and at the SMTP server.
#[derive(Debug, Default)]
pub(super) struct Ended {
    /// registration's `users.last_sequence`, if the user row is there.
    registered: Option<i64>,
    /// In registration's `erased_users`.
    erased: bool,
    /// profile's rows for the user.
    profiles: Vec<ProfileRow>,
    /// email's `known_users` row: last sequence applied, erased.
    known: Option<(i64, bool)>,
    /// The statuses of email's mail records for the user.
    mail_records: Vec<String>,
    /// Mails the SMTP server received for the user's address.
    mails: usize,
}

/// Reads every row that says how a user ended, from all three databases and the SMTP
/// server, and asserts for each user what its [`Fate`] demands; lists every user that
/// ended otherwise. Rows of users the test never made fail it too.
pub(super) async fn assert_end_states(system: &TestSystem, users: &[User]) {
    let mut ended: BTreeMap<String, Ended> = users
        .iter()
        .map(|user| (user.id.clone(), Ended::default()))
        .collect();
    let mut strangers = Vec::new();

    let db = system.effects().db(Service::Registration).await;
    let rows: Vec<(String, i64)> =
        fetch(&db, "select user_id::text, last_sequence from users").await;
    for (id, sequence) in rows {
        entry(&mut ended, &mut strangers, id, "users").registered = Some(sequence);
    }
    let rows: Vec<(String,)> = fetch(&db, "select user_id::text from erased_users").await;
    for (id,) in rows {
        entry(&mut ended, &mut strangers, id, "erased_users").erased = true;
    }
    db.close().await;

    let db = system.effects().db(Service::Profile).await;
    let rows: Vec<(String, i64, bool, bool)> = fetch(
        &db,
        "select user_id::text, sequence, erased_at is not null,
                display_name is not null or display_name_sealed is not null
         from profiles",
    )
    .await;
    for (id, sequence, erased, named) in rows {
        entry(&mut ended, &mut strangers, id, "profiles")
            .profiles
            .push((sequence, erased, named));
    }
    db.close().await;

    let db = system.effects().db(Service::Email).await;
    let rows: Vec<(String, i64, bool)> = fetch(
        &db,
        "select user_id::text, last_sequence, erased_at is not null from known_users",
    )
    .await;
    for (id, sequence, erased) in rows {
        entry(&mut ended, &mut strangers, id, "known_users").known = Some((sequence, erased));
    }
    let rows: Vec<(String, String)> =
        fetch(&db, "select user_id::text, status from welcome_mails").await;
    for (id, status) in rows {
        entry(&mut ended, &mut strangers, id, "welcome_mails")
            .mail_records
            .push(status);
    }
    db.close().await;

    let mut mails: BTreeMap<String, usize> = BTreeMap::new();
    for mail in system.smtp.messages() {
        *mails
            .entry(mail.recipient().to_ascii_lowercase())
            .or_default() += 1;
    }
    let addresses: BTreeSet<&str> = users.iter().map(|user| user.address.as_str()).collect();
    for address in mails.keys() {
        if !addresses.contains(address.as_str()) {
            strangers.push(format!("a mail to {address}"));
        }
    }
    for user in users {
        if let Some(ended) = ended.get_mut(&user.id) {
            ended.mails = mails.get(&user.address).copied().unwrap_or(0);
        }
    }

    assert!(
        strangers.is_empty(),
        "rows or mails of users the test never made: {strangers:?}"
    );
    let wrong: Vec<(Fate, String)> = users
        .iter()
        .filter_map(|user| {
            let ended = &ended[&user.id];
            (!ended_as_expected(user.fate, ended)).then(|| {
                let what = format!("{:?} {} ({}): {ended:?}", user.fate, user.id, user.address);
                (user.fate, what)
            })
        })
        .collect();
    let of = |fate| wrong.iter().filter(|(f, _)| *f == fate).count();
    assert!(
        wrong.is_empty(),
        "{} of {} users did not end as their highest sequence says (kept {}, raced {}, \
         overtaken {}); the first:\n{}",
        wrong.len(),
        users.len(),
        of(Fate::Kept),
        of(Fate::Raced),
        of(Fate::Overtaken),
        wrong
            .iter()
            .take(10)
            .map(|(_, what)| what.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every row `sql` returns; fails the test if the query does.
pub(super) async fn fetch<T>(db: &PgPool, sql: &'static str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    sqlx::query_as(sql)
        .fetch_all(db)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// The user `id`'s entry in `ended`, for a row found in `what`; a user the test never
/// made gets one too, and is listed in `strangers`.
pub(super) fn entry<'a>(
    ended: &'a mut BTreeMap<String, Ended>,
    strangers: &mut Vec<String>,
    id: String,
    what: &str,
) -> &'a mut Ended {
    if !ended.contains_key(&id) {
        strangers.push(format!("{what} {id}"));
    }
    ended.entry(id).or_default()
}

/// Whether a user with `fate` ended as the highest sequence of their events says.
///
/// - Kept (last event the registration, 1): the user row at 1; one profile at 1 with a
///   name; email at 1, not erased; one mail record, sent; one mail at the SMTP server.
/// - Deleted (last event the deletion, 2): no user row, recorded as erased; one tombstone
///   at 2 without a name; email at 2, erased; no mail record. A user deleted in the race
///   may have got the welcome mail before the deletion (at most one); a user whose
///   registration came only after the deletion never does.
pub(super) fn ended_as_expected(fate: Fate, ended: &Ended) -> bool {
    match fate {
        Fate::Kept => {
            ended.registered == Some(1)
                && !ended.erased
                && ended.profiles == [(1, false, true)]
                && ended.known == Some((1, false))
                && ended.mail_records == ["sent"]
                && ended.mails == 1
        }
        Fate::Raced | Fate::Overtaken => {
            let most_mails = if fate == Fate::Raced { 1 } else { 0 };
            ended.registered.is_none()
                && ended.erased
                && ended.profiles == [(2, true, false)]
                && ended.known == Some((2, true))
                && ended.mail_records.is_empty()
                && ended.mails <= most_mails
        }
    }
}

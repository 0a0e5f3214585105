//! What the run came to: the race's numbers, and the deliveries turned away.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_json::Value;
use system_tests::system::{Service, TestSystem};

use super::{CONSUMERS, Fate, User, counters::Counters};

/// Profile's log line for an event older than what it already applied.
const PROFILE_STALE: &str = "stale event ignored: a newer event of the user came first";

/// Email's log line for a registration older than (or as old as) what it already applied.
const EMAIL_STALE: &str = "no welcome mail: this or a later event of the user was applied first";

/// Both consumers' log line for an event the inbox already has (a redelivery).
const ALREADY_APPLIED: &str = "event already applied";

/// Prints what the race came to: how many of the racing deletions removed the
/// registration from the outbox before a relay sent it, how many followed a sent one, and
/// how many of those users got their welcome mail before the deletion caught up.
pub(super) fn report_race(
    system: &TestSystem,
    users: &[User],
    counters: &Counters,
    raced_in: Duration,
) {
    let count = |fate| users.iter().filter(|user| user.fate == fate).count();
    let (kept, raced, late) = (
        count(Fate::Kept),
        count(Fate::Raced),
        count(Fate::Overtaken),
    );
    let [registrations, deletions] = counters.published();
    let sent = usize::try_from(registrations)
        .expect("a count fits")
        .saturating_sub(kept + late);
    let mailed = users
        .iter()
        .filter(|user| user.fate == Fate::Raced)
        .filter(|user| !system.smtp.messages_to(&user.address).is_empty())
        .count();
    println!(
        "race: {} users in {raced_in:.1?} ({kept} kept, {raced} deleted at once) plus \
         {late} forced late; the relays published {registrations} registrations and \
         {deletions} deletions ({:?} per instance); of the {raced} racing deletions, {} \
         caught the registration in the outbox (never sent) and {sent} followed it, \
         {mailed} of whose users got the welcome mail before the deletion",
        kept + raced,
        counters
            .published
            .iter()
            .map(|published| published[0] + published[1])
            .collect::<Vec<_>>(),
        raced.saturating_sub(sent),
    );
    for consumed in &counters.consumed {
        println!(
            "  {} instance {}: {} registrations and {} deletions done, {} otherwise",
            consumed.service.name(),
            consumed.number,
            consumed.done[0],
            consumed.done[1],
            consumed.not_done
        );
    }
}

/// Counts, in each consumer instance's log, the deliveries it turned away as stale (a
/// newer event of the user was applied first) or as already applied (the inbox had
/// them), and prints them. Asserts that each of the `late` registrations was turned
/// away as stale exactly once in each service, and by more than one instance, and that
/// each instance's `events_skipped_total` says as much as its log.
pub(super) async fn check_turned_away(system: &mut TestSystem, late: &BTreeSet<String>) {
    for (service, stale_line) in [
        (Service::Email, EMAIL_STALE),
        (Service::Profile, PROFILE_STALE),
    ] {
        let mut stale_per_instance = Vec::new();
        let mut late_per_instance = Vec::new();
        let mut already_applied = Vec::new();
        let mut late_seen: BTreeMap<String, usize> = BTreeMap::new();
        let queue = format!("{}.user-registered", service.name());
        let counted = format!(r#"events_skipped_total{{queue="{queue}",reason="stale"}}"#);
        for number in 0..CONSUMERS {
            let log = system.processes().instance(service, number).log();
            let stale = logged_event_ids(&log, stale_line);
            let metric = system.ops_of(service, number).metric(&counted).await;
            assert!(
                (metric - stale.len() as f64).abs() < 0.5,
                "{} instance {number}: {counted} is {metric}, its log turned away {}",
                service.name(),
                stale.len()
            );
            let forced = stale.iter().filter(|id| late.contains(*id)).count();
            for id in stale.iter().filter(|id| late.contains(*id)) {
                *late_seen.entry(id.clone()).or_default() += 1;
            }
            stale_per_instance.push(stale.len());
            late_per_instance.push(forced);
            already_applied.push(logged_event_ids(&log, ALREADY_APPLIED).len());
        }
        let stale: usize = stale_per_instance.iter().sum();
        println!(
            "{}: turned away as stale {stale} deliveries (per instance {stale_per_instance:?}): \
             the {} forced late registrations (per instance {late_per_instance:?}) and {} \
             registrations the race's deletions overtook; as already applied {:?}",
            service.name(),
            late.len(),
            stale.saturating_sub(late.len()),
            already_applied,
        );
        let missing: Vec<&String> = late
            .iter()
            .filter(|id| late_seen.get(*id) != Some(&1))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: every forced late registration turned away as stale exactly once; not so: \
             {missing:?} ({late_seen:?})",
            service.name()
        );
        assert!(
            late_per_instance.iter().filter(|count| **count > 0).count() > 1,
            "{}: several instances received late registrations: {late_per_instance:?}",
            service.name()
        );
    }
}

/// The event ids (`messaging.message.id`) of a service log's JSON lines whose message is
/// `message`.
pub(super) fn logged_event_ids(log: &str, message: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == message)
        .map(|line| {
            line["messaging.message.id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

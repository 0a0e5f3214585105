use system_tests::{
    burst::{Burst, BurstPlan},
    effects::report,
    system::{CONSUMER_PREFETCH, Service, TestSystem},
};
use tokio::time::Instant;

/// The profile consumer is killed with SIGKILL while it works through a burst, and
/// started again. Its unacked deliveries are redelivered and its inbox absorbs those it
/// had already committed: every accepted sign-up has exactly one profile row (and one
/// mail), nothing is dead-lettered, no queue holds a message.
#[tokio::test(flavor = "multi_thread")]
async fn a_profile_consumer_killed_mid_stream_and_restarted_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let mut system = TestSystem::start().await;
    let plan = BurstPlan::standard();
    let count = plan.count;

    let mut burst = Burst::start(system.burst_target(), plan);
    burst.wait_until_accepted(count / 4, plan.patience()).await;
    let before = system
        .wait_for_count(
            Service::Profile,
            "select count(*) from profiles",
            i64::try_from(count / 5).expect("small"),
            plan.patience(),
        )
        .await;
    system.kill(Service::Profile, 0).await;
    system.restart(Service::Profile, 0).await;
    let outcome = burst.finish().await;
    outcome.assert_all_accepted(count);
    let effects = system.settle(&outcome.accepted).await;
    report(
        &format!("profile SIGKILLed after {before} profiles"),
        &outcome,
        &effects,
        started,
    );

    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
}

/// The email consumer is killed with SIGKILL while it works through a burst, and started
/// again. No mail is lost: every accepted sign-up gets its mail and its record `sent`,
/// and everything else is exactly once. A second copy of a mail is possible only in the
/// window the README documents (the SMTP server took the mail, the process died before
/// `sent` was committed); such a copy carries the same `Message-ID`, and there can be at
/// most as many as deliveries were in flight.
#[tokio::test(flavor = "multi_thread")]
async fn an_email_consumer_killed_mid_stream_and_restarted_sends_every_mail() {
    let started = Instant::now();
    let mut system = TestSystem::start().await;
    let plan = BurstPlan::standard();
    let count = plan.count;

    let mut burst = Burst::start(system.burst_target(), plan);
    burst.wait_until_accepted(count / 4, plan.patience()).await;
    let before = system.smtp.wait_for(count / 5, plan.patience()).await;
    system.kill(Service::Email, 0).await;
    system.restart(Service::Email, 0).await;
    let outcome = burst.finish().await;
    outcome.assert_all_accepted(count);
    let effects = system.settle(&outcome.accepted).await;
    report(
        &format!("email SIGKILLed after {} mails", before.len()),
        &outcome,
        &effects,
        started,
    );

    effects.assert_no_dead_letters();
    let mut expected = effects.clone();
    expected.duplicate_mails.clear();
    expected.mails -= effects.duplicates();
    expected.assert_each_sign_up_took_effect_once();
    // At most the prefetch is in flight at the kill, so at most that many can be in the
    // window between the SMTP server's `250` and the commit of `sent`.
    assert!(
        effects.duplicates() <= usize::from(CONSUMER_PREFETCH),
        "duplicates only from deliveries in flight at the kill: {:?}",
        effects.duplicate_mails
    );
    for (address, message_ids) in &effects.duplicate_mails {
        assert!(
            message_ids.windows(2).all(|pair| pair[0] == pair[1]),
            "a resent mail to {address} carries the same Message-ID: {message_ids:?}"
        );
    }
}

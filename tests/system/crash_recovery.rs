use system_tests::system::{CONSUMER_PREFETCH, Service, TestSystem};

/// The profile consumer is killed with SIGKILL while it works through a burst, and
/// started again. Its unacked deliveries are redelivered and its inbox absorbs those it
/// had already committed: every accepted sign-up has exactly one profile row (and one
/// mail), nothing is dead-lettered, no queue holds a message.
#[tokio::test(flavor = "multi_thread")]
async fn a_profile_consumer_killed_mid_stream_and_restarted_loses_and_duplicates_nothing() {
    let mut system = TestSystem::start().await;
    let mut burst = system.start_burst();
    let plan = burst.plan();

    burst.wait_until_accepted(plan.count / 4).await;
    let before = system
        .effects()
        .wait_for_count(
            Service::Profile,
            "select count(*) from profiles",
            i64::try_from(plan.count / 5).expect("small"),
            plan.patience(),
        )
        .await;
    restart_after_kill(&mut system, Service::Profile).await;
    let (_, effects) = system
        .effects()
        .after_burst(burst, &format!("profile SIGKILLed after {before} profiles"))
        .await;

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
    let mut system = TestSystem::start().await;
    let mut burst = system.start_burst();
    let plan = burst.plan();

    burst.wait_until_accepted(plan.count / 4).await;
    let before = system.smtp.wait_for(plan.count / 5, plan.patience()).await;
    restart_after_kill(&mut system, Service::Email).await;
    let (_, effects) = system
        .effects()
        .after_burst(
            burst,
            &format!("email SIGKILLed after {} mails", before.len()),
        )
        .await;

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

/// SIGKILL to the first instance of `service` (no drain, no ack), then the same process
/// started again.
async fn restart_after_kill(system: &mut TestSystem, service: Service) {
    let processes = system.processes();
    processes.kill(service, 0).await;
    processes.restart(service, 0).await;
}

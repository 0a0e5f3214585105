use std::time::Duration;

use serde_json::Value;
use system_tests::{
    burst::address,
    eventually::{PATIENCE, eventually},
    otlp_sink::ReceivedSpan,
    smtp_sink::RcptAttempt,
    system::{Service, TestSystem},
};

/// The lower bound on the gap between two attempts, as a share of the configured delay:
/// the delay queue's TTL cannot release a message early, so anything shorter than the
/// delay means the backoff was skipped; the margin only absorbs clock granularity.
const MIN_SHARE_OF_DELAY: f64 = 0.8;

/// The upper bound's slack on top of the configured delay: loose, because a retried
/// message re-enters the work queue behind the burst's backlog on a busy machine.
const MAX_EXTRA_DELAY: Duration = Duration::from_secs(30);

/// Events that fail a given number of times and then succeed, amid a burst: the welcome
/// mails to three addresses get a transient `451` at `RCPT TO` once, twice and three
/// times (three is the most the default four attempts allow). Each is attempted exactly
/// N+1 times, each attempt after the one before by at least the configured backoff
/// (200 ms, 400 ms, 800 ms), and takes effect once; the rest of the burst is unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_that_fails_n_times_is_attempted_n_plus_one_times_with_backoff_and_takes_effect_once()
 {
    let system = TestSystem::start().await;
    let schedule = system.retry_schedule();
    let delays = schedule.delays();
    let failing: Vec<(String, usize)> = (1..usize::try_from(schedule.max_attempts).expect("small"))
        .map(|times| (address(times * 10), times))
        .collect();
    for (recipient, times) in &failing {
        system.smtp.fail_recipient(recipient, Some(*times));
    }

    let (_, effects) = system
        .effects()
        .after_burst(system.start_burst(), "fail N times, then succeed")
        .await;

    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
    for (recipient, times) in &failing {
        let attempts = system.smtp.rcpt_attempts(recipient);
        let gaps: Vec<Duration> = attempts
            .windows(2)
            .map(|pair| pair[1].at - pair[0].at)
            .collect();
        println!(
            "{recipient}: failed {times} times, attempts {}, gaps {gaps:?}",
            attempts.len()
        );
        assert_eq!(
            attempts
                .iter()
                .map(RcptAttempt::accepted)
                .collect::<Vec<_>>(),
            (0..=*times).map(|n| n == *times).collect::<Vec<_>>(),
            "{recipient}: {times} failures, then one success: N+1 attempts"
        );
        for (step, (gap, delay)) in gaps.iter().zip(&delays).enumerate() {
            assert!(
                gap.as_secs_f64() >= delay.as_secs_f64() * MIN_SHARE_OF_DELAY,
                "{recipient}: attempt {} came {gap:?} after attempt {}, before the {delay:?} backoff",
                step + 2,
                step + 1
            );
            assert!(
                *gap <= *delay + MAX_EXTRA_DELAY,
                "{recipient}: attempt {} came {gap:?} after attempt {}; the backoff is {delay:?}",
                step + 2,
                step + 1
            );
        }
        assert_eq!(
            system.smtp.messages_to(recipient).len(),
            1,
            "{recipient}: one mail"
        );
    }
}

/// Two events that cannot succeed, amid a burst: the mail to one address fails with a
/// transient `451` every time, the mail to another with a permanent `550`. The first is
/// attempted the configured four times and then dead-lettered as `exhausted`, the second
/// is dead-lettered at once as `permanent`; `email dlq list` shows both with their reason
/// and attempt count, and they are tried no more. After the fix (the addresses accept
/// mail again) `email dlq redrive` sends them back, and each is handled exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_permanently_failing_event_is_dead_lettered_with_its_reason_and_a_redrive_after_the_fix_handles_it_once()
 {
    let system = TestSystem::start().await;
    let max_attempts = system.retry_schedule().max_attempts;
    let (exhausted, rejected) = (address(11), address(22));
    system.smtp.fail_recipient(&exhausted, None);
    system.smtp.reject_recipient(&rejected, None);
    let held_back = [exhausted.clone(), rejected.clone()];

    let (outcome, effects) = system
        .effects()
        .after_burst_except(
            system.start_burst(),
            "dead-lettered, before the redrive",
            &held_back,
        )
        .await;

    effects.assert_each_sign_up_took_effect_once_except(&held_back);
    let email_dlq = system.topology().dead_letter_queue("email.user-registered");
    let profile_dlq = system
        .topology()
        .dead_letter_queue("profile.user-registered");
    assert_eq!(effects.dead_letters[&email_dlq], 2, "{effects}");
    assert_eq!(effects.dead_letters[&profile_dlq], 0, "{effects}");

    let email_tool = system.tool(Service::Email);
    let letters = email_tool.dlq_list().await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let exhausted_id = event_id(&system, &exhausted).await;
    let rejected_id = event_id(&system, &rejected).await;
    let letter = |id: &str| -> &Value {
        letters
            .iter()
            .find(|letter| letter["message_id"] == id)
            .unwrap_or_else(|| panic!("event {id} is in the DLQ: {letters:?}"))
    };
    let queue = system.topology().queue("email.user-registered");
    let cases = [
        (&exhausted_id, "exhausted", max_attempts, "451"),
        (&rejected_id, "permanent", 1, "550"),
    ];
    for (id, kind, attempts, code) in cases {
        let letter = letter(id);
        assert_eq!(letter["kind"], kind, "{letter}");
        assert_eq!(letter["type"], "user.registered.v1", "{letter}");
        assert_eq!(letter["original_queue"], queue.as_str(), "{letter}");
        assert_eq!(
            attempt_count(&letter["attempts"]),
            Some(attempts),
            "attempt count: {letter}"
        );
        let reason = letter["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(code),
            "the reason names the SMTP reply: {letter}"
        );
    }
    assert!(
        letter(&exhausted_id)["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains(&format!("{max_attempts} attempts"))),
        "the reason says the attempts ran out: {letters:?}"
    );
    assert!(system.tool(Service::Profile).dlq_list().await.is_empty());
    // Settling passed a marker sign-up after both events were dead-lettered: anything
    // still queued for the two addresses was handed out before it, so these are final.
    assert_eq!(
        system.smtp.rcpt_attempts(&exhausted).len(),
        usize::try_from(max_attempts).expect("small"),
        "{exhausted}: the configured attempts, then no more"
    );
    assert_eq!(
        system.smtp.rcpt_attempts(&rejected).len(),
        1,
        "{rejected}: a permanent failure is not retried"
    );

    system.smtp.heal_recipient(&exhausted);
    system.smtp.heal_recipient(&rejected);
    let printed = email_tool
        .dlq_redrive(std::slice::from_ref(&exhausted_id))
        .await;
    assert_eq!(printed, "redriven 1");
    let mails = eventually(
        format!("the redriven event's mail to {exhausted}"),
        PATIENCE,
        async || {
            let mails = system.smtp.messages_to(&exhausted).len();
            (mails > 0).then_some(mails)
        },
    )
    .await;
    assert_eq!(mails, 1, "the redriven event sends its mail");
    assert_eq!(
        email_tool.dlq_list().await.len(),
        1,
        "only that one left the DLQ"
    );
    let printed = email_tool.dlq_redrive(&[]).await;
    assert_eq!(printed, "redriven 1");

    let effects = system.effects().settle(&outcome.accepted).await;
    system
        .effects()
        .report("dead-lettered, after the redrive", &outcome, &effects);
    effects.assert_each_sign_up_took_effect_once();
    effects.assert_no_dead_letters();
    assert_eq!(
        system.smtp.rcpt_attempts(&exhausted).len(),
        usize::try_from(max_attempts).expect("small") + 1,
        "{exhausted}: handled once after the redrive"
    );
    assert_eq!(
        system.smtp.rcpt_attempts(&rejected).len(),
        2,
        "{rejected}: handled once after the redrive"
    );
    for recipient in &held_back {
        let listed = system.emails().to(recipient).await;
        assert_eq!(listed.len(), 1, "{recipient}: {listed:?}");
        assert_eq!(listed[0]["status"], "sent", "{recipient}: {listed:?}");
    }

    // The redriven message kept its trace context and started counting attempts afresh:
    // its processing span (attempt 1 again) starts a new trace, for a redrive is a
    // person's act, hours later perhaps, with a link back to the sign-up's trace, in
    // which every earlier attempt is.
    let attempts = usize::try_from(max_attempts).expect("small") + 1;
    let spans = system
        .otlp
        .wait_for(
            &format!("a processing span for each of the {attempts} attempts"),
            |spans| processing_spans(spans, &exhausted_id).len() >= attempts,
            PATIENCE,
        )
        .await;
    let processed = processing_spans(&spans, &exhausted_id);
    assert_eq!(processed.len(), attempts, "one span per attempt");
    let (redriven, failed) = processed.split_last().expect("several spans");
    let sign_up_trace = &failed[0].trace_id;
    assert!(
        failed.iter().all(|span| span.trace_id == *sign_up_trace),
        "every retry is in the sign-up's trace: {failed:#?}"
    );
    let numbers: Vec<Option<&str>> = failed
        .iter()
        .map(|span| span.attribute("retry.attempt"))
        .collect();
    let expected: Vec<String> = (1..=max_attempts).map(|n| n.to_string()).collect();
    assert_eq!(
        numbers,
        expected
            .iter()
            .map(|n| Some(n.as_str()))
            .collect::<Vec<_>>(),
        "attempts 1 to {max_attempts}"
    );
    assert_eq!(
        redriven.attribute("retry.attempt"),
        Some("1"),
        "the redrive starts counting again: {redriven:#?}"
    );
    assert!(
        redriven
            .links
            .iter()
            .any(|(trace_id, _)| trace_id == sign_up_trace),
        "the redriven message's span links to the sign-up's trace (its context travelled \
         with it): {redriven:#?}"
    );
}

/// The email consumer's processing spans for message `event_id`, in arrival order.
fn processing_spans(spans: &[ReceivedSpan], event_id: &str) -> Vec<ReceivedSpan> {
    spans
        .iter()
        .filter(|span| {
            span.name == "email.user-registered process"
                && span.attribute("messaging.message.id") == Some(event_id)
        })
        .cloned()
        .collect()
}

/// The event id of the welcome mail to `recipient`, from `GET /emails`.
async fn event_id(system: &TestSystem, recipient: &str) -> String {
    let listed = system.emails().to(recipient).await;
    assert_eq!(
        listed.len(),
        1,
        "one mail record for {recipient}: {listed:?}"
    );
    assert_eq!(listed[0]["status"], "pending", "{recipient}: {listed:?}");
    listed[0]["event_id"]
        .as_str()
        .expect("an event id")
        .to_owned()
}

/// `attempts` as `dlq list` prints it (a number, or a number in a string).
fn attempt_count(value: &Value) -> Option<u32> {
    match value {
        Value::Number(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

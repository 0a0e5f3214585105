//! The benchmark's output for people: the raw limits with the derivation, then one table
//! per concern (throughput, latency, CPU per sign-up, memory), a row per phase.

use std::fmt::Write as _;

use super::{BenchReport, DatabaseCost, RawLimits, ServicesResult, phases::Phase, smtp};
use crate::load::Latency;

/// The processes in column order.
const PROCESSES: [&str; 6] = [
    "registration",
    "email",
    "profile",
    "smtp-sink",
    "otlp-sink",
    "load generator",
];

/// The whole report as text.
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    if let Some(raw) = &report.raw {
        raw_limits(&mut out, raw);
    }
    if let Some(services) = &report.services {
        services_tables(&mut out, services, report.raw.as_ref());
    }
    out
}

fn raw_limits(out: &mut String, raw: &RawLimits) {
    let _ = writeln!(
        out,
        "== Raw limits on this machine (lapin, sqlx, lettre) =="
    );
    let _ = writeln!(
        out,
        "RabbitMQ: persistent mandatory publish with confirm → topic exchange → 2 quorum queues, each consumed with manual acks (prefetch 100)"
    );
    for rate in &raw.amqp {
        let _ = writeln!(
            out,
            "  {:>3} in flight: {:>8.0} messages/s fully consumed ({} messages)",
            rate.in_flight, rate.per_second, rate.messages
        );
    }
    let _ = writeln!(
        out,
        "PostgreSQL: transactions of two inserts (user + outbox row)"
    );
    for rate in &raw.postgres {
        let _ = writeln!(
            out,
            "  {:>3} clients, {:>2} sign-ups per transaction: {:>8.0} transactions/s, {:>6.0} sign-ups/s ({} committed)",
            rate.clients, rate.batch, rate.per_second, rate.sign_ups_per_second, rate.transactions
        );
    }
    let concurrency = smtp::CONCURRENCY;
    let _ = writeln!(
        out,
        "SMTP sink: lettre pooled transport, {concurrency} at once: {:.0} mails/s ({}); over TCP_NODELAY connections: {:.0} mails/s ({})",
        raw.smtp.pooled_per_second,
        raw.smtp.pooled_mails,
        raw.smtp.nodelay_per_second,
        raw.smtp.nodelay_mails
    );
    let _ = writeln!(
        out,
        "Limit: a sign-up = 3 DB transactions + 1 confirmed publish delivered to 2 queues + 1 SMTP transaction;\n\
         on 2 shared cores their costs add: 1 / (3/{:.0} + 1/{:.0} + 1/{:.0}) = {:.0} sign-ups/s\n\
         with the sign-ups' rows written in batches, as the services' group commits write them:\n\
         1 / (3/{:.0} + 1/{:.0} + 1/{:.0}) = {:.0} sign-ups/s (the limit the services are compared with)\n\
         (best rate of each; optimistic: the relay's and the mailer's status updates, HTTP and the services' own work come on top)\n",
        raw.best_pg_per_second,
        raw.best_amqp_per_second,
        raw.best_smtp_per_second,
        raw.limit,
        raw.best_pg_batched_per_second,
        raw.best_amqp_per_second,
        raw.best_smtp_per_second,
        raw.batched_limit
    );
}

fn services_tables(out: &mut String, services: &ServicesResult, raw: Option<&RawLimits>) {
    let build = if services.release {
        "release"
    } else {
        "NOT release: figures meaningless"
    };
    let instances = match services.instances {
        1 => String::new(),
        count => format!(", {count} instances of each"),
    };
    let _ = writeln!(
        out,
        "== Services ({build} binaries{instances}, default settings, trace export on) =="
    );
    let limit = raw.map_or_else(
        || "not measured".to_owned(),
        |raw| format!("{:.0}/s", raw.batched_limit),
    );
    let _ = writeln!(
        out,
        "{:<11} {:>9} {:>8} {:>13} {:>9}  complete",
        "phase", "offered", "POST/s", "end-to-end/s", "of limit"
    );
    for phase in &services.phases {
        let report = &phase.report;
        let ratio = phase
            .ratio_to_limit
            .map_or_else(|| "-".to_owned(), |ratio| format!("{:.0} %", ratio * 100.0));
        let mut complete = format!("{}/{}", report.completed, report.sent);
        if phase.offered.is_some() && !phase.kept_up {
            complete.push_str(" — cannot keep up with the offered rate");
        }
        if report.timed_out {
            complete.push_str(" (completion timeout)");
        }
        if report.schedule_lag_max_ms > 100.0 {
            let _ = write!(
                complete,
                "; POSTs started up to {:.0} ms late ({} in flight at most)",
                report.schedule_lag_max_ms, report.concurrency
            );
        }
        let _ = writeln!(
            out,
            "{:<11} {:>9} {:>8.0} {:>13.0} {:>9}  {complete}",
            phase.name,
            offered(phase),
            report.post_per_second,
            report.end_to_end_per_second,
            ratio
        );
    }
    let _ = writeln!(
        out,
        "(limit from the raw measurements, rows written in batches: {limit})\n"
    );

    let _ = writeln!(
        out,
        "{:<16} {:<11} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "latency (ms)", "phase", "p50", "p90", "p99", "p99.9", "max"
    );
    type Pick = fn(&Phase) -> Latency;
    let latencies: [(&str, Pick); 3] = [
        ("POST → 201", |phase| phase.report.post),
        ("POST → profile", |phase| phase.report.profile),
        ("POST → mail sent", |phase| phase.report.mail),
    ];
    for (label, pick) in latencies {
        for (row, phase) in services.phases.iter().enumerate() {
            let latency = pick(phase);
            let _ = writeln!(
                out,
                "{:<16} {:<11} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                if row == 0 { label } else { "" },
                phase.name,
                latency.p50_ms,
                latency.p90_ms,
                latency.p99_ms,
                latency.p999_ms,
                latency.max_ms
            );
        }
    }

    let _ = writeln!(
        out,
        "\nCPU ms per completed sign-up (user + system, from the first POST until the consumers' /metrics counters showed every sign-up complete; the generator reads each sign-up's timestamps after that)"
    );
    let _ = write!(out, "{:<11}", "phase");
    for name in PROCESSES {
        let _ = write!(out, " {name:>14}");
    }
    let _ = writeln!(out, " {:>14}", "3 services");
    for phase in &services.phases {
        let _ = write!(out, "{:<11}", phase.name);
        for name in PROCESSES {
            let cpu = phase.cpu_per_signup(name).unwrap_or_default();
            let _ = write!(out, " {cpu:>14.3}");
        }
        let total: f64 = PROCESSES[..3]
            .iter()
            .filter_map(|name| phase.cpu_per_signup(name))
            .sum();
        let _ = writeln!(out, " {total:>14.3}");
    }

    server_costs(out, &services.phases);

    let _ = writeln!(
        out,
        "\nresident memory (MiB; of the largest instance): idle, then the peak of each phase"
    );
    let _ = write!(out, "{:<16}", "");
    for name in &PROCESSES[..5] {
        let _ = write!(out, " {name:>13}");
    }
    let _ = writeln!(out);
    let _ = write!(out, "{:<16}", "idle");
    for name in &PROCESSES[..5] {
        let rss = services
            .idle_rss_mib
            .iter()
            .filter(|(process, _)| process == name)
            .map(|(_, rss)| *rss)
            .fold(0.0, f64::max);
        let _ = write!(out, " {rss:>13.1}");
    }
    let _ = writeln!(out);
    for phase in &services.phases {
        let _ = write!(out, "{:<16}", format!("peak {}", phase.name));
        for name in &PROCESSES[..5] {
            let rss = phase
                .usage
                .iter()
                .filter(|usage| usage.name == *name)
                .map(|usage| usage.peak_rss_mib)
                .fold(0.0, f64::max);
            let _ = write!(out, " {rss:>13.1}");
        }
        let _ = writeln!(out);
    }

    let _ = writeln!(out, "\nthe load generator's own cost (this process)");
    for phase in &services.phases {
        let cost = phase.report.generator;
        let _ = writeln!(
            out,
            "  {:<11} {:>6.0} µs CPU per sign-up, {:>5.0} µs per HTTP request ({} requests)",
            phase.name, cost.cpu_us_per_signup, cost.cpu_us_per_request, cost.http_requests
        );
    }
}

/// What a sign-up cost the broker and the database in each phase.
fn server_costs(out: &mut String, phases: &[Phase]) {
    let _ = writeln!(
        out,
        "\nper accepted sign-up, what the servers did (the capacity model's inputs, docs/scaling.md):\n\
         PostgreSQL's write transactions and WAL bytes per service database (read from the WAL), CPU of all its processes;\n\
         RabbitMQ's publishes and deliveries (the services' counters) and its CPU"
    );
    let _ = writeln!(
        out,
        "{:<11} {:>22} {:>8} {:>22} {:>7} {:>8} {:>10} {:>7}",
        "phase",
        "write tx reg/email/prof",
        "all",
        "WAL bytes reg/em/prof",
        "PG ms",
        "publish",
        "deliveries",
        "MQ ms"
    );
    for phase in phases {
        let Some(footprint) = &phase.footprint else {
            let _ = writeln!(out, "{:<11} not measured", phase.name);
            continue;
        };
        let each = |pick: fn(&DatabaseCost) -> f64, precision: usize| {
            footprint
                .databases
                .iter()
                .map(|database| format!("{:.precision$}", pick(database)))
                .collect::<Vec<_>>()
                .join("/")
        };
        let _ = writeln!(
            out,
            "{:<11} {:>22} {:>8.3} {:>22} {:>7.3} {:>8.3} {:>10.3} {:>7.3}",
            phase.name,
            each(|database| database.commits, 3),
            footprint.commits(),
            each(|database| database.wal_bytes, 0),
            footprint.postgres_cpu_ms,
            footprint.broker_publishes,
            footprint.broker_deliveries,
            footprint.rabbitmq_cpu_ms
        );
    }
    let growth = phases
        .first()
        .and_then(|phase| phase.footprint.as_ref())
        .map(|footprint| {
            footprint
                .databases
                .iter()
                .map(|database| format!("{} {:.0}", database.service, database.growth_bytes))
                .collect::<Vec<_>>()
                .join(", ")
        });
    if let Some(growth) = growth {
        let _ = writeln!(
            out,
            "database growth per sign-up at {}, bytes: {growth}",
            phases[0].name
        );
    }
}

fn offered(phase: &Phase) -> String {
    phase
        .offered
        .map_or_else(|| "max".to_owned(), |rate| format!("{rate:.0}/s"))
}

//! `measure`: how long a sign-up takes to become visible, and how much memory the
//! services use. Run it against running services (for example `deploy/run-local.sh`):
//!
//! ```text
//! cargo run --release -p system-tests --bin measure -- --count 100
//! ```
//!
//! For each of `--count` sequential sign-ups it times `POST /users` and then polls
//! `GET /profiles/{id}` every millisecond until it answers 200: the end-to-end latency
//! through the outbox, the relay, RabbitMQ and the profile consumer. It prints the
//! distribution, then the resident memory (VmRSS) of every local process named
//! `registration`, `email` or `profile`, read from /proc.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Measures POST /users → profile visible latency and service memory")]
struct Args {
    /// Base URL of registration.
    #[arg(
        long,
        env = "REGISTRATION_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    registration_url: String,
    /// Base URL of profile.
    #[arg(long, env = "PROFILE_URL", default_value = "http://127.0.0.1:8082")]
    profile_url: String,
    /// Sequential sign-ups to time.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Give up on one sign-up after this many seconds.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::new();
    let run = uuid::Uuid::now_v7().simple().to_string();

    let run_started = Instant::now();
    let mut posts = Vec::with_capacity(args.count);
    let mut visible = Vec::with_capacity(args.count);
    for n in 0..args.count {
        let (post, end_to_end) =
            sign_up(&http, &args, &format!("measure-{run}-{n}@example.org")).await?;
        posts.push(post);
        visible.push(end_to_end);
    }
    let elapsed = run_started.elapsed();
    println!(
        "{} sequential sign-ups in {:.2} s: {:.0} sign-ups/s, each waited for until its profile was visible",
        args.count,
        elapsed.as_secs_f64(),
        args.count as f64 / elapsed.as_secs_f64()
    );
    print_distribution("POST /users answered", &mut posts);
    print_distribution("POST → profile visible", &mut visible);

    println!("resident memory (VmRSS), after the run:");
    for (name, pid, rss_kib) in service_memory() {
        println!(
            "  {name:<13} pid {pid:<8} {:>8.1} MiB",
            rss_kib as f64 / 1024.0
        );
    }
    Ok(())
}

/// One sign-up; returns (time to the 201, time until the profile answered 200).
async fn sign_up(
    http: &reqwest::Client,
    args: &Args,
    email: &str,
) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let response = http
        .post(format!("{}/users", args.registration_url))
        .json(&json!({ "email": email, "display_name": "Measure" }))
        .send()
        .await
        .context("registration unreachable")?;
    let posted = started.elapsed();
    if response.status() != StatusCode::CREATED {
        bail!("sign-up answered {}", response.status());
    }
    let body: Value = response.json().await?;
    let id = body["id"].as_str().context("no id in the answer")?;
    let url = format!("{}/profiles/{id}", args.profile_url);
    let deadline = started + Duration::from_secs(args.timeout_secs);
    loop {
        if http.get(&url).send().await?.status() == StatusCode::OK {
            return Ok((posted, started.elapsed()));
        }
        if Instant::now() > deadline {
            bail!("profile {id} not visible after {}s", args.timeout_secs);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn print_distribution(label: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {label:<24} median {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0))
    );
}

/// (name, pid, VmRSS in KiB) of local processes named like a service.
fn service_memory() -> Vec<(String, u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<(String, u32, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()?
                .trim()
                .to_owned();
            if !["registration", "email", "profile"].contains(&name.as_str()) {
                return None;
            }
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let rss = status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((name, pid, rss))
        })
        .collect();
    found.sort();
    found
}

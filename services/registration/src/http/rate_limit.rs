//! A per-client rate limit on `POST /users`.
//!
//! A person signs up once; a script signing up thousands of addresses from one machine
//! (to spam them with welcome mails, or to fill the database) is what this stops. Each
//! client, by IP address, gets a bucket of `burst` sign-ups refilled at `per_second`
//! (GCRA, from the `governor` crate); a sign-up beyond it is answered `429 Too Many
//! Requests` with `Retry-After`, before it costs a database transaction. Reads and
//! erasures are not limited. The limit is per process: two instances allow twice as
//! much, which is fine for a guard against abuse, not a quota.
//!
//! The client is the connection's peer, or, behind a proxy that says so
//! (`TRUST_FORWARDED_FOR`), the last address of `X-Forwarded-For`: the one the proxy
//! itself saw, which a client cannot forge (the addresses before it can be).

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use service_kit::problem::Problem;
use tokio_util::sync::CancellationToken;

/// How often clients that have been quiet long enough to have a full bucket again are
/// forgotten, so that the limiter's memory follows the active clients, not every address
/// ever seen.
const FORGET_INTERVAL: Duration = Duration::from_secs(60);

/// The rate limit's settings, as flags and variables.
#[derive(Debug, Clone, clap::Args)]
pub struct RateLimitSettings {
    /// Sign-ups one client (IP address) may make per second, sustained; 0 turns the limit
    /// off.
    #[arg(long, env = "SIGN_UP_RATE_LIMIT_PER_SECOND", default_value_t = 5)]
    pub sign_up_rate_limit_per_second: u32,
    /// Sign-ups one client may make at once before the sustained rate applies.
    #[arg(long, env = "SIGN_UP_RATE_LIMIT_BURST", default_value_t = 20)]
    pub sign_up_rate_limit_burst: u32,
    /// Take the client's address from the last `X-Forwarded-For` entry. Only behind a
    /// proxy that appends it (the compose gateway does), or any client could pick its own.
    #[arg(long, env = "TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
}

/// The limiter, shared by every request of the process.
#[derive(Debug, Clone)]
pub struct SignUpRateLimit {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    trust_forwarded_for: bool,
}

impl SignUpRateLimit {
    /// The limit the settings describe, or `None` when they turn it off.
    pub fn new(settings: &RateLimitSettings) -> Option<Self> {
        let per_second = NonZeroU32::new(settings.sign_up_rate_limit_per_second)?;
        let burst = NonZeroU32::new(settings.sign_up_rate_limit_burst).unwrap_or(per_second);
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Some(Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            trust_forwarded_for: settings.trust_forwarded_for,
        })
    }

    /// Forgets idle clients every `FORGET_INTERVAL` until `shutdown`.
    pub async fn forget_idle_clients(self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(FORGET_INTERVAL);
        loop {
            tokio::select! {
                _ = interval.tick() => {
                    self.limiter.retain_recent();
                    self.limiter.shrink_to_fit();
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Who is asking: see the module's documentation.
    fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let forwarded = self
            .trust_forwarded_for
            .then(|| last_forwarded_for(headers))
            .flatten();
        forwarded.or(peer)
    }
}

/// The last address of the last `X-Forwarded-For` header, if it is one.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last = value.to_str().ok()?.rsplit(',').next()?;
    last.trim().parse().ok()
}

/// The middleware: a `POST /users` over its client's limit is answered 429, anything
/// else passes. A request whose client cannot be told (no peer address: not served
/// through `App::run`) is not limited.
pub async fn limit_sign_ups(
    State(limit): State<SignUpRateLimit>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || request.uri().path() != "/users" {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let Some(client) = limit.client(peer, request.headers()) else {
        return next.run(request).await;
    };
    match limit.limiter.check_key(&client) {
        Ok(()) => next.run(request).await,
        Err(not_until) => {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            too_many_requests(wait)
        }
    }
}

/// 429 with the whole seconds until the next sign-up is allowed (at least 1).
fn too_many_requests(wait: Duration) -> Response {
    metrics::counter!("sign_ups_rate_limited_total").increment(1);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "too many sign-ups from this client; retry after the time in Retry-After",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().expect("a header value"));
        }
        headers
    }

    fn limit(trust_forwarded_for: bool) -> SignUpRateLimit {
        SignUpRateLimit::new(&RateLimitSettings {
            sign_up_rate_limit_per_second: 1,
            sign_up_rate_limit_burst: 2,
            trust_forwarded_for,
        })
        .expect("a limit")
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_last_forwarded_address() {
        let peer = Some("10.0.0.2".parse().expect("an address"));
        let forged = headers(&["1.1.1.1, 203.0.113.7"]);
        assert_eq!(
            limit(true).client(peer, &forged),
            Some("203.0.113.7".parse().expect("an address")),
        );
        assert_eq!(
            limit(false).client(peer, &forged),
            peer,
            "not trusted: the peer"
        );
        assert_eq!(limit(true).client(peer, &headers(&["garbage"])), peer);
        assert_eq!(limit(true).client(peer, &HeaderMap::new()), peer);
    }

    #[test]
    fn a_client_gets_its_burst_then_waits() {
        let limit = limit(false);
        let client: IpAddr = "192.0.2.1".parse().expect("an address");
        let other: IpAddr = "192.0.2.2".parse().expect("an address");
        assert!(limit.limiter.check_key(&client).is_ok());
        assert!(limit.limiter.check_key(&client).is_ok());
        assert!(limit.limiter.check_key(&client).is_err(), "the burst is 2");
        assert!(limit.limiter.check_key(&other).is_ok(), "per client");
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let settings = RateLimitSettings {
            sign_up_rate_limit_per_second: 0,
            sign_up_rate_limit_burst: 20,
            trust_forwarded_for: false,
        };
        assert!(SignUpRateLimit::new(&settings).is_none());
    }

    #[test]
    fn the_answer_is_429_with_whole_seconds_to_wait() {
        let response = too_many_requests(Duration::from_millis(1_200));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response = too_many_requests(Duration::from_millis(10));
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}

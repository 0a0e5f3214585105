//! The skeleton every service is built on: a bound listener, the API routes behind the
//! request tracing layer, the operational routes, and background tasks (a consumer, the
//! outbox relay, samplers) that start with the service and are drained when it stops.

use std::{future::Future, net::SocketAddr, pin::Pin, time::Duration};

use axum::{Router, http::StatusCode, middleware};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::timeout::TimeoutLayer;

use crate::{
    config::ServiceArgs,
    ops_http::{self, Readiness},
    trace_http,
};

/// The longest any API request may take: after this it is answered `408 Request Timeout`
/// instead of holding its connection (and a slot of the service) while a client waits
/// for ever. Longer than a database acquire timeout (`DATABASE_ACQUIRE_TIMEOUT_MS`, 5 s by
/// default), so an unreachable database is still answered with its own 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// `HTTP_ADDR`.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The database could not be created, reached or migrated.
    #[error("cannot prepare the database: {0}")]
    Database(#[from] crate::postgres::DatabaseError),
    /// A consuming service's handlers do not match its subscriptions: a mistake in the
    /// service's code, reported at start rather than as a queue that nobody reads.
    #[error("the service's handlers do not match its subscriptions: {0}")]
    Wiring(String),
    /// The keys that seal personal data are missing or unusable.
    #[error(transparent)]
    Keys(#[from] crate::pii::SettingsError),
    /// Stored personal data could not be sealed under the current key.
    #[error(transparent)]
    Reseal(#[from] crate::pii::ResealError),
}

/// A task started by [`App::run`]; it must return soon after the token is cancelled.
type BackgroundTask =
    Box<dyn FnOnce(CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A built, not yet running, service.
///
/// Built in steps ([`App::bind`], then [`App::api`], [`App::ops`], [`App::task`]) and run
/// once with [`App::run`]. Building binds the port, so a test that asked for port 0 reads
/// the real one from [`App::local_addr`] before running it.
pub struct App {
    name: &'static str,
    listener: TcpListener,
    router: Router,
    tasks: Vec<BackgroundTask>,
    shutdown_timeout: Duration,
    /// Answers on the same socket from [`App::bind`] until [`App::run`] takes over.
    starting: StartingServer,
}

/// The server of the starting phase ([`ops_http::starting_router`]), on a second handle of
/// the bound socket. Stopped when the app runs, or dropped with an app that never does.
struct StartingServer {
    stop: CancellationToken,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl StartingServer {
    /// Serves the starting router on `listener` until stopped.
    fn serve(listener: TcpListener) -> Self {
        let stop = CancellationToken::new();
        let router = ops_http::starting_router();
        let server = tokio::spawn({
            let stop = stop.clone();
            async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(error) = served {
                    tracing::debug!(error = %error, "the starting phase's server stopped");
                }
            }
        });
        Self {
            stop,
            server: Some(server),
        }
    }

    /// Stops it, and waits until its connections are closed, so that only the app's own
    /// server answers from then on.
    async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for StartingServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("listener", &self.listener)
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Binds `HTTP_ADDR` and answers on it at once: `/healthz` 200 and `/readyz` 503
    /// ("starting") while the rest is built ([`ops_http::starting_router`]); no routes
    /// and no tasks of the service's own yet.
    pub async fn bind(name: &'static str, args: &ServiceArgs) -> Result<Self, StartError> {
        let bind_error = |source| StartError::Bind {
            addr: args.http_addr,
            source,
        };
        let listener = TcpListener::bind(args.http_addr)
            .await
            .map_err(bind_error)?;
        // Two handles of one socket: the starting server accepts on one until the app
        // runs, then the app's server on the other. Connections wait in the kernel's
        // backlog in between.
        let socket = listener.into_std().map_err(bind_error)?;
        let second = socket.try_clone().map_err(bind_error)?;
        let starting = StartingServer::serve(TcpListener::from_std(second).map_err(bind_error)?);
        Ok(Self {
            name,
            listener: TcpListener::from_std(socket).map_err(bind_error)?,
            router: Router::new(),
            tasks: Vec::new(),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
            starting,
        })
    }

    /// Adds the service's API routes, each request in a server span that continues the
    /// caller's trace and answers with `traceresponse` ([`trace_http::layer`]), and
    /// answered `408` after [`REQUEST_TIMEOUT`] rather than left hanging.
    pub fn api(mut self, routes: Router) -> Self {
        trace_http::describe_metrics();
        let traced = routes
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                REQUEST_TIMEOUT,
            ))
            .layer(middleware::from_fn(trace_http::layer));
        self.router = self.router.merge(traced);
        self
    }

    /// Adds `/healthz`, `/readyz` and `/metrics` (outside the tracing layer: probes would
    /// bury the traces people come to look at) and the sampler of the connection gauges.
    pub fn ops(mut self, readiness: Readiness) -> Self {
        self.router = self.router.merge(ops_http::router(readiness.clone()));
        self.task(move |shutdown| ops_http::run_metrics_upkeep(readiness, shutdown))
    }

    /// Adds a background task, started by [`App::run`] with the shutdown token.
    pub fn task<F, Fut>(mut self, task: F) -> Self
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks
            .push(Box::new(move |shutdown| Box::pin(task(shutdown))));
        self
    }

    /// The bound address (the real port when built with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves HTTP and runs the background tasks until `shutdown`, then stops accepting,
    /// lets requests and tasks finish within `SHUTDOWN_TIMEOUT_SECS`, and returns.
    ///
    /// The server only returns early on an I/O error; the token is cancelled then too, so
    /// the background tasks never outlive the HTTP side.
    pub async fn run(mut self, shutdown: CancellationToken) -> std::io::Result<()> {
        self.starting.stop().await;
        tracing::info!(addr = %self.local_addr()?, "{} listening", self.name);
        let tracker = TaskTracker::new();
        for task in self.tasks {
            tracker.spawn(task(shutdown.clone()));
        }
        let router = crate::problem::for_the_framework(self.router);
        // With each connection's peer address, for what limits per client (registration's
        // sign-up rate limit reads it as `ConnectInfo`).
        let router = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        shutdown.cancel();
        crate::shutdown::drain(&tracker, self.shutdown_timeout).await;
        tracing::info!("drained, exiting");
        served
    }
}

//! Integration tests of the messaging crate against the local RabbitMQ, without the
//! service binaries: retries, dead letters, redrive and shutdown, tested at the layer that
//! owns them. Each test has its own exchange and queues (a random prefix), so they run in
//! parallel, and removes them when it ends.

mod helpers;
mod poison;
mod redrive;
mod retries;
mod shutdown;

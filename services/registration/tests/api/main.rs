//! In-process tests of registration's HTTP layer (no broker needed). The behaviour that
//! crosses services is tested in the workspace's `tests/system`.

mod backpressure;

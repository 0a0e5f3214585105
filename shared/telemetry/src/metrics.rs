use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from 1 ms to 10 s. Explicit buckets make the exporter write
/// real Prometheus histograms (aggregatable across instances) rather than summaries.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The handle that renders `/metrics`, installing the recorder on first use.
///
/// The `metrics` facade has exactly one recorder per process, so this is a process-wide
/// singleton by nature; tests that start several apps in one process share it.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(SECONDS_BUCKETS)
                .expect("the bucket list is a non-empty constant");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first, which this OnceLock
            // prevents for everything that goes through it.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

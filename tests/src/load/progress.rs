//! The progress bars on stderr: one for the POSTs, one for the sign-ups complete end to
//! end, per phase. Hidden unless asked for (the benchmark and tests run without), and
//! indicatif draws nothing when stderr is not a terminal, so piping the output stays
//! clean.

use std::fmt;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// The bars of one run.
#[derive(Debug, Clone)]
pub(super) struct Bars(MultiProgress);

impl Bars {
    /// Bars drawn on stderr if `visible`, else nowhere.
    pub(super) fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self(MultiProgress::with_draw_target(target))
    }

    /// The POSTs of `phase`: a bar when their number is known, else a counter.
    pub(super) fn sending(&self, phase: &str, expected: Option<usize>) -> ProgressBar {
        let bar = match expected {
            Some(count) => ProgressBar::new(count as u64).with_style(style(
                "{prefix:>22} [{elapsed_precise}] {wide_bar} {pos}/{len} {rate}",
            )),
            None => ProgressBar::new_spinner().with_style(style(
                "{prefix:>22} [{elapsed_precise}] {spinner} {pos} sent {rate}",
            )),
        };
        self.0.add(bar.with_prefix(format!("{phase}: POST /users")))
    }

    /// The sign-ups of `phase` complete end to end; its length grows with each accepted
    /// sign-up.
    pub(super) fn completing(&self, phase: &str) -> ProgressBar {
        let bar = ProgressBar::new(0).with_style(style(
            "{prefix:>22} [{elapsed_precise}] {wide_bar} {pos}/{len} {rate}",
        ));
        self.0.add(bar.with_prefix(format!("{phase}: complete")))
    }
}

/// `template` with a `{rate}` key: the average rate since the bar started, in whole
/// units per second (indicatif's `{per_sec}` is a recent estimate with four decimals).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("rate", |state: &ProgressState, out: &mut dyn fmt::Write| {
            let seconds = state.elapsed().as_secs_f64();
            let rate = if seconds > 0.0 {
                state.pos() as f64 / seconds
            } else {
                0.0
            };
            let _ = write!(out, "{rate:.0}/s");
        })
}

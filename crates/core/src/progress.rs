//! Progress bars on stderr for stage work. Hidden with `--json`/`--quiet`
//! and when stderr is not a terminal, so scripts see clean output.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Environment variable that slows every work item by this many milliseconds.
/// It exists so tests can interrupt a stage in the middle with SIGKILL.
pub const ITEM_DELAY_ENV: &str = "SIUO_DEBUG_ITEM_DELAY_MS";

pub struct Progress {
    bar: ProgressBar,
    item_delay: Option<Duration>,
}

impl Progress {
    pub fn new(label: &str, items: usize, visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(items as u64), target);
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len} {elapsed} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_owned());
        let item_delay = std::env::var(ITEM_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        Progress { bar, item_delay }
    }

    /// Counts items finished earlier (resumed from a journal).
    pub fn skip(&self, items: usize) {
        self.bar.inc(items as u64);
    }

    /// Call before each work item.
    pub fn before_item(&self) {
        if let Some(delay) = self.item_delay {
            std::thread::sleep(delay);
        }
    }

    pub fn item_done(&self) {
        self.bar.inc(1);
    }

    /// Prints around the bar without garbling it.
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        self.bar.suspend(print)
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

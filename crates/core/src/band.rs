//! The thresholds of a scored classifier: unsafe, held for review, or safe.

use crate::record::Judgement;

/// A score at or above `threshold` is unsafe; one at or above
/// `review_threshold` (when set, and lower) is held for human review.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    pub threshold: f64,
    pub review_threshold: Option<f64>,
}

impl Band {
    pub fn judge(&self, unsafe_score: f64) -> Judgement {
        if unsafe_score >= self.threshold {
            Judgement::Unsafe
        } else if self.review_threshold.is_some_and(|r| unsafe_score >= r) {
            Judgement::Review
        } else {
            Judgement::Safe
        }
    }

    pub fn problems(&self, place: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.threshold) || self.threshold.is_nan() {
            problems.push(format!("{place}: threshold must be between 0 and 1"));
        }
        if let Some(review) = self.review_threshold
            && !(0.0..self.threshold).contains(&review)
        {
            problems.push(format!(
                "{place}: review_threshold must be at least 0 and below threshold ({})",
                self.threshold
            ));
        }
        problems
    }
}

/// `band()` of a classifier config with `threshold` and `review_threshold`
/// fields (serde cannot flatten them into a `Band` under `deny_unknown_fields`).
#[macro_export]
macro_rules! band_of {
    ($config:ty) => {
        impl $config {
            pub fn band(&self) -> $crate::band::Band {
                $crate::band::Band {
                    threshold: self.threshold,
                    review_threshold: self.review_threshold,
                }
            }
        }
    };
}
pub use band_of;

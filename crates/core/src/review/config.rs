//! The `review` section: what the review desk queues and what export
//! requires of it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewConfig {
    /// Release only candidates a reviewer approved (or edited).
    #[serde(default)]
    pub required: bool,
    /// Share of kept candidates (0 to 1) also queued for an audit,
    /// picked by a hash of the candidate id, so the sample is stable.
    #[serde(default)]
    pub audit_sample: f64,
}

impl ReviewConfig {
    pub fn problems(&self) -> Vec<String> {
        match (0.0..=1.0).contains(&self.audit_sample) {
            true => Vec::new(),
            false => vec![format!(
                "review.audit_sample: {} is not a share between 0 and 1",
                self.audit_sample
            )],
        }
    }
}

//! The SIUO taxonomy of domains and subcategories (`prompts/taxonomy.yaml`).
//! Every label anywhere in siuo is checked against it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content_hash::Digest;
use crate::error::{Error, Result};
use crate::input_file;
use crate::suggestion;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TaxonomyFile {
    domains: Vec<Domain>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// Stable id used in scenario banks and records.
    pub id: String,
    /// Exactly the published SIUO `category` string.
    pub name: String,
    pub description: String,
    pub subcategories: Vec<Subcategory>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Subcategory {
    pub id: String,
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct Taxonomy {
    pub path: PathBuf,
    pub domains: Vec<Domain>,
    pub digest: Digest,
}

impl Taxonomy {
    pub fn load(path: &Path) -> Result<Self> {
        let text = input_file::read_text(path)?;
        let file: TaxonomyFile = input_file::parse_yaml(path, &text)?;
        let taxonomy = Taxonomy {
            path: path.to_owned(),
            domains: file.domains,
            digest: Digest::of(text.as_bytes()),
        };
        taxonomy.validate()?;
        Ok(taxonomy)
    }

    fn validate(&self) -> Result<()> {
        let invalid = |record: String, message: String| Error::InvalidRecord {
            path: self.path.clone(),
            record,
            message,
        };
        if self.domains.is_empty() {
            return Err(invalid(
                "domains".into(),
                "the taxonomy has no domains".into(),
            ));
        }
        let mut domain_ids = BTreeSet::new();
        let mut domain_names = BTreeSet::new();
        for domain in &self.domains {
            let record = format!("domain `{}`", domain.id);
            if domain.id.trim().is_empty() || domain.name.trim().is_empty() {
                return Err(invalid(record, "id and name must not be empty".into()));
            }
            if !domain_ids.insert(&domain.id) || !domain_names.insert(&domain.name) {
                return Err(invalid(record, "duplicate domain id or name".into()));
            }
            if domain.subcategories.is_empty() {
                return Err(invalid(record, "has no subcategories".into()));
            }
            let mut sub_ids = BTreeSet::new();
            for sub in &domain.subcategories {
                if sub.id.trim().is_empty() || !sub_ids.insert(&sub.id) {
                    return Err(invalid(
                        format!("{record} subcategory `{}`", sub.id),
                        "subcategory id is empty or duplicated".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn domain(&self, id: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| d.id == id)
    }

    /// The published SIUO category string of a domain id (the id itself
    /// for a domain the taxonomy does not know).
    pub fn category(&self, domain_id: &str) -> String {
        self.domain(domain_id)
            .map_or_else(|| domain_id.to_owned(), |d| d.name.clone())
    }

    pub fn domain_index(&self, id: &str) -> usize {
        self.domains
            .iter()
            .position(|d| d.id == id)
            .unwrap_or(usize::MAX)
    }

    /// Resolves a (domain, subcategory) label of `record` in `path`, or
    /// explains what is wrong with it.
    pub fn resolve(
        &self,
        path: &Path,
        record: &str,
        domain_id: &str,
        subcategory_id: &str,
    ) -> Result<(&Domain, &Subcategory)> {
        let domain = self.domain(domain_id).ok_or_else(|| Error::UnknownDomain {
            path: path.to_owned(),
            record: record.to_owned(),
            domain: domain_id.to_owned(),
            suggestion: suggestion::closest(domain_id, self.domains.iter().map(|d| d.id.as_str())),
        })?;
        let subcategory = domain
            .subcategories
            .iter()
            .find(|s| s.id == subcategory_id)
            .ok_or_else(|| Error::UnknownSubcategory {
                path: path.to_owned(),
                record: record.to_owned(),
                domain: domain_id.to_owned(),
                subcategory: subcategory_id.to_owned(),
                suggestion: suggestion::closest(
                    subcategory_id,
                    domain.subcategories.iter().map(|s| s.id.as_str()),
                ),
            })?;
        Ok((domain, subcategory))
    }

    /// Sort key that orders records by taxonomy position.
    pub fn order(&self, domain_id: &str, subcategory_id: &str) -> (usize, usize) {
        let domain_index = self.domain_index(domain_id);
        let sub_index = self
            .domains
            .get(domain_index)
            .and_then(|d| d.subcategories.iter().position(|s| s.id == subcategory_id))
            .unwrap_or(usize::MAX);
        (domain_index, sub_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Result<Taxonomy> {
        Taxonomy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../prompts/taxonomy.yaml"))
    }

    #[test]
    fn shipped_taxonomy_has_siuo_domains_and_33_subcategories() -> Result<()> {
        let taxonomy = shipped()?;
        let names: Vec<&str> = taxonomy.domains.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "self-harm",
                "dangerous behavior",
                "morality",
                "illegal activities & crime",
                "controversial topics, politics",
                "discrimination & stereotyping",
                "religion beliefs",
                "information misinterpretation",
                "privacy violation",
            ]
        );
        let subcategories: usize = taxonomy.domains.iter().map(|d| d.subcategories.len()).sum();
        assert_eq!(subcategories, 33);
        Ok(())
    }

    #[test]
    fn unknown_labels_name_file_record_and_suggest() -> Result<()> {
        let taxonomy = shipped()?;
        let path = Path::new("bank.yaml");
        let err = taxonomy.resolve(path, "scenario `x`", "self harm", "self-killing");
        let message = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            message,
            "bank.yaml: scenario `x`: unknown domain `self harm` (did you mean `self-harm`?)"
        );
        let err = taxonomy.resolve(path, "scenario `y`", "morality", "weather");
        assert!(matches!(err, Err(Error::UnknownSubcategory { .. })));
        Ok(())
    }
}

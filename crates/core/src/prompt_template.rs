//! Prompt templates (minijinja): a folder of `.j2` files, each rendered to
//! a `system` and a `user` block, with the blake3 of every source so that
//! records can name exactly which template asked. Generators and judges
//! share it; it knows neither.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, Value as TemplateValue};
use serde::Serialize;

use crate::content_hash::{ContentHasher, Digest};
use crate::error::{Error, Result};

/// Every template of a templates folder, by `/`-separated relative name.
pub struct TemplateSet {
    dir: PathBuf,
    environment: Environment<'static>,
    pub digests: BTreeMap<String, Digest>,
}

impl TemplateSet {
    /// Loads every `.j2` file under `dir`; each of `required` must be there.
    pub fn load(dir: &Path, required: &[&str]) -> Result<Self> {
        let mut environment = Environment::new();
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut digests = BTreeMap::new();
        for (name, path) in crate::input_file::files_under(dir)? {
            if !name.ends_with(".j2") {
                continue;
            }
            let source = crate::input_file::read_text(&path)?;
            digests.insert(name.clone(), Digest::of(source.as_bytes()));
            environment
                .add_template_owned(name, source)
                .map_err(|e| failed_template(dir, &e))?;
        }
        for required in required {
            if !digests.contains_key(*required) {
                return Err(Error::Template {
                    path: dir.join(required),
                    line: None,
                    message: "template not found".to_owned(),
                });
            }
        }
        Ok(TemplateSet {
            dir: dir.to_owned(),
            environment,
            digests,
        })
    }

    /// Adds every template's name and blake3 to a cache key.
    pub fn hash_into(&self, hasher: &mut ContentHasher) {
        for (name, digest) in &self.digests {
            hasher.str(name).str(&digest.hex());
        }
    }

    /// Renders the `system` and `user` blocks of `name`.
    pub fn render(&self, name: &str, context: &impl Serialize) -> Result<(String, String)> {
        let error = |e: minijinja::Error| failed_template(&self.dir, &e);
        let template = self.environment.get_template(name).map_err(error)?;
        let mut captured = template
            .render_captured(TemplateValue::from(minijinja::value::Serde(context)))
            .map_err(error)?;
        let mut block = |block: &str| {
            captured
                .with_state_mut(|state| state.render_block(block))
                .map(|t| t.trim().to_owned())
                .map_err(error)
        };
        Ok((block("system")?, block("user")?))
    }
}

/// The template that failed, which may be a parent of the one rendered:
/// minijinja names it, so the path is rebuilt from that name.
fn failed_template(dir: &Path, error: &minijinja::Error) -> Error {
    let path = error
        .name()
        .map_or_else(|| dir.to_owned(), |name| dir.join(name));
    template_error(&path, error)
}

/// A template error naming the file and, when minijinja knows it, the line.
pub fn template_error(path: &Path, error: &minijinja::Error) -> Error {
    let mut message = error.kind().to_string();
    if let Some(detail) = error.detail() {
        message = format!("{message}: {detail}");
    }
    Error::Template {
        path: path.to_owned(),
        line: error.line(),
        message,
    }
}

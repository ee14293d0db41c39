//! The hook catalogue (`rules/hooks.yaml`): which kernel functions and
//! tracepoints nettrace can hook, grouped in a tree so users can select
//! `-t link-in,tcp` or single hooks. The default catalogue is embedded in the
//! binary; `--rules FILE` merges a user's rule pack (same schema) into it:
//! hooks already known gain the pack's rules, new hooks and groups are added.
//!
//! Parsing is serde's (`schema`: unknown fields are errors, with line
//! numbers); the checks serde cannot express (unique names, tracepoint
//! syntax, rule matchers) run in `validate`, so everything after trusts the
//! tree; `merge` adds a rule pack; `select` resolves `-t` lists. This file
//! ties them together: the `Catalogue` the rest of nettrace uses.

mod merge;
mod schema;
mod select;
mod validate;

use std::collections::HashSet;

use merge::merge;
use schema::File;
pub use schema::{Group, Hook, Level, NfContext, RetMatch, Rule};
pub use select::{Selection, select};
use validate::validate;

/// The catalogue shipped with nettrace.
pub const EMBEDDED: &str = include_str!("../../../rules/hooks.yaml");
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// YAML syntax or schema error; serde_yaml's message carries the line.
    #[error("{origin}: {source}")]
    Parse {
        origin: String,
        #[source]
        source: serde_yaml::Error,
    },
    /// A rule the schema allows but the catalogue must not contain.
    #[error("{origin}: {msg}")]
    Invalid { origin: String, msg: String },
}

/// The validated catalogue, flattened: hooks in file order, each with the
/// path of groups above it.
#[derive(Clone, Debug)]
pub struct Catalogue {
    pub groups: Vec<Group>,
    pub hooks: Vec<CatalogueHook>,
}

#[derive(Clone, Debug)]
pub struct CatalogueHook {
    pub hook: Hook,
    /// Group names from the root down, e.g. `["link", "link-in"]`.
    pub path: Vec<String>,
}

impl Catalogue {
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED, "embedded catalogue").expect("the embedded catalogue is valid (unit-tested)")
    }

    /// The embedded catalogue with the rule pack at `path` merged in.
    pub fn with_pack_file(path: &str) -> Result<Self, CatalogueError> {
        let text = std::fs::read_to_string(path).map_err(|e| CatalogueError::Invalid {
            origin: path.to_string(),
            msg: format!("cannot read: {e}"),
        })?;
        Self::with_pack(&text, path)
    }

    /// The embedded catalogue with a rule pack merged in; every error names
    /// the pack (the embedded part is known to be valid).
    pub fn with_pack(text: &str, origin: &str) -> Result<Self, CatalogueError> {
        // Parsed once per process (the fuzzer merges packs thousands of times).
        static BASE: std::sync::OnceLock<File> = std::sync::OnceLock::new();
        let mut base = BASE
            .get_or_init(|| {
                read(EMBEDDED, "embedded catalogue").expect("the embedded catalogue is valid (unit-tested)")
            })
            .clone();
        let pack = read(text, origin)?;
        // The pack must be a valid catalogue on its own (names, matchers,
        // empty groups), so its errors are reported against its own text.
        Self::build(
            File {
                version: pack.version,
                groups: pack.groups.clone(),
            },
            origin,
        )?;
        merge(&mut base.groups, pack.groups, &mut Vec::new()).map_err(|msg| CatalogueError::Invalid {
            origin: origin.to_string(),
            msg,
        })?;
        Self::build(base, origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogueError> {
        Self::build(read(text, origin)?, origin)
    }

    fn build(file: File, origin: &str) -> Result<Self, CatalogueError> {
        let invalid = |msg: String| CatalogueError::Invalid {
            origin: origin.to_string(),
            msg,
        };
        let mut hooks = Vec::new();
        let mut names = HashSet::new();
        validate(&file.groups, &mut Vec::new(), &mut names, &mut hooks).map_err(invalid)?;
        if hooks.is_empty() {
            return Err(invalid("no hooks defined".into()));
        }
        Ok(Self {
            groups: file.groups,
            hooks,
        })
    }

    /// Every group and hook name, for `-t` suggestions.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut all = Vec::new();
        collect_group_names(&self.groups, &mut all);
        all.into_iter()
            .chain(self.hooks.iter().map(|h| h.hook.name.as_str()))
    }
}

/// Parses one file and checks its schema version.
fn read(text: &str, origin: &str) -> Result<File, CatalogueError> {
    let file: File = serde_yaml::from_str(text).map_err(|source| CatalogueError::Parse {
        origin: origin.to_string(),
        source,
    })?;
    if file.version != SCHEMA_VERSION {
        return Err(CatalogueError::Invalid {
            origin: origin.to_string(),
            msg: format!(
                "schema version {} is not supported (this nettrace reads version {SCHEMA_VERSION})",
                file.version
            ),
        });
    }
    Ok(file)
}

fn collect_group_names<'a>(groups: &'a [Group], out: &mut Vec<&'a str>) {
    for g in groups {
        out.push(&g.name);
        collect_group_names(&g.groups, out);
    }
}

#[cfg(test)]
mod tests;

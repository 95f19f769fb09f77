//! Document front-ends: YAML (serde-saphyr with a resource budget), TOML and JSON, all
//! turning their errors into one `DocError` that carries line and column.
//!
//! The YAML options follow what cloud-init's PyYAML accepts (YAML 1.1 octal such as
//! `0644`, `yes`/`no` booleans, `<<` merge keys), but an alias bomb stops after a bounded
//! amount of work instead of expanding.

use serde::de::DeserializeOwned;

/// Events an alias may replay in one document: far above any real config, far below a
/// billion laughs.
const MAX_REPLAYED_EVENTS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    /// Not well-formed YAML/TOML/JSON.
    #[error("line {line} column {column}: {message}")]
    Syntax {
        line: u64,
        column: u64,
        message: String,
    },
    /// Well-formed but not what the schema expects (wrong type, unknown Kiln field,
    /// invalid value).
    #[error("line {line} column {column}: {message}")]
    Schema {
        line: u64,
        column: u64,
        message: String,
    },
    /// A resource budget (aliases, nesting, size) was exceeded.
    #[error("line {line} column {column}: YAML budget exceeded: {message}")]
    Budget {
        line: u64,
        column: u64,
        message: String,
    },
}

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 500_000;
    budget.max_depth = 48;
    budget.max_documents = 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    options.with_snippet = false;
    options.legacy_octal_numbers = true;
    options.ignore_binary_tag_for_string = true;
    options
}

/// Parses one YAML document; an empty document (comments only) is `None`.
pub fn yaml<T: DeserializeOwned>(text: &str) -> Result<Option<T>, DocError> {
    serde_saphyr::from_str_with_options::<Option<T>>(text, yaml_options()).map_err(yaml_error)
}

fn yaml_error(err: serde_saphyr::Error) -> DocError {
    use serde_saphyr::Error as E;
    let mut inner = err.without_snippet();
    while let E::AliasError { error, .. } = inner {
        inner = error.without_snippet();
    }
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let text = inner.to_string();
    let suffix = format!(" at line {line}, column {column}");
    let message = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
    let budget = matches!(
        inner,
        E::Budget { .. }
            | E::AliasReplayLimitExceeded { .. }
            | E::AliasExpansionLimitExceeded { .. }
            | E::AliasReplayStackDepthExceeded { .. }
            | E::AliasReplayCounterOverflow { .. }
    );
    let schema = matches!(
        inner,
        E::Message { .. }
            | E::SerdeInvalidType { .. }
            | E::SerdeInvalidValue { .. }
            | E::SerdeInvalidLength { .. }
            | E::SerdeUnknownVariant { .. }
            | E::SerdeUnknownField { .. }
            | E::SerdeMissingField { .. }
            | E::SerdeVariantId { .. }
            | E::InvalidScalar { .. }
            | E::NullIntoString { .. }
            | E::TaggedScalarCannotDeserializeIntoString { .. }
    );
    if budget {
        DocError::Budget {
            line,
            column,
            message,
        }
    } else if schema {
        DocError::Schema {
            line,
            column,
            message,
        }
    } else {
        DocError::Syntax {
            line,
            column,
            message,
        }
    }
}

/// Parses a TOML document (Kiln's own schema).
pub fn toml<T: DeserializeOwned>(text: &str) -> Result<T, DocError> {
    toml::from_str::<T>(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|s| line_column(text, s.start))
            .unwrap_or((0, 0));
        let message = e.message().trim_end().to_string();
        if toml::from_str::<toml::Table>(text).is_ok() {
            DocError::Schema {
                line,
                column,
                message,
            }
        } else {
            DocError::Syntax {
                line,
                column,
                message,
            }
        }
    })
}

/// Parses a JSON document (ConfigDrive files, the persisted NodeConfig).
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DocError> {
    serde_json::from_slice::<T>(bytes).map_err(|e| {
        let line = u64::try_from(e.line()).unwrap_or(u64::MAX);
        let column = u64::try_from(e.column()).unwrap_or(u64::MAX);
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        if e.is_data() {
            DocError::Schema {
                line,
                column,
                message,
            }
        } else {
            DocError::Syntax {
                line,
                column,
                message,
            }
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (u64, u64) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u64::try_from(line).unwrap_or(u64::MAX),
        u64::try_from(column).unwrap_or(u64::MAX),
    )
}

/// Text of a document that must be UTF-8 (a BOM is dropped).
pub fn utf8(bytes: &[u8]) -> Result<&str, DocError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_column(
            std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
            e.valid_up_to(),
        );
        DocError::Syntax {
            line,
            column,
            message: "not valid UTF-8".into(),
        }
    })
}

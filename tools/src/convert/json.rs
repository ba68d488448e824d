//! Small helpers for reading Hugging Face JSON files.

use std::path::Path;

use serde_json::Value;

use super::error::{io, ConvertError};

/// Reads and parses a JSON file; `Ok(None)` if it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Value>, ConvertError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| ConvertError::Json {
                    path: path.to_owned(),
                    source,
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// A field that is absent or JSON `null`.
pub fn absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// A non-negative integer field of config.json.
pub fn usize_field(
    cfg: &Value,
    field: &str,
    default: Option<usize>,
) -> Result<usize, ConvertError> {
    let v = cfg.get(field);
    if absent(v) {
        return default.ok_or_else(|| ConvertError::ConfigField {
            field: field.into(),
            reason: "is missing".into(),
        });
    }
    v.and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| ConvertError::ConfigField {
            field: field.into(),
            reason: format!(
                "must be a non-negative integer, found {}",
                v.unwrap_or(&Value::Null)
            ),
        })
}

/// A boolean field, with a default when absent.
pub fn bool_field(v: &Value, field: &str, default: bool) -> Option<bool> {
    match v.get(field) {
        None | Some(Value::Null) => Some(default),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => None,
    }
}

/// A string field, if present.
pub fn str_field<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

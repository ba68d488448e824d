//! Reading Hugging Face JSON files: the engine's helpers (`berth::tokenizer::hf`), plus the
//! integer fields of config.json.

use serde_json::Value;

use super::error::ConvertError;
pub use berth::tokenizer::hf::{absent, bool_field, read_json, str_field};

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

//! `berth run`: inputs from a safetensors file through the reference forward pass, outputs to a
//! safetensors file under transformers' names. This is how a user checks a conversion against
//! transformers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use berth::format::BerthFile;
use berth::reference::{Inputs, Outputs, ReferenceModel};
use safetensors::{Dtype, SafeTensors};

/// What can go wrong in `berth run`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a valid safetensors file: {message}", path.display())]
    Safetensors { path: PathBuf, message: String },
    #[error("inputs have no `{key}`")]
    MissingInput { key: String },
    #[error("input `{key}`: {reason}")]
    BadInput { key: String, reason: String },
    #[error("writing outputs: {message}")]
    Serialize { message: String },
    #[error(transparent)]
    Berth(#[from] berth::Error),
    #[error(transparent)]
    Format(#[from] berth::FormatError),
    #[error(transparent)]
    Input(#[from] berth::InputError),
}

/// One batch of inputs, owned.
#[derive(Clone, Debug, PartialEq)]
pub struct InputBatch {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Option<Vec<i64>>,
    pub token_type_ids: Option<Vec<i64>>,
}

impl InputBatch {
    pub fn as_inputs(&self) -> Inputs<'_> {
        Inputs {
            batch: self.batch,
            seq: self.seq,
            input_ids: &self.input_ids,
            attention_mask: self.attention_mask.as_deref(),
            token_type_ids: self.token_type_ids.as_deref(),
        }
    }
}

/// An integer tensor's shape and values, widened to i64.
type IntTensor = (Vec<usize>, Vec<i64>);

fn int_tensor(st: &SafeTensors<'_>, key: &str) -> Result<Option<IntTensor>, RunError> {
    let Ok(view) = st.tensor(key) else {
        return Ok(None);
    };
    let bad = |reason: String| RunError::BadInput {
        key: key.to_owned(),
        reason,
    };
    let b = view.data();
    let values: Vec<i64> = match view.dtype() {
        Dtype::I64 => b
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                i64::from_le_bytes(a)
            })
            .collect(),
        Dtype::I32 => b
            .chunks_exact(4)
            .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        other => return Err(bad(format!("dtype {other:?}, expected I64 or I32"))),
    };
    if view.shape().len() != 2 {
        return Err(bad(format!(
            "shape {:?}, expected [batch, seq]",
            view.shape()
        )));
    }
    Ok(Some((view.shape().to_vec(), values)))
}

/// Reads `{prefix}input_ids`, `{prefix}attention_mask` and `{prefix}token_type_ids`.
pub fn read_batch(st: &SafeTensors<'_>, prefix: &str) -> Result<InputBatch, RunError> {
    let key = format!("{prefix}input_ids");
    let (shape, input_ids) = int_tensor(st, &key)?.ok_or(RunError::MissingInput { key })?;
    let optional = |name: &str| -> Result<Option<Vec<i64>>, RunError> {
        let key = format!("{prefix}{name}");
        match int_tensor(st, &key)? {
            None => Ok(None),
            Some((s, v)) if s == shape => Ok(Some(v)),
            Some((s, _)) => Err(RunError::BadInput {
                key,
                reason: format!("shape {s:?} differs from input_ids' {shape:?}"),
            }),
        }
    };
    Ok(InputBatch {
        batch: shape[0],
        seq: shape[1],
        attention_mask: optional("attention_mask")?,
        token_type_ids: optional("token_type_ids")?,
        input_ids,
    })
}

/// Loads a safetensors file.
pub fn read_file(path: &Path) -> Result<Vec<u8>, RunError> {
    std::fs::read(path).map_err(|source| RunError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Runs every prefix's batch and returns the outputs by name (`{prefix}{output}`).
pub fn run_batches(
    model: &ReferenceModel,
    inputs_path: &Path,
    prefixes: &[String],
) -> Result<Vec<(String, berth::reference::Tensor)>, RunError> {
    let bytes = read_file(inputs_path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| RunError::Safetensors {
        path: inputs_path.to_owned(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for prefix in prefixes {
        let batch = read_batch(&st, prefix)?;
        let outputs: Outputs = model.forward(&batch.as_inputs())?;
        for (name, t) in outputs.named() {
            out.push((format!("{prefix}{name}"), t.clone()));
        }
    }
    Ok(out)
}

/// Serialises named f32 tensors as safetensors.
pub fn to_safetensors(tensors: &[(String, berth::reference::Tensor)]) -> Result<Vec<u8>, RunError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.clone(), t.shape.clone(), b)
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (n, shape, b) in &bytes {
        let v =
            safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), b).map_err(|e| {
                RunError::Serialize {
                    message: e.to_string(),
                }
            })?;
        views.push((n.clone(), v));
    }
    let info: Option<HashMap<String, String>> = Some(HashMap::from([(
        "producer".to_owned(),
        "berth run (reference)".to_owned(),
    )]));
    safetensors::serialize(views, info).map_err(|e| RunError::Serialize {
        message: e.to_string(),
    })
}

/// `berth run`: the whole command.
pub fn run(
    model_path: &Path,
    inputs: &Path,
    output: &Path,
    prefixes: &[String],
) -> Result<Vec<(String, Vec<usize>)>, RunError> {
    let file = BerthFile::open(model_path)?;
    let model = ReferenceModel::new(&file)?;
    let tensors = run_batches(&model, inputs, prefixes)?;
    let bytes = to_safetensors(&tensors)?;
    std::fs::write(output, bytes).map_err(|source| RunError::Io {
        path: output.to_owned(),
        source,
    })?;
    Ok(tensors.into_iter().map(|(n, t)| (n, t.shape)).collect())
}

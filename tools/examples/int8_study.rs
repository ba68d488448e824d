//! Where MiniLM's int8 error comes from: converts all-MiniLM-L6-v2 at int8, then again with
//! chosen linear layers kept at f32 (one layer at a time, one kind of projection at a time),
//! and prints the min, second and third smallest and mean cosine of the 48 reference sentences'
//! embeddings (fast path, this process's kernels) to sentence-transformers'. Needs the cached
//! checkpoint (scripts/fetch-minilm.sh).
//!
//!     cargo run --release -p berth-tools --example int8_study

use berth::fast::{FastModel, Workspace};
use berth::format::BerthFile;
use berth::reference::Inputs;
use berth_tools::convert::{convert_dir, Options, OutDtype};
use safetensors::SafeTensors;

/// Which tensors of the int8 file to replace by their f32 version.
type Keep = Box<dyn Fn(&str) -> bool>;

fn floats(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<u8>) {
    let t = st.tensor(name).unwrap();
    (t.shape().to_vec(), t.data().to_vec())
}

fn main() {
    let dir = berth_tools::cache::fetched_minilm_dir().unwrap();
    let opts = |dtype| Options {
        dtype,
        progress: false,
        smoothing: true,
    };
    let f32c = convert_dir(&dir, &opts(OutDtype::F32)).unwrap();
    let i8c = convert_dir(&dir, &opts(OutDtype::Int8)).unwrap();
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/reference/minilm");
    let tok_bytes = std::fs::read(fixtures.join("tokens.safetensors")).unwrap();
    let tok = SafeTensors::deserialize(&tok_bytes).unwrap();
    let emb_bytes = std::fs::read(fixtures.join("embeddings.safetensors")).unwrap();
    let emb = SafeTensors::deserialize(&emb_bytes).unwrap();
    let (ids_shape, ids) = floats(&tok, "input_ids");
    let ids: Vec<i64> = ids
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let (_, lengths) = floats(&tok, "lengths");
    let lengths: Vec<i64> = lengths
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let (emb_shape, want) = floats(&emb, "embeddings");
    let want: Vec<f32> = want
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let (n, width, dim) = (ids_shape[0], ids_shape[1], emb_shape[1]);
    let mask: Vec<i64> = (0..n * width)
        .map(|i| i64::from((i % width) < lengths[i / width] as usize))
        .collect();

    let kinds = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "intermediate.dense",
        "output.dense",
    ];
    let mut configs: Vec<(String, Keep)> = vec![("all int8".into(), Box::new(|_: &str| false))];
    for l in 0..6 {
        configs.push((
            format!("layer {l} f32"),
            Box::new(move |n: &str| n.starts_with(&format!("encoder.layer.{l}."))),
        ));
    }
    for k in kinds {
        configs.push((
            format!("{k} f32 (all layers)"),
            Box::new(move |n: &str| {
                n.contains(&format!(".{k}.")) && !(k == "output.dense" && n.contains("attention"))
            }),
        ));
    }
    configs.push(("all f32".into(), Box::new(|_: &str| true)));
    let tmp = tempfile::tempdir().unwrap();
    for (label, keep) in &configs {
        let tensors: Vec<_> = i8c
            .tensors
            .iter()
            .filter_map(|q| {
                if !keep(&q.name) {
                    return Some(q.clone());
                }
                // A kept layer: its f32 weights as the checkpoint has them, without the
                // smoothing (whose input scales only come beside int8 weights).
                f32c.tensors.iter().find(|f| f.name == q.name).cloned()
            })
            .collect();
        let path = tmp.path().join("m.berth");
        berth::format::write_file(&path, &i8c.config, i8c.tokenizer.as_ref(), &tensors).unwrap();
        let file = BerthFile::open(&path).unwrap();
        let fast = FastModel::new(&file).unwrap();
        let mut ws = Workspace::default();
        let out = fast
            .forward(
                &Inputs {
                    batch: n,
                    seq: width,
                    input_ids: &ids,
                    attention_mask: Some(&mask),
                    token_type_ids: None,
                },
                &mut ws,
            )
            .unwrap();
        let got = out.sentence_embedding.unwrap().data;
        let cos: Vec<f64> = (0..n)
            .map(|i| {
                let (a, b) = (&got[i * dim..(i + 1) * dim], &want[i * dim..(i + 1) * dim]);
                let dot: f64 = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| f64::from(*x) * f64::from(*y))
                    .sum();
                let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
                dot / (na * nb)
            })
            .collect();
        let (imin, min) =
            cos.iter()
                .enumerate()
                .fold((0, 1.0f64), |a, (i, &c)| if c < a.1 { (i, c) } else { a });
        let mean = cos.iter().sum::<f64>() / n as f64;
        let mut sorted = cos.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{label:<42} min {min:.5} (#{imin}) 2nd {:.5} 3rd {:.5} mean {mean:.5}",
            sorted[1], sorted[2]
        );
    }
}

//! Where MiniLM's int8 error comes from: converts all-MiniLM-L6-v2 at int8 with and without
//! smoothing and runs it with activations quantised per row and per group of 256 to 32 (the
//! sizes for the hidden-state layers / the down projection); then (smoothed, default groups) with chosen linear layers kept at f32 (one layer at a time, one
//! kind of projection at a time); for each it prints the min, second and third smallest and mean cosine of the 48 reference sentences'
//! embeddings (fast path, this process's kernels) to sentence-transformers'. Needs the cached
//! checkpoint (scripts/fetch-minilm.sh).
//!
//!     cargo run --release -p berth-tools --example int8_study

#[path = "../tests/support/mod.rs"]
mod support;

use berth::fast::{ActGrouping, FastModel, Workspace};
use berth::format::BerthFile;
use berth::reference::Inputs;
use berth_tools::bench::act_groups_name;
use berth_tools::convert::{convert_dir, Options, OutDtype};
use support::{cosine, read, reference};

/// Which tensors of the int8 file to replace by their f32 version.
type Keep = Box<dyn Fn(&str) -> bool>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = support::minilm_dir();
    let f32c = convert_dir(&dir, &Options::new(OutDtype::F32))?;
    let i8c = convert_dir(&dir, &Options::new(OutDtype::Int8))?;
    let tokens = read(&reference().join("minilm/tokens.safetensors"));
    let emb = read(&reference().join("minilm/embeddings.safetensors"));
    let ids = &tokens["input_ids"];
    let want = &emb["embeddings"].f32;
    let (n, width, dim) = (ids.shape[0], ids.shape[1], emb["embeddings"].shape[1]);
    let lengths = &tokens["lengths"].i64;
    let mask: Vec<i64> = (0..n * width)
        .map(|i| i64::from((i % width) < lengths[i / width] as usize))
        .collect();
    let ids = &ids.i64;

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
    let tmp = tempfile::tempdir()?;
    let inputs = Inputs {
        batch: n,
        seq: width,
        input_ids: ids,
        attention_mask: Some(&mask),
        token_type_ids: None,
    };
    // The cosines of one file's embeddings at one activation grouping, summarised.
    let measure = |path: &std::path::Path,
                   grouping: ActGrouping|
     -> Result<String, Box<dyn std::error::Error>> {
        let file = BerthFile::open(path)?;
        let mut fast = FastModel::new(&file)?;
        fast.set_act_grouping(grouping)?;
        let mut ws = Workspace::default();
        let out = fast.forward(&inputs, &mut ws)?;
        let got = out
            .sentence_embedding
            .ok_or("the file has no sentence-transformers pooling")?
            .data;
        let cos: Vec<f64> = (0..n)
            .map(|i| cosine(&got[i * dim..(i + 1) * dim], &want[i * dim..(i + 1) * dim]))
            .collect();
        let (imin, min) =
            cos.iter()
                .enumerate()
                .fold((0, 1.0f64), |a, (i, &c)| if c < a.1 { (i, c) } else { a });
        let mean = cos.iter().sum::<f64>() / n as f64;
        let mut sorted = cos.clone();
        sorted.sort_by(f64::total_cmp);
        Ok(format!(
            "min {min:.5} (#{imin}) 2nd {:.5} 3rd {:.5} mean {mean:.5}",
            sorted[1], sorted[2]
        ))
    };
    // The activation groupings, with and without the converter's smoothing.
    let path = tmp.path().join("g.berth");
    for smoothing in [false, true] {
        let mut opts = Options::new(OutDtype::Int8);
        opts.smoothing = smoothing;
        let c = convert_dir(&dir, &opts)?;
        berth::format::write_file(&path, &c.config, c.tokenizer.as_ref(), &c.tensors)?;
        let sizes = [None, Some(256), Some(128), Some(64), Some(32)];
        let pairs = sizes.iter().map(|&g| (g, g)).chain([
            (Some(128), Some(64)),
            (Some(128), Some(32)),
            (Some(64), Some(32)),
            (Some(256), Some(64)),
            (None, Some(64)),
            (None, Some(32)),
        ]);
        for (hidden, intermediate) in pairs {
            let grouping = ActGrouping {
                hidden,
                intermediate,
            };
            let label = format!(
                "int8, smoothing {smoothing}, groups {}",
                act_groups_name(grouping)
            );
            println!("{label:<42} {}", measure(&path, grouping)?);
        }
    }
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
        berth::format::write_file(&path, &i8c.config, i8c.tokenizer.as_ref(), &tensors)?;
        println!(
            "{label:<42} {}",
            measure(&path, berth::fast::DEFAULT_ACT_GROUPING)?
        );
    }
    Ok(())
}

//! The fast forward pass on all-MiniLM-L6-v2, on 1 and 2 threads: workload M1 of issue 5 (one
//! sequence of 128 tokens) at f32, f16 and int8, and M2's shape (32 sentences of 10 to 128 real
//! tokens in one padded batch, run padding-free). Reported in elements/s where one element is one
//! floating-point operation of the real tokens' work (so throughput reads as GFLOP/s).
//! `berth bench` (issue 5) will run these with the peers side by side.
//!
//!     cargo bench -p berth-benches --bench forward

use std::time::Duration;

use berth::fast::{FastModel, Workspace};
use berth::format::BerthFile;
use berth::reference::Inputs;
use berth_benches::minilm_berth;
use berth_tools::convert::OutDtype;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// FLOPs of a BERT encoder over sequences of the given lengths: the GEMMs (4 H^2 + 2 H I per
/// token, twice for multiply and add) and attention (2 L^2 H per sequence, twice).
fn flops(lengths: &[usize], layers: usize, h: usize, inter: usize) -> u64 {
    let per_layer: usize = lengths
        .iter()
        .map(|&l| 2 * l * (4 * h * h + 2 * h * inter) + 4 * l * l * h)
        .sum();
    (per_layer * layers) as u64
}

fn forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    // M2: 32 lengths spread over 10..=128 (deterministic).
    let m2: Vec<usize> = (0..32).map(|i| 10 + (i * 37) % 119).collect();
    let kernels = berth_kernels::kernels().expect("a path this CPU runs");
    for (dtype, threads) in [OutDtype::F32, OutDtype::F16, OutDtype::Int8]
        .into_iter()
        .flat_map(|d| [(d, 1), (d, 2)])
    {
        let path = minilm_berth(dtype);
        let file = BerthFile::open(&path).expect("valid file");
        let model = FastModel::with_kernels(&file, kernels, threads).expect("model");
        let cfg = model.config().clone();
        let (layers, h, inter) = (cfg.num_layers, cfg.hidden_size, cfg.intermediate_size);
        let mut ws = Workspace::default();

        let ids: Vec<i64> = (0..128).map(|i| 1000 + (i * 131) % 20000).collect();
        g.throughput(Throughput::Elements(flops(&[128], layers, h, inter)));
        g.bench_function(
            format!("M1 minilm {} 1x128 {threads}t", dtype.name()),
            |b| {
                b.iter(|| {
                    model
                        .forward(
                            &Inputs {
                                batch: 1,
                                seq: 128,
                                input_ids: &ids,
                                attention_mask: None,
                                token_type_ids: None,
                            },
                            &mut ws,
                        )
                        .expect("valid inputs")
                })
            },
        );

        let width = 128;
        let ids: Vec<i64> = (0..32 * width)
            .map(|i| 1000 + (i as i64 * 7) % 20000)
            .collect();
        let mask: Vec<i64> = (0..32 * width)
            .map(|i| i64::from(i % width < m2[i / width]))
            .collect();
        g.throughput(Throughput::Elements(flops(&m2, layers, h, inter)));
        g.bench_function(
            format!("M2 minilm {} 32 mixed {threads}t", dtype.name()),
            |b| {
                b.iter(|| {
                    model
                        .forward(
                            &Inputs {
                                batch: 32,
                                seq: width,
                                input_ids: &ids,
                                attention_mask: Some(&mask),
                                token_type_ids: None,
                            },
                            &mut ws,
                        )
                        .expect("valid inputs")
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);

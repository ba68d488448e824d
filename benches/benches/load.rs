//! Loading a `.berth` file: `BerthFile::open` maps the file and validates the header (and
//! the int8 scales) without touching weight pages; `verify` reads every byte.
//! The file is in the page cache (it was just written), as it is for a warm start.

use berth::format::BerthFile;
use berth_benches::minilm_berth;
use berth_tools::convert::OutDtype;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn load(c: &mut Criterion) {
    let files: Vec<_> = [OutDtype::F32, OutDtype::Int8]
        .into_iter()
        .map(|d| (d, minilm_berth(d)))
        .collect();
    let mut g = c.benchmark_group("open");
    for (dtype, path) in &files {
        g.bench_function(format!("minilm {}", dtype.name()), |b| {
            b.iter(|| BerthFile::open(path).expect("valid file"))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("verify");
    for (dtype, path) in &files {
        let file = BerthFile::open(path).expect("valid file");
        g.throughput(Throughput::Bytes(file.len() as u64));
        g.bench_function(format!("minilm {}", dtype.name()), |b| {
            b.iter(|| file.verify().expect("intact"))
        });
    }
    g.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);

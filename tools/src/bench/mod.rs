//! `berth bench`: the fast forward pass timed on issue 5's workloads, each (workload, dtype,
//! thread count) in a fresh child process so that its cold start and peak RSS are its own.
//!
//! A record's time is the forward pass on already tokenised inputs (`FastModel::forward_into`
//! with reused buffers, pooling included; tokenisation is not timed, as for the peers in
//! `benches/peers.py`); its FLOPs count the real tokens' encoder work.

pub mod models;

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth::config::ModelConfig;
use berth::fast::{ActGrouping, FastModel, Workspace};
use berth::format::{BerthFile, DType};
use berth::reference::{Inputs, Outputs};
use berth::tokenizer::{EncodeOptions, Tokenizer};
use serde_json::{json, Value};

use crate::convert::OutDtype;

/// The text the workloads' sequences are cut from: sentences of the tokenizer fixture corpus
/// (Python's documentation), one per line.
const TEXT: &str = crate::CORPUS;

/// A benchmark workload of issue 5: which default model, and the real lengths of its sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// all-MiniLM-L6-v2, 1 x 128 tokens.
    M1,
    /// all-MiniLM-L6-v2, 32 sequences of 10..=128 real tokens (padded to 128: 48% padding).
    M2,
    /// BERT-base shapes with random weights, 1 x 128.
    B1,
    /// BERT-base, 1 x 512.
    B2,
    /// BERT-base, 8 x 128.
    B3,
}

/// Which model a workload runs when `--model` is not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultModel {
    MiniLm,
    BertBase,
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::M1,
        Workload::M2,
        Workload::B1,
        Workload::B2,
        Workload::B3,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::M1 => "M1",
            Workload::M2 => "M2",
            Workload::B1 => "B1",
            Workload::B2 => "B2",
            Workload::B3 => "B3",
        }
    }

    pub fn parse(s: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name().eq_ignore_ascii_case(s))
    }

    pub fn default_model(self) -> DefaultModel {
        match self {
            Workload::M1 | Workload::M2 => DefaultModel::MiniLm,
            _ => DefaultModel::BertBase,
        }
    }

    /// Each sequence's length in tokens, `[CLS]` and `[SEP]` included.
    pub fn lengths(self) -> Vec<usize> {
        match self {
            Workload::M1 | Workload::B1 => vec![128],
            // 32 lengths spread over 10..=128, the same as the forward bench's.
            Workload::M2 => (0..32).map(|i| 10 + (i * 37) % 119).collect(),
            Workload::B2 => vec![512],
            Workload::B3 => vec![128; 8],
        }
    }

    /// The padded width of its batch: 128 for M2 (as the peers run it), else the longest.
    pub fn width(self) -> usize {
        match self {
            Workload::M2 => 128,
            w => w.lengths().into_iter().max().unwrap_or(0),
        }
    }
}

/// A workload's batch: token ids padded to the longest sequence, and the attention mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub batch: usize,
    pub seq: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    /// Real tokens in each sequence.
    pub lengths: Vec<usize>,
}

impl Batch {
    pub fn inputs(&self) -> Inputs<'_> {
        Inputs {
            batch: self.batch,
            seq: self.seq,
            input_ids: &self.input_ids,
            attention_mask: Some(&self.attention_mask),
            token_type_ids: None,
        }
    }

    /// Each sequence's real ids (what the peers script feeds the peers).
    pub fn sequences(&self) -> Vec<&[i64]> {
        self.lengths
            .iter()
            .enumerate()
            .map(|(b, &l)| &self.input_ids[b * self.seq..b * self.seq + l])
            .collect()
    }
}

/// Why a workload cannot run on a model.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("workload {workload} needs {needed} positions; the model has {max}")]
    TooLong {
        workload: &'static str,
        needed: usize,
        max: usize,
    },
    #[error("the model's vocabulary ({0} ids) is too small for a benchmark text")]
    TinyVocab(usize),
}

/// The token stream the windows are cut from: the text tokenised without special tokens, or
/// with no tokenizer, ids spread over the vocabulary.
fn token_stream(
    tokenizer: Option<&Tokenizer>,
    vocab: usize,
) -> Result<(Vec<i64>, i64, i64), BenchError> {
    if let Some(tok) = tokenizer {
        let plain = EncodeOptions {
            add_special_tokens: false,
            max_length: Some(usize::MAX),
            ..EncodeOptions::default()
        };
        let mut stream = Vec::new();
        for line in TEXT.lines() {
            if let Ok(e) = tok.encode(line, &plain) {
                stream.extend(e.ids.iter().map(|&i| i64::from(i)));
            }
        }
        // [CLS] and [SEP]: what the tokenizer puts around an empty text.
        let ends = tok.encode("", &EncodeOptions::default()).ok();
        if let Some(&[cls, sep]) = ends.as_ref().map(|e| e.ids.as_slice()) {
            if stream.len() >= 1024 {
                return Ok((stream, i64::from(cls), i64::from(sep)));
            }
        }
    }
    if vocab < 200 {
        return Err(BenchError::TinyVocab(vocab));
    }
    let v = vocab as i64;
    let stream = (0..4096i64).map(|i| 103 + (i * 131) % (v - 103)).collect();
    Ok((stream, 101, 102))
}

/// The batch of `workload` for a model: sequence `i` is `[CLS]`, a window of the token stream
/// starting at a deterministic offset, `[SEP]`; padding is id 0 with mask 0.
pub fn batch(
    workload: Workload,
    config: &ModelConfig,
    tokenizer: Option<&Tokenizer>,
) -> Result<Batch, BenchError> {
    let lengths = workload.lengths();
    let seq = workload.width();
    if seq > config.max_position_embeddings {
        return Err(BenchError::TooLong {
            workload: workload.name(),
            needed: seq,
            max: config.max_position_embeddings,
        });
    }
    let (stream, cls, sep) = token_stream(tokenizer, config.vocab_size)?;
    let span = stream.len() - seq;
    let mut input_ids = vec![0i64; lengths.len() * seq];
    let mut attention_mask = vec![0i64; lengths.len() * seq];
    for (b, &len) in lengths.iter().enumerate() {
        let start = (b * 211) % span;
        let row = &mut input_ids[b * seq..(b + 1) * seq];
        row[0] = cls;
        row[1..len - 1].copy_from_slice(&stream[start..start + len - 2]);
        row[len - 1] = sep;
        attention_mask[b * seq..b * seq + len].fill(1);
    }
    Ok(Batch {
        batch: lengths.len(),
        seq,
        input_ids,
        attention_mask,
        lengths,
    })
}

/// FLOPs of a BERT encoder over sequences of the given lengths: the GEMMs (4 H^2 + 2 H I
/// multiply-adds per token) and attention (2 L^2 H per sequence), two operations per
/// multiply-add.
pub fn flops(lengths: &[usize], config: &ModelConfig) -> f64 {
    let (h, i) = (config.hidden_size as f64, config.intermediate_size as f64);
    let per_layer: f64 = lengths
        .iter()
        .map(|&l| {
            let l = l as f64;
            2.0 * l * (4.0 * h * h + 2.0 * h * i) + 4.0 * l * l * h
        })
        .sum();
    per_layer * config.num_layers as f64
}

/// Order statistics of a run's times, in ms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
}

impl Stats {
    /// `None` for no samples.
    pub fn of(samples: &[f64]) -> Option<Stats> {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n == 0 {
            return None;
        }
        // Linear interpolation between closest ranks (numpy's default).
        let q = |p: f64| {
            let x = p * (n - 1) as f64;
            let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
            s[lo] + (s[hi] - s[lo]) * (x - lo as f64)
        };
        Some(Stats {
            median: q(0.5),
            p10: q(0.1),
            p90: q(0.9),
            min: s[0],
        })
    }
}

/// How long a child warms up and measures.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// At least this many timed runs...
    pub runs: usize,
    /// ...and more until this much time has passed.
    pub min_time: Duration,
    /// Untimed runs before, at least 2, and until this much time has passed.
    pub warm_up: Duration,
}

/// An int8 activation grouping from `HIDDEN/INTERMEDIATE` (each a group size or `row`) or
/// `row` (both per row), as `berth bench --act-groups` takes it; sizes are checked when a model
/// takes them ([`FastModel::set_act_grouping`]).
pub fn parse_act_groups(spec: &str) -> Result<ActGrouping, String> {
    let bad =
        || format!("--act-groups {spec:?}: expected HIDDEN/INTERMEDIATE, each a group size or row");
    let size = |s: &str| match s.trim() {
        "row" => Ok(None),
        n => n.parse::<usize>().map(Some).map_err(|_| bad()),
    };
    match spec.split_once('/') {
        Some((h, i)) => Ok(ActGrouping {
            hidden: size(h)?,
            intermediate: size(i)?,
        }),
        None if spec.trim() == "row" => Ok(ActGrouping::PER_ROW),
        None => Err(bad()),
    }
}

/// [`parse_act_groups`]'s form of a grouping (`128/64`, `row/row`).
pub fn act_groups_name(g: ActGrouping) -> String {
    let one = |s: Option<usize>| s.map_or("row".to_owned(), |n| n.to_string());
    format!("{}/{}", one(g.hidden), one(g.intermediate))
}

/// What the child prints after its first result, so that the parent can time the cold start.
const FIRST: &str = "berth-bench-first-result";

/// The child: loads `model`, runs `workload` once (the cold start ends there), warms up, times
/// the runs, and prints one JSON line with the times and the process's peak RSS.
pub fn child(
    model: &Path,
    workload: Workload,
    threads: usize,
    bf16: bool,
    bf16_attention: bool,
    act_groups: Option<ActGrouping>,
    timing: Timing,
) -> Result<(), Box<dyn std::error::Error>> {
    let file = BerthFile::open(model)?;
    let tokenizer = Tokenizer::from_file(&file);
    let mut fast = FastModel::with_threads(&file, threads)?;
    if bf16 {
        fast.use_bf16();
    }
    if bf16_attention {
        fast.use_bf16_attention();
    }
    if let Some(g) = act_groups {
        fast.set_act_grouping(g)?;
    }
    let b = batch(workload, fast.config(), tokenizer.as_ref())?;
    let mut ws = Workspace::default();
    let mut outputs = Outputs::default();
    fast.forward_into(&b.inputs(), &mut ws, &mut outputs)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{FIRST}")?;
    out.flush()?;
    let start = Instant::now();
    let mut warm = 0;
    while warm < 2 || start.elapsed() < timing.warm_up {
        fast.forward_into(&b.inputs(), &mut ws, &mut outputs)?;
        warm += 1;
    }
    let mut times = Vec::with_capacity(timing.runs);
    let start = Instant::now();
    while times.len() < timing.runs || start.elapsed() < timing.min_time {
        let t = Instant::now();
        fast.forward_into(&b.inputs(), &mut ws, &mut outputs)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(&outputs);
    }
    let record = json!({
        "times_ms": times,
        "peak_rss_mb": peak_rss_mb(),
        "isa": fast.kernels().isa.name(),
        "int8_kernel": fast.kernels().int8,
        "bf16_kernel": fast.kernels().bf16,
        "attention": if fast.attention_is_bf16() { "bf16" } else { "f32" },
        "act_groups": act_groups_name(fast.act_grouping()),
        "real_tokens": b.lengths.iter().sum::<usize>(),
        "padded_tokens": b.batch * b.seq,
        "gflop": flops(&b.lengths, fast.config()) / 1e9,
        "weight_mb": fast.weight_bytes() as f64 / 1e6,
    });
    writeln!(out, "{record}")?;
    Ok(())
}

/// This process's peak resident set (`VmHWM`), on Linux.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// One (workload, model, thread count) to run in a child.
#[derive(Clone, Debug)]
pub struct Job {
    pub workload: Workload,
    /// The model's label in the report (`minilm`, `bert-base`, or the file's name).
    pub model_name: String,
    pub model: PathBuf,
    pub dtype: &'static str,
    /// Run the (float) file's linear layers in bf16 (`FastModel::use_bf16`).
    pub bf16: bool,
    /// Take attention's products in bf16 (`FastModel::use_bf16_attention`).
    pub bf16_attention: bool,
    /// The int8 activation grouping, if not the default (`FastModel::set_act_grouping`).
    pub act_groups: Option<ActGrouping>,
    pub threads: usize,
}

/// What a record runs: a file converted at a dtype, or (with `--model`) a float file computed in
/// bf16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchDtype {
    File(OutDtype),
    Bf16,
}

impl BenchDtype {
    /// The dtype of the file it runs.
    fn file(self) -> OutDtype {
        match self {
            BenchDtype::File(d) => d,
            BenchDtype::Bf16 => OutDtype::F32,
        }
    }
}

/// The arithmetic peak of one core for a dtype's kernels (GFLOP/s, or GOP/s for int8), measured
/// with register-only loops; `None` where berth has no such loop (NEON).
pub fn peak_per_core(dtype: &str) -> Option<f64> {
    use berth_kernels::{peak, Isa};
    let k = berth_kernels::kernels().ok()?;
    let f = |run: fn(u64) -> Option<u64>| {
        run(1)?;
        let mut best = 0.0f64;
        for _ in 0..5 {
            let t = Instant::now();
            let ops = run(200_000)?;
            best = best.max(ops as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        Some(best)
    };
    match (k.isa, dtype) {
        (Isa::Amx, "bf16") => f(peak::amx_bf16),
        (Isa::Amx, "int8") => f(peak::amx_i8),
        (Isa::Amx, _) => f(peak::fma_f32_avx512),
        (Isa::Avx512, "bf16") if k.bf16 == "avx512-bf16" => f(peak::dpbf16_avx512),
        (Isa::Avx512, "int8") if k.int8.contains("vnni") => f(peak::vnni_i8_avx512),
        (Isa::Avx2, "int8") if k.int8.contains("vnni") => f(peak::vnni_i8_avx),
        (_, "int8") => None,
        (Isa::Avx512, _) => f(peak::fma_f32_avx512),
        (Isa::Avx2, _) => f(peak::fma_f32_avx2),
        _ => None,
    }
}

/// The rate at which `threads` threads read memory that no cache holds, in GB/s: the best of 3
/// passes in which each thread sums its share of a 256 MiB buffer (written first, so that every
/// page is mapped). What a forward pass bounded by its weights' bandwidth would reach.
pub fn read_bandwidth_gbps(threads: usize) -> f64 {
    const LEN: usize = 32 << 20;
    let buf: Vec<u64> = (0..LEN as u64).collect();
    let share = LEN.div_ceil(threads.max(1));
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let sum = std::thread::scope(|s| {
            let parts: Vec<_> = buf
                .chunks(share)
                .map(|part| s.spawn(move || part.iter().fold(0u64, |a, &x| a.wrapping_add(x))))
                .collect();
            parts
                .into_iter()
                .map(|p| p.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        });
        std::hint::black_box(sum);
        best = best.max((8 * LEN) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// Runs `job` in a child process of this executable (`berth bench-child`) and returns its
/// record; `peak` is one core's arithmetic peak for its kernels and `read_gbps` the memory read
/// bandwidth of its thread count, which the record's rates are set against.
pub fn run_job(
    job: &Job,
    timing: Timing,
    peak: Option<f64>,
    read_gbps: Option<f64>,
) -> Result<Value, String> {
    let exe = std::env::current_exe().map_err(|e| format!("finding this executable: {e}"))?;
    let spawned = Instant::now();
    let mut child = Command::new(exe)
        .arg("bench-child")
        .arg(&job.model)
        .args(["--workload", job.workload.name()])
        .args(["--threads", &job.threads.to_string()])
        .args(job.bf16.then_some("--bf16"))
        .args(job.bf16_attention.then_some("--bf16-attention"))
        .args(
            job.act_groups
                .map(|g| format!("--act-groups={}", act_groups_name(g))),
        )
        .args(["--runs", &timing.runs.to_string()])
        .args(["--min-time-ms", &timing.min_time.as_millis().to_string()])
        .args(["--warm-up-ms", &timing.warm_up.as_millis().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the benchmark process: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut cold_ms = None;
    let mut record = None;
    for line in lines.by_ref() {
        let line = line.map_err(|e| format!("reading the benchmark process: {e}"))?;
        if line == FIRST {
            cold_ms = Some(spawned.elapsed().as_secs_f64() * 1e3);
        } else if let Ok(v) = serde_json::from_str::<Value>(&line) {
            record = Some(v);
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the benchmark process: {e}"))?;
    let what = format!(
        "{} {} {} {}t",
        job.workload.name(),
        job.model_name,
        job.dtype,
        job.threads
    );
    let (Some(cold_ms), Some(r)) = (cold_ms, record) else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        return Err(format!(
            "{what}: {}",
            err.strip_prefix("error: ").unwrap_or(err)
        ));
    };
    let times: Vec<f64> = r["times_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let stats = Stats::of(&times).ok_or_else(|| format!("{what}: no timed runs"))?;
    let gflop = r["gflop"].as_f64().unwrap_or(0.0);
    let gflops = gflop / (stats.median / 1e3);
    let peak_all = peak.map(|p| p * job.threads as f64);
    let file_mb = std::fs::metadata(&job.model)
        .map(|m| m.len() as f64 / (1 << 20) as f64)
        .ok();
    // The linear weights' bytes per pass over the time of a pass, against what memory gives.
    let weight_gbps = r["weight_mb"]
        .as_f64()
        .map(|mb| mb / 1e3 / (stats.median / 1e3));
    Ok(json!({
        "workload": job.workload.name(),
        "model": job.model_name,
        "dtype": job.dtype,
        "threads": job.threads,
        "isa": r["isa"],
        "int8_kernel": r["int8_kernel"],
        "bf16_kernel": r["bf16_kernel"],
        "attention": r["attention"],
        "act_groups": r["act_groups"],
        "batch": job.workload.lengths().len(),
        "real_tokens": r["real_tokens"],
        "padded_tokens": r["padded_tokens"],
        "runs": times.len(),
        "median_ms": stats.median,
        "p10_ms": stats.p10,
        "p90_ms": stats.p90,
        "min_ms": stats.min,
        "gflop": gflop,
        "gflops": gflops,
        "peak_gflops": peak_all,
        "peak_fraction": peak_all.map(|p| gflops / p),
        "weight_mb": r["weight_mb"],
        "weight_gbps": weight_gbps,
        "read_gbps": read_gbps,
        "bandwidth_fraction": weight_gbps.zip(read_gbps).map(|(w, m)| w / m),
        "cold_start_ms": cold_ms,
        "peak_rss_mb": r["peak_rss_mb"],
        "file_mb": file_mb,
    }))
}

/// What `berth bench` was asked to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// A file to run every workload on instead of the default models.
    pub model: Option<PathBuf>,
    pub workloads: Vec<Workload>,
    /// With `model`, the file runs at its own dtype, and also in bf16 if `Bf16` is listed
    /// (if it is an f32 or f16 file); without, `Bf16` is the bf16 file.
    pub dtypes: Vec<BenchDtype>,
    pub threads: Vec<usize>,
    pub timing: Timing,
    /// Every record takes attention's products in bf16 (bf16 records always do).
    pub bf16_attention: bool,
    /// Every record's int8 activation grouping, if not the default.
    pub act_groups: Option<ActGrouping>,
}

/// The linear weights' dtype of a file, by the name the converter uses.
fn file_dtype(file: &BerthFile) -> &'static str {
    match file
        .tensor("encoder.layer.0.attention.self.query.weight")
        .map(|t| t.info.dtype)
    {
        Some(DType::F16) => "f16",
        Some(DType::Bf16) => "bf16",
        Some(DType::I8) => "int8",
        _ => "f32",
    }
}

/// The (model name, dtype name, path) each workload runs, preparing the default models (and
/// converting them) on first use.
struct Models {
    explicit: Option<(String, &'static str, PathBuf)>,
    prepared: Vec<((DefaultModel, &'static str), PathBuf)>,
}

impl Models {
    fn new(model: Option<&Path>) -> Result<Models, Box<dyn std::error::Error>> {
        let explicit = match model {
            Some(path) => {
                let file = BerthFile::open(path)?;
                let name = path
                    .file_stem()
                    .map_or("model".into(), |s| s.to_string_lossy().into_owned());
                Some((name, file_dtype(&file), path.to_owned()))
            }
            None => None,
        };
        Ok(Models {
            explicit,
            prepared: Vec::new(),
        })
    }

    fn get(
        &mut self,
        which: DefaultModel,
        dtype: OutDtype,
    ) -> Result<(String, &'static str, PathBuf), Box<dyn std::error::Error>> {
        if let Some(e) = &self.explicit {
            return Ok(e.clone());
        }
        let name = match which {
            DefaultModel::MiniLm => "minilm",
            DefaultModel::BertBase => "bert-base",
        };
        let key = (which, dtype.name());
        if let Some((_, p)) = self.prepared.iter().find(|(k, _)| *k == key) {
            return Ok((name.into(), dtype.name(), p.clone()));
        }
        let checkpoint = match which {
            DefaultModel::MiniLm => crate::cache::fetched_minilm_dir()?,
            DefaultModel::BertBase => models::bert_base_checkpoint()?,
        };
        let path = models::converted(&checkpoint, name, dtype)?;
        self.prepared.push((key, path.clone()));
        Ok((name.into(), dtype.name(), path))
    }
}

/// Runs the plan, calling `each` with every record as it is measured, and returns them all.
pub fn run_plan(
    plan: &Plan,
    mut each: impl FnMut(&Value),
) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let mut models = Models::new(plan.model.as_deref())?;
    let dtypes: Vec<BenchDtype> = match plan.model {
        Some(_) => {
            let mut d = vec![BenchDtype::File(OutDtype::F32)];
            d.extend(plan.dtypes.iter().filter(|&&d| d == BenchDtype::Bf16));
            d
        }
        // The default models are converted to bf16 like any other dtype.
        None => plan
            .dtypes
            .iter()
            .map(|&d| match d {
                BenchDtype::Bf16 => BenchDtype::File(OutDtype::Bf16),
                d => d,
            })
            .collect(),
    };
    let mut peaks: Vec<(&'static str, Option<f64>)> = Vec::new();
    let mut bandwidths: Vec<(usize, f64)> = Vec::new();
    let mut records = Vec::new();
    for &workload in &plan.workloads {
        for &dtype in &dtypes {
            let (model_name, file_dtype, model) =
                models.get(workload.default_model(), dtype.file())?;
            let bf16 = dtype == BenchDtype::Bf16;
            if bf16 && matches!(file_dtype, "int8" | "bf16") {
                // An int8 file has no float layers to run in bf16; a bf16 file already runs so.
                continue;
            }
            let dtype_name = if bf16 { "bf16" } else { file_dtype };
            let peak = match peaks.iter().find(|(d, _)| *d == dtype_name) {
                Some(&(_, p)) => p,
                None => {
                    let p = peak_per_core(dtype_name);
                    peaks.push((dtype_name, p));
                    p
                }
            };
            for &threads in &plan.threads {
                let job = Job {
                    workload,
                    model_name: model_name.clone(),
                    model: model.clone(),
                    dtype: dtype_name,
                    bf16,
                    bf16_attention: plan.bf16_attention,
                    act_groups: plan.act_groups,
                    threads,
                };
                let read = match bandwidths.iter().find(|(t, _)| *t == threads) {
                    Some(&(_, b)) => b,
                    None => {
                        let b = read_bandwidth_gbps(threads);
                        bandwidths.push((threads, b));
                        b
                    }
                };
                let r = run_job(&job, plan.timing, peak, Some(read))?;
                each(&r);
                records.push(r);
            }
        }
    }
    Ok(records)
}

/// The workloads' inputs for the peers script: per workload, the checkpoint directory the peers
/// load (absent with `--model`), the padded width and each sequence's real ids.
pub fn export_inputs(
    model: Option<&Path>,
    workloads: &[Workload],
) -> Result<Value, Box<dyn std::error::Error>> {
    let mut models = Models::new(model)?;
    let mut out = Vec::new();
    for &w in workloads {
        let (name, _, path) = models.get(w.default_model(), OutDtype::F32)?;
        let file = BerthFile::open(&path)?;
        let b = batch(w, file.config(), Tokenizer::from_file(&file).as_ref())?;
        let checkpoint = match (model, w.default_model()) {
            (Some(_), _) => None,
            (None, DefaultModel::MiniLm) => Some(crate::cache::fetched_minilm_dir()?),
            (None, DefaultModel::BertBase) => Some(models::bert_base_checkpoint()?),
        };
        out.push(json!({
            "workload": w.name(),
            "model": name,
            "checkpoint": checkpoint,
            "seq": b.seq,
            "sequences": b.sequences(),
            "gflop": flops(&b.lengths, file.config()) / 1e9,
        }));
    }
    Ok(json!({ "workloads": out }))
}

/// The records as a table for a terminal.
pub fn table(records: &[Value]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<4} {:<10} {:<5} {:<12} {:<4} {:>3} {:>10} {:>10} {:>10} {:>10} {:>8} {:>6} {:>5} {:>9} {:>8}",
        "load",
        "model",
        "dtype",
        "kernel",
        "att",
        "thr",
        "median ms",
        "p10 ms",
        "p90 ms",
        "min ms",
        "GFLOP/s",
        "%peak",
        "%bw",
        "cold ms",
        "RSS MB"
    );
    let num = |v: &Value, prec: usize| match v.as_f64() {
        Some(x) => format!("{x:.prec$}"),
        None => "-".to_owned(),
    };
    for r in records {
        let percent = |v: &Value| match v.as_f64() {
            Some(f) => format!("{:.0}%", f * 100.0),
            None => "-".to_owned(),
        };
        // The GEMM instructions of the record: the int8 or bf16 kernel, else the path's FMA.
        let kernel = match r["dtype"].as_str() {
            Some("int8") => &r["int8_kernel"],
            Some("bf16") => &r["bf16_kernel"],
            _ => &r["isa"],
        };
        let _ = writeln!(
            s,
            "{:<4} {:<10} {:<5} {:<12} {:<4} {:>3} {:>10} {:>10} {:>10} {:>10} {:>8} {:>6} {:>5} {:>9} {:>8}",
            r["workload"].as_str().unwrap_or("?"),
            r["model"].as_str().unwrap_or("?"),
            r["dtype"].as_str().unwrap_or("?"),
            kernel.as_str().unwrap_or("?"),
            r["attention"].as_str().unwrap_or("?"),
            r["threads"],
            num(&r["median_ms"], 2),
            num(&r["p10_ms"], 2),
            num(&r["p90_ms"], 2),
            num(&r["min_ms"], 2),
            num(&r["gflops"], 1),
            percent(&r["peak_fraction"]),
            percent(&r["bandwidth_fraction"]),
            num(&r["cold_start_ms"], 1),
            num(&r["peak_rss_mb"], 1),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn act_groups_parse_and_print() {
        let g = parse_act_groups("128/64").unwrap();
        assert_eq!((g.hidden, g.intermediate), (Some(128), Some(64)));
        assert_eq!(act_groups_name(g), "128/64");
        assert_eq!(parse_act_groups("row").unwrap(), ActGrouping::PER_ROW);
        let g = parse_act_groups("row/32").unwrap();
        assert_eq!((g.hidden, g.intermediate), (None, Some(32)));
        assert_eq!(act_groups_name(g), "row/32");
        for bad in ["", "128", "a/64", "128/", "-4/8", "1/2/3"] {
            assert!(parse_act_groups(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stats_interpolate_like_numpy() {
        let s = Stats::of(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert_eq!(s.min, 1.0);
        // numpy.percentile([1,2,3,4,5], 10) == 1.4, 90 -> 4.6
        assert!((s.p10 - 1.4).abs() < 1e-12 && (s.p90 - 4.6).abs() < 1e-12);
        let even = Stats::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(even.median, 2.5);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn workloads_have_the_issues_shapes() {
        let m2 = Workload::M2.lengths();
        assert_eq!(m2.len(), 32);
        assert!(m2.iter().all(|&l| (10..=128).contains(&l)));
        assert_eq!(m2.iter().copied().max(), Some(126));
        let padding = 1.0 - m2.iter().sum::<usize>() as f64 / (32.0 * 128.0);
        assert!((0.45..0.5).contains(&padding), "{padding}");
        assert_eq!(Workload::B2.lengths(), vec![512]);
        assert_eq!(Workload::B3.lengths(), vec![128; 8]);
        for w in Workload::ALL {
            assert_eq!(Workload::parse(&w.name().to_lowercase()), Some(w));
        }
    }

    #[test]
    fn flops_match_the_published_counts() {
        // PEERS.md: M1 is 2.87 GFLOP, B1 22.35, B2 96.6.
        let minilm = ModelConfig {
            hidden_size: 384,
            intermediate_size: 1536,
            num_layers: 6,
            ..tiny_config()
        };
        let base = ModelConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            num_layers: 12,
            ..tiny_config()
        };
        let g = |l: &[usize], c: &ModelConfig| flops(l, c) / 1e9;
        assert!((g(&[128], &minilm) - 2.87).abs() < 0.01);
        assert!((g(&[128], &base) - 22.35).abs() < 0.01);
        assert!((g(&[512], &base) - 96.6).abs() < 0.05);
    }

    fn tiny_config() -> ModelConfig {
        ModelConfig {
            family: berth::config::Family::Bert,
            head: berth::config::Head::None,
            hidden_act: berth::config::Activation::Gelu,
            has_pooler: false,
            pooling: berth::config::Pooling::None,
            normalize: false,
            problem_type: berth::config::ProblemType::Unspecified,
            tied_decoder: false,
            vocab_size: 1000,
            hidden_size: 8,
            num_layers: 1,
            num_heads: 2,
            intermediate_size: 16,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            labels: Vec::new(),
        }
    }

    #[test]
    fn batches_are_windows_with_specials_and_padding() {
        let cfg = tiny_config();
        let b = batch(Workload::M2, &cfg, None).unwrap();
        assert_eq!((b.batch, b.seq), (32, 128));
        for (s, &len) in b.sequences().iter().zip(&b.lengths) {
            assert_eq!(s.len(), len);
            assert_eq!((s[0], s[len - 1]), (101, 102));
            assert!(s.iter().all(|&i| (0..1000).contains(&i)));
        }
        let masked: i64 = b.attention_mask.iter().sum();
        assert_eq!(masked as usize, b.lengths.iter().sum::<usize>());
        let short = ModelConfig {
            max_position_embeddings: 256,
            ..cfg.clone()
        };
        assert!(matches!(
            batch(Workload::B2, &short, None),
            Err(BenchError::TooLong { needed: 512, .. })
        ));
        let tiny = ModelConfig {
            vocab_size: 50,
            ..cfg
        };
        assert!(matches!(
            batch(Workload::M1, &tiny, None),
            Err(BenchError::TinyVocab(50))
        ));
    }
}

//! The `berth` command.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use berth::format::BerthFile;
use berth::tokenizer::{EncodeOptions, Tokenizer, Truncation};
use berth_tools::bench;
use berth_tools::convert::{self, OutDtype, Report};
use berth_tools::inspect;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A CPU inference engine for BERT-family text encoders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum DtypeArg {
    F32,
    F16,
    Bf16,
    Int8,
}

impl From<DtypeArg> for OutDtype {
    fn from(d: DtypeArg) -> OutDtype {
        match d {
            DtypeArg::F32 => OutDtype::F32,
            DtypeArg::F16 => OutDtype::F16,
            DtypeArg::Bf16 => OutDtype::Bf16,
            DtypeArg::Int8 => OutDtype::Int8,
        }
    }
}

/// `berth bench --dtype`: the file dtypes (with `--model`, bf16 also runs a float file's linear
/// layers in bf16).
#[derive(Clone, Copy, ValueEnum)]
enum BenchDtypeArg {
    F32,
    F16,
    Int8,
    Bf16,
}

#[derive(Clone, Copy, ValueEnum)]
enum TruncationArg {
    #[value(name = "longest_first", alias = "longest-first")]
    LongestFirst,
    #[value(name = "only_first", alias = "only-first")]
    OnlyFirst,
    #[value(name = "only_second", alias = "only-second")]
    OnlySecond,
}

/// The model and how it runs (every task command).
#[derive(clap::Args)]
struct ModelArgs {
    /// The .berth file.
    #[arg(value_name = "MODEL")]
    path: PathBuf,
    /// Threads [default: one per physical core].
    #[arg(long)]
    threads: Option<usize>,
    /// Run the linear layers in bf16 (f32 and f16 files; bf16 files always do): faster on CPUs
    /// with AVX-512 BF16 or AMX, at bfloat16's precision.
    #[arg(long)]
    bf16: bool,
    /// Take attention's products in bf16, leaving the linear layers as they are (bf16 runs
    /// always do): for int8 files on CPUs with AMX, where attention then runs on the tiles.
    #[arg(long)]
    bf16_attention: bool,
}

/// Input and output of the commands that take many texts.
#[derive(clap::Args)]
struct IoArgs {
    /// Each stdin line is JSON: a string (or with --pair an array of two).
    #[arg(long)]
    jsonl: bool,
    /// The most tokens a text keeps, [CLS] and [SEP] included [default: the model's].
    #[arg(long)]
    max_seq_len: Option<usize>,
    /// Texts per model call.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

impl IoArgs {
    fn source(&self, pair: bool) -> berth_tools::tasks::Source {
        berth_tools::tasks::Source {
            pair,
            jsonl: self.jsonl,
            batch: self.batch,
        }
    }
}

impl ModelArgs {
    /// The options these flags set (threads, bf16), with `max_seq_len` if given.
    fn options(&self, max_seq_len: Option<usize>) -> berth::ModelOptions {
        let mut options = berth::ModelOptions::default()
            .bf16(self.bf16)
            .bf16_attention(self.bf16_attention);
        if let Some(t) = self.threads {
            options = options.threads(t);
        }
        if let Some(n) = max_seq_len {
            options = options.max_seq_len(n);
        }
        options
    }

    fn load(&self, max_seq_len: Option<usize>) -> Result<berth::Model, berth::Error> {
        berth::Model::load_with(&self.path, self.options(max_seq_len))
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum PoolingArg {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
}

#[derive(Clone, Copy, ValueEnum)]
enum FunctionArg {
    Softmax,
    Sigmoid,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum AggregationArg {
    None,
    Simple,
    First,
    Average,
    Max,
}

impl From<AggregationArg> for berth::Aggregation {
    fn from(a: AggregationArg) -> berth::Aggregation {
        match a {
            AggregationArg::None => berth::Aggregation::None,
            AggregationArg::Simple => berth::Aggregation::Simple,
            AggregationArg::First => berth::Aggregation::First,
            AggregationArg::Average => berth::Aggregation::Average,
            AggregationArg::Max => berth::Aggregation::Max,
        }
    }
}

/// Runs a task over the inputs from the arguments or stdin, printing to stdout as it goes.
fn run_task(
    args: &[String],
    source: berth_tools::tasks::Source,
    mut f: impl FnMut(
        &[berth_tools::tasks::Item],
        &mut std::io::BufWriter<std::io::StdoutLock<'static>>,
    ) -> Result<(), berth_tools::tasks::TaskCliError>,
) -> Result<(), berth_tools::tasks::TaskCliError> {
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let stdin = std::io::stdin().lock();
    let result =
        berth_tools::tasks::for_each_batch(args, source, stdin, |items| f(items, &mut stdout))
            .and_then(|_| stdout.flush().map_err(Into::into));
    match result {
        Err(e) if e.is_broken_pipe() => Ok(()),
        r => r,
    }
}

#[derive(Subcommand)]
enum Command {
    /// Convert a Hugging Face BERT checkpoint directory into one .berth file.
    ///
    /// Reads config.json, model.safetensors, tokenizer.json or vocab.txt, and the
    /// sentence-transformers files (modules.json, 1_Pooling/config.json,
    /// sentence_bert_config.json) when present.
    ///
    /// Example: berth convert ./all-MiniLM-L6-v2 -o minilm.berth --dtype int8
    Convert {
        /// The checkpoint directory.
        dir: PathBuf,
        /// The .berth file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Element type of the linear weights: f32 keeps everything; f16 halves weights and
        /// embeddings; bf16 rounds linear weights to bfloat16 and runs them in bf16 (AMX or
        /// AVX-512 BF16 where the CPU has them; embeddings stay f32); int8 quantises linear
        /// weights per output channel, after smoothing the encoder's activation outliers into
        /// them (calibrated on built-in text).
        #[arg(long, value_enum, default_value = "f32")]
        dtype: DtypeArg,
        /// int8: quantise without the smoothing (less accurate; for comparison).
        #[arg(long)]
        no_smoothing: bool,
        /// Print only errors.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print a .berth file's config, tokenizer and tensor table.
    ///
    /// Example: berth inspect minilm.berth --verify
    Inspect {
        /// The .berth file.
        model: PathBuf,
        /// Also read every weight byte: data checksum, zero padding, finite weights.
        #[arg(long)]
        verify: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Tokenize text from stdin, one text per line, as the model's tokenizer does.
    ///
    /// Prints one JSON object per line: `ids`, `type_ids`, `offsets` (UTF-8 byte ranges into
    /// the input text, [0, 0] for [CLS] and [SEP]) and `tokens`. With --pair, a line holds two
    /// texts separated by a tab; with --jsonl, each line is a JSON string (with --pair, an
    /// array of two strings), so that any text, newlines included, can be given.
    ///
    /// Example: echo 'Hello world' | berth tokenize minilm.berth
    Tokenize {
        /// The .berth file.
        model: PathBuf,
        /// Two texts per line.
        #[arg(long)]
        pair: bool,
        /// Each line is JSON: a string, or with --pair an array of two strings.
        #[arg(long)]
        jsonl: bool,
        /// Maximum length in tokens, special tokens included [default: the model's].
        #[arg(long)]
        max_length: Option<usize>,
        /// Which sequence to cut when a text or pair is too long.
        #[arg(long, value_enum, default_value = "longest-first")]
        truncation: TruncationArg,
    },
    /// Sentence embeddings of texts, as sentence-transformers' encode computes them.
    ///
    /// Texts come from the arguments, or else from stdin, one per line (with --jsonl, each
    /// line a JSON string, so that any text can be given). Prints one JSON object per line and
    /// text, in order, with or without --json: `{"embedding": [...], "truncated": false}`;
    /// `truncated` says the text was cut to --max-seq-len tokens. With --npy, writes one
    /// float32 array instead.
    ///
    /// Example: berth embed minilm.berth "The cat sits on the mat." "A dog plays."
    ///
    /// Example: berth embed minilm.berth --npy corpus.npy --truncate-dim 128 < corpus.txt
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// Texts to embed [default: stdin, one per line].
        texts: Vec<String>,
        /// Pool this way instead of the way the model file says.
        #[arg(long, value_enum)]
        pooling: Option<PoolingArg>,
        /// L2-normalise the final vectors (after --truncate-dim), as sentence-transformers'
        /// normalize_embeddings [default: as the model file says].
        #[arg(long, conflicts_with = "no_normalize")]
        normalize: bool,
        /// Do not normalise, even where the model file says to.
        #[arg(long)]
        no_normalize: bool,
        /// Keep the first N values of each embedding (Matryoshka models).
        #[arg(long, value_name = "N")]
        truncate_dim: Option<usize>,
        /// Read texts longer than --max-seq-len whole, in windows sharing STRIDE tokens,
        /// averaged (instead of cutting them).
        #[arg(long, value_name = "STRIDE")]
        windows: Option<usize>,
        /// Write all embeddings to this file as one float32 .npy array (texts x dim) instead
        /// of JSON lines.
        #[arg(long, value_name = "FILE")]
        npy: Option<PathBuf>,
        #[command(flatten)]
        io: IoArgs,
    },
    /// Classify texts (or text pairs) with a sequence-classification model, as transformers'
    /// text-classification pipeline does.
    ///
    /// Texts come from the arguments (with --pair, two at a time), or else from stdin, one
    /// per line (with --pair, two separated by a tab; with --jsonl, a JSON string, or an array
    /// of two, a line). Prints each text's --top-k labels; with --json, one JSON array a line
    /// of `{"label": ..., "score": ...}`, best first.
    ///
    /// Example: berth classify sentiment.berth "I love it." "Not my thing." --top-k 2
    Classify {
        #[command(flatten)]
        model: ModelArgs,
        /// Texts to classify [default: stdin, one per line].
        texts: Vec<String>,
        /// Classify pairs (cross-encoders, NLI): `[CLS] a [SEP] b [SEP]`.
        #[arg(long)]
        pair: bool,
        /// How many labels to print per text, best first (a large number prints all).
        #[arg(long, default_value_t = 1)]
        top_k: usize,
        /// How logits become scores [default: as the model's config implies: sigmoid for
        /// multi-label or one-label models, none for regression, else softmax].
        #[arg(long, value_enum)]
        function_to_apply: Option<FunctionArg>,
        #[command(flatten)]
        io: IoArgs,
    },
    /// Tag the tokens of texts (named entities) with a token-classification model, as
    /// transformers' token-classification pipeline does.
    ///
    /// Texts come from the arguments, or else from stdin, one per line (--jsonl: a JSON string
    /// a line). Prints each text's entities (tokens tagged O are left out); with --json, one
    /// JSON array a line of `{"entity_group" (or, with --aggregation none, "entity" and
    /// "index"), "score", "word", "start", "end"}`, `start` and `end` byte offsets into the
    /// text.
    ///
    /// Example: berth ner bert-ner.berth "Ada Lovelace lived in London." --aggregation simple
    Ner {
        #[command(flatten)]
        model: ModelArgs,
        /// Texts to tag [default: stdin, one per line].
        texts: Vec<String>,
        /// How tokens merge into entities: none (one per token), simple (runs of one tag),
        /// first, average or max (whole words, labelled by their first token, mean scores,
        /// or most confident token).
        #[arg(long, value_enum, default_value = "none")]
        aggregation: AggregationArg,
        #[command(flatten)]
        io: IoArgs,
    },
    /// Answer a question from a context with an extractive question-answering model, as
    /// transformers' question-answering pipeline does (contexts of any length, read in
    /// overlapping windows).
    ///
    /// The context is --context, or else all of stdin. Prints the --top-k answers, best first:
    /// score, byte span and text; with --json, the pipeline's `{"score", "start", "end",
    /// "answer"}` (a list of them for --top-k above 1), `start` and `end` byte offsets into
    /// the context.
    ///
    /// Example: berth qa squad.berth --question "Who wrote it?" --context "Ada wrote it." --top-k 3
    Qa {
        #[command(flatten)]
        model: ModelArgs,
        /// The question.
        #[arg(long)]
        question: String,
        /// The context [default: stdin, all of it].
        #[arg(long)]
        context: Option<String>,
        /// How many answers, best first.
        #[arg(long, default_value_t = 1)]
        top_k: usize,
        /// Tokens each window of the context shares with the one before [default:
        /// min(max_seq_len / 2, 128)].
        #[arg(long)]
        doc_stride: Option<usize>,
        /// Tokens per window, question and special tokens included [default: min(the
        /// model's, 384)].
        #[arg(long)]
        max_seq_len: Option<usize>,
        /// The most tokens an answer spans.
        #[arg(long, default_value_t = 15)]
        max_answer_len: usize,
        /// Also offer the empty answer (no answer in the context).
        #[arg(long)]
        handle_impossible_answer: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Fill the [MASK] tokens of texts with a masked-LM model, as transformers' fill-mask
    /// pipeline does.
    ///
    /// Texts come from the arguments, or else from stdin, one per line (--jsonl: a JSON string
    /// a line). Prints the --top-k candidates of each mask: score, token and the filled text;
    /// with --json, one JSON line a text: a list of `{"score", "token", "token_str",
    /// "sequence"}` (a list of such lists when the text has several masks).
    ///
    /// Example: berth fill-mask bert.berth "Paris is the [MASK] of France." --top-k 3
    FillMask {
        #[command(flatten)]
        model: ModelArgs,
        /// Texts with [MASK] tokens [default: stdin, one per line].
        texts: Vec<String>,
        /// Candidates per mask.
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        #[command(flatten)]
        io: IoArgs,
    },
    /// Rank documents by relevance to a query: a cross-encoder scores each (query, document)
    /// pair; an embedding model scores the cosine similarity of their embeddings.
    ///
    /// Documents come from the arguments, or else from stdin, one per line (--jsonl: a JSON
    /// string a line). Prints the --top-k best: score, index and text; with --json, one JSON
    /// line each, `{"corpus_id", "score", "text"}` as sentence-transformers' rank.
    ///
    /// Example: berth rerank minilm.berth --query "a pet" "The cat sleeps." "Stocks fell."
    Rerank {
        #[command(flatten)]
        model: ModelArgs,
        /// The query.
        #[arg(long)]
        query: String,
        /// Documents [default: stdin, one per line].
        documents: Vec<String>,
        /// How many to print [default: all].
        #[arg(long)]
        top_k: Option<usize>,
        /// The most tokens a query-document pair (or a text) keeps [default: the model's].
        #[arg(long)]
        max_seq_len: Option<usize>,
        /// Each stdin line is a JSON string.
        #[arg(long)]
        jsonl: bool,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the reference forward pass on inputs from a safetensors file.
    ///
    /// Reads int64 (or int32) [batch, seq] tensors `input_ids`, `attention_mask` and optionally
    /// `token_type_ids` (each under `--prefix`), and writes f32 outputs under transformers'
    /// names, with the same prefix: last_hidden_state, pooler_output, logits, start_logits,
    /// end_logits, sentence_embedding.
    ///
    /// Example: berth run tiny.berth --inputs inputs.safetensors --output out.safetensors --prefix b0. --prefix b1.
    Run {
        /// The .berth file.
        model: PathBuf,
        /// The safetensors file with the inputs.
        #[arg(long)]
        inputs: PathBuf,
        /// The safetensors file to write.
        #[arg(long)]
        output: PathBuf,
        /// Key prefix of one batch of inputs; repeat for several batches.
        #[arg(long = "prefix", default_value = "")]
        prefixes: Vec<String>,
    },
    /// Time the fast forward pass on issue 5's workloads, each in a fresh process.
    ///
    /// Workloads: M1 (all-MiniLM-L6-v2, 1 x 128 tokens), M2 (MiniLM, 32 sequences of 10-128
    /// tokens, run padding-free), B1 (BERT-base shapes with random weights, 1 x 128), B2
    /// (BERT-base, 1 x 512), B3 (BERT-base, 8 x 128). Each runs at every dtype and thread count
    /// asked for: warm-up, then at least --runs timed runs of the encoder forward pass on
    /// tokenised text; prints median, p10, p90 and min, GFLOP/s of the real tokens and the
    /// fraction of this machine's measured peak, the cold start (process start to the first
    /// result) and the peak RSS. MiniLM comes from scripts/fetch-minilm.sh's cache; the random
    /// BERT-base is written once under the cache's bench/ folder.
    ///
    /// Example: berth bench --workload M1,B1 --threads 1 --json
    Bench {
        /// Run every workload on this file instead of the default models (its own dtype).
        #[arg(long)]
        model: Option<PathBuf>,
        /// Workloads, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "M1,M2,B1,B2,B3")]
        workload: Vec<String>,
        /// Dtypes the default models are converted to, comma-separated [default:
        /// f32,f16,bf16,int8]. With --model the file runs as it is, and also with its linear
        /// layers in bf16 if bf16 is listed and it is an f32 or f16 file.
        #[arg(long, value_enum, value_delimiter = ',')]
        dtype: Vec<BenchDtypeArg>,
        /// Thread counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        threads: Vec<usize>,
        /// Timed runs per record (at least; more until --min-time has passed).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Seconds each record measures for, at least.
        #[arg(long, default_value_t = 1.0)]
        min_time: f64,
        /// Print a JSON array of records instead of a table.
        #[arg(long)]
        json: bool,
        /// Write the workloads' token ids and checkpoint folders as JSON to this file (what
        /// benches/peers.py feeds the peers) instead of timing.
        #[arg(long)]
        export_inputs: Option<PathBuf>,
        /// Every record takes attention's products in bf16 (the `att` column; bf16 records
        /// always do).
        #[arg(long)]
        bf16_attention: bool,
        /// int8 activation groups, HIDDEN/INTERMEDIATE (each a group size or `row`), or `row`
        /// [default: the model's, 128/64].
        #[arg(long, value_parser = bench::parse_act_groups)]
        act_groups: Option<berth::fast::ActGrouping>,
    },
    /// The process `berth bench` times (not for direct use).
    #[command(hide = true)]
    BenchChild {
        model: PathBuf,
        #[arg(long)]
        workload: String,
        #[arg(long)]
        threads: usize,
        #[arg(long)]
        runs: usize,
        #[arg(long)]
        min_time_ms: u64,
        #[arg(long)]
        warm_up_ms: u64,
        #[arg(long)]
        bf16: bool,
        #[arg(long)]
        bf16_attention: bool,
        #[arg(long, value_parser = bench::parse_act_groups)]
        act_groups: Option<berth::fast::ActGrouping>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(text) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                // A reader that stops early (`| head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: writing to stdout: {e}");
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => {
            // One line: every error's message already names its cause.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command and returns what it prints on stdout.
fn run(command: Command) -> Result<String, Box<dyn std::error::Error>> {
    let mut out = String::new();
    match command {
        Command::Convert {
            dir,
            output,
            dtype,
            no_smoothing,
            quiet,
        } => {
            let opts = convert::Options {
                dtype: dtype.into(),
                progress: !quiet && std::io::stderr().is_terminal(),
                smoothing: !no_smoothing,
            };
            let start = Instant::now();
            let report = convert::convert_to_file(&dir, &output, &opts)?;
            if !quiet {
                print_report(
                    &mut out,
                    &dir,
                    &output,
                    &report,
                    start.elapsed().as_secs_f64(),
                )?;
            }
            Ok(out)
        }
        Command::Inspect {
            model,
            verify,
            json,
        } => {
            let start = Instant::now();
            let file = BerthFile::open(&model)?;
            let load_ms = start.elapsed().as_secs_f64() * 1e3;
            let verified = if verify {
                let start = Instant::now();
                file.verify()?;
                Some(start.elapsed().as_secs_f64() * 1e3)
            } else {
                None
            };
            if json {
                let v = inspect::json(&file, verified.map(|_| true));
                writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
            } else {
                out.push_str(&inspect::text(&file));
                writeln!(out, "loaded      in {load_ms:.2} ms")?;
                if let Some(ms) = verified {
                    writeln!(
                        out,
                        "verified    ok: data checksum, padding, finite weights, int8 range and panel sums, {} in {ms:.1} ms",
                        inspect::human_bytes(file.header().data_len)
                    )?;
                }
            }
            Ok(out)
        }
        Command::Tokenize {
            model,
            pair,
            jsonl,
            max_length,
            truncation,
        } => {
            let file = BerthFile::open(&model)?;
            let tok = Tokenizer::from_file(&file)
                .ok_or_else(|| format!("{}: the file carries no tokenizer", model.display()))?;
            let opts = EncodeOptions {
                max_length,
                truncation: match truncation {
                    TruncationArg::LongestFirst => Truncation::LongestFirst,
                    TruncationArg::OnlyFirst => Truncation::OnlyFirst,
                    TruncationArg::OnlySecond => Truncation::OnlySecond,
                },
                add_special_tokens: true,
            };
            let stdout = std::io::stdout().lock();
            let format = berth_tools::tokenize::InputFormat { pair, jsonl };
            let stdin = std::io::stdin().lock();
            match berth_tools::tokenize::run(
                &tok,
                &opts,
                format,
                stdin,
                std::io::BufWriter::new(stdout),
            ) {
                Err(berth_tools::tokenize::TokenizeCliError::Io(e))
                    if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                r => {
                    r?;
                }
            }
            Ok(out)
        }
        Command::Embed {
            model,
            texts,
            pooling,
            normalize,
            no_normalize,
            truncate_dim,
            windows,
            npy,
            io,
        } => {
            let mut options = model.options(io.max_seq_len);
            if let Some(p) = pooling {
                options = options.pooling(match p {
                    PoolingArg::Mean => berth::config::Pooling::Mean,
                    PoolingArg::Cls => berth::config::Pooling::Cls,
                    PoolingArg::Max => berth::config::Pooling::Max,
                    PoolingArg::MeanSqrtLen => berth::config::Pooling::MeanSqrtLen,
                });
            }
            if normalize || no_normalize {
                options = options.normalize(normalize);
            }
            if let Some(d) = truncate_dim {
                options = options.truncate_dim(d);
            }
            if let Some(w) = windows {
                options = options.windows(w);
            }
            let m = berth::Model::load_with(&model.path, options)?;
            let source = io.source(false);
            let stdout = std::io::BufWriter::new(std::io::stdout().lock());
            let stdin = std::io::stdin().lock();
            match berth_tools::embed::run(&m, &texts, source, stdin, stdout, npy.as_deref()) {
                Err(e) if e.is_broken_pipe() => {}
                r => {
                    r?;
                }
            }
            Ok(out)
        }
        Command::Classify {
            model,
            texts,
            pair,
            top_k,
            function_to_apply,
            io,
        } => {
            let m = model.load(io.max_seq_len)?;
            let function = function_to_apply.map(|f| match f {
                FunctionArg::Softmax => berth::ScoreFn::Softmax,
                FunctionArg::Sigmoid => berth::ScoreFn::Sigmoid,
                FunctionArg::None => berth::ScoreFn::None,
            });
            let source = io.source(pair);
            run_task(&texts, source, |items, out| {
                berth_tools::tasks::classify(&m, items, function, Some(top_k), io.json, out)
            })?;
            Ok(out)
        }
        Command::Ner {
            model,
            texts,
            aggregation,
            io,
        } => {
            let m = model.load(io.max_seq_len)?;
            let source = io.source(false);
            run_task(&texts, source, |items, out| {
                berth_tools::tasks::ner(&m, items, aggregation.into(), io.json, out)
            })?;
            Ok(out)
        }
        Command::Qa {
            model,
            question,
            context,
            top_k,
            doc_stride,
            max_seq_len,
            max_answer_len,
            handle_impossible_answer,
            json,
        } => {
            let m = model.load(None)?;
            let context = match context {
                Some(c) => c,
                None => {
                    let mut c = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut c)
                        .map_err(|e| format!("reading the context from stdin: {e}"))?;
                    c
                }
            };
            let options = berth::QaOptions {
                top_k,
                doc_stride,
                max_answer_len,
                max_seq_len,
                handle_impossible_answer,
            };
            let mut buf = Vec::new();
            berth_tools::tasks::qa(&m, &question, &context, &options, json, &mut buf)?;
            out.push_str(&String::from_utf8_lossy(&buf));
            Ok(out)
        }
        Command::FillMask {
            model,
            texts,
            top_k,
            io,
        } => {
            let m = model.load(io.max_seq_len)?;
            let source = io.source(false);
            run_task(&texts, source, |items, out| {
                berth_tools::tasks::fill_mask(&m, items, top_k, io.json, out)
            })?;
            Ok(out)
        }
        Command::Rerank {
            model,
            query,
            documents,
            top_k,
            max_seq_len,
            jsonl,
            json,
        } => {
            let m = model.load(max_seq_len)?;
            // Every document is needed before any can be ranked.
            let source = berth_tools::tasks::Source {
                pair: false,
                jsonl,
                batch: usize::MAX,
            };
            let mut docs = Vec::new();
            berth_tools::tasks::for_each_batch(
                &documents,
                source,
                std::io::stdin().lock(),
                |items| {
                    docs.extend(items.iter().map(|i| i.0.clone()));
                    Ok(())
                },
            )?;
            let mut buf = Vec::new();
            berth_tools::tasks::rerank(&m, &query, &docs, top_k, json, &mut buf)?;
            out.push_str(&String::from_utf8_lossy(&buf));
            Ok(out)
        }
        Command::Run {
            model,
            inputs,
            output,
            prefixes,
        } => {
            let written = berth_tools::run::run(&model, &inputs, &output, &prefixes)?;
            for (name, shape) in written {
                writeln!(out, "{name} {shape:?}")?;
            }
            Ok(out)
        }
        Command::Bench {
            model,
            workload,
            dtype,
            threads,
            runs,
            min_time,
            json,
            export_inputs,
            bf16_attention,
            act_groups,
        } => {
            let workloads = workload
                .iter()
                .map(|w| {
                    bench::Workload::parse(w.trim())
                        .ok_or_else(|| format!("unknown workload {w:?} (M1, M2, B1, B2, B3)"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(path) = export_inputs {
                let v = bench::export_inputs(model.as_deref(), &workloads)?;
                std::fs::write(&path, serde_json::to_string(&v)?)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                return Ok(out);
            }
            if threads.contains(&0) || threads.iter().any(|&t| t > 1024) {
                return Err("--threads: each count must be 1..=1024".into());
            }
            if !(0.0..=3600.0).contains(&min_time) {
                return Err("--min-time: seconds in 0..=3600".into());
            }
            let explicit = model.is_some();
            let plan = bench::Plan {
                model,
                workloads,
                dtypes: match (dtype.is_empty(), explicit) {
                    (true, true) => vec![],
                    (true, false) => vec![
                        BenchDtypeArg::F32,
                        BenchDtypeArg::F16,
                        BenchDtypeArg::Bf16,
                        BenchDtypeArg::Int8,
                    ],
                    (false, _) => dtype,
                }
                .into_iter()
                .map(|d| match d {
                    BenchDtypeArg::F32 => bench::BenchDtype::File(OutDtype::F32),
                    BenchDtypeArg::F16 => bench::BenchDtype::File(OutDtype::F16),
                    BenchDtypeArg::Int8 => bench::BenchDtype::File(OutDtype::Int8),
                    BenchDtypeArg::Bf16 => bench::BenchDtype::Bf16,
                })
                .collect(),
                threads,
                timing: bench::Timing {
                    runs: runs.max(1),
                    min_time: Duration::from_secs_f64(min_time),
                    warm_up: Duration::from_millis(300),
                },
                bf16_attention,
                act_groups,
            };
            if json {
                let records = bench::run_plan(&plan, |_| {})?;
                writeln!(out, "{}", serde_json::to_string_pretty(&records)?)?;
            } else {
                // Rows appear as they are measured.
                let mut stdout = std::io::stdout().lock();
                let header = bench::table(&[]);
                stdout.write_all(header.as_bytes())?;
                bench::run_plan(&plan, |r| {
                    let row = bench::table(std::slice::from_ref(r));
                    let row = row.lines().nth(1).unwrap_or_default();
                    let _ = writeln!(stdout, "{row}");
                })?;
            }
            Ok(out)
        }
        Command::BenchChild {
            model,
            workload,
            threads,
            runs,
            min_time_ms,
            warm_up_ms,
            bf16,
            bf16_attention,
            act_groups,
        } => {
            let workload = bench::Workload::parse(&workload).ok_or("unknown workload")?;
            let timing = bench::Timing {
                runs,
                min_time: Duration::from_millis(min_time_ms),
                warm_up: Duration::from_millis(warm_up_ms),
            };
            bench::child(
                &model,
                workload,
                threads.max(1),
                bf16,
                bf16_attention,
                act_groups,
                timing,
            )?;
            Ok(out)
        }
    }
}

fn print_report(
    w: &mut String,
    dir: &std::path::Path,
    out: &std::path::Path,
    r: &Report,
    secs: f64,
) -> std::fmt::Result {
    writeln!(
        w,
        "converted {} -> {} ({}, {}) in {secs:.2} s",
        dir.display(),
        out.display(),
        r.architecture,
        r.dtype.name()
    )?;
    writeln!(
        w,
        "  {} parameters, {} tensors, file {}",
        r.params,
        r.tensors.len(),
        inspect::human_bytes(r.file_bytes)
    )?;
    match &r.tokenizer {
        Some(t) => writeln!(
            w,
            "  tokenizer from {}, max length from {}",
            t.file, t.max_length_from
        ),
        None => writeln!(w, "  no tokenizer"),
    }?;
    for n in &r.notes {
        writeln!(w, "  note: {n}")?;
    }
    let lossy: Vec<_> = r.tensors.iter().filter(|t| t.max_abs_err > 0.0).collect();
    if lossy.is_empty() {
        writeln!(w, "  every tensor stored exactly")?;
        return Ok(());
    }
    let width = lossy.iter().map(|t| t.name.len()).max().unwrap_or(4);
    writeln!(
        w,
        "  {} tensors stored exactly; quantisation error of the others:",
        r.tensors.len() - lossy.len()
    )?;
    writeln!(
        w,
        "    {:<width$}  {:<5} {:<13} {:>10} {:>11} {:>11}",
        "name", "dtype", "shape", "bytes", "max |err|", "rel rms"
    )?;
    for t in &lossy {
        writeln!(
            w,
            "    {:<width$}  {:<5} {:<13} {:>10} {:>11.3e} {:>11.3e}",
            t.name,
            t.dtype.name(),
            format!("{:?}", t.shape),
            t.bytes,
            t.max_abs_err,
            t.rel_rms_err
        )?;
    }
    let worst = lossy
        .iter()
        .max_by(|a, b| a.rel_rms_err.total_cmp(&b.rel_rms_err));
    if let Some(t) = worst {
        writeln!(
            w,
            "  worst relative error: {} ({:.3e})",
            t.name, t.rel_rms_err
        )?;
    }
    Ok(())
}

#!/usr/bin/env python3
"""berth against its peers on issue 5's workloads, in one run, on this machine.

    python3 benches/peers.py [--workload M1,M2,B1,B2,B3] [--threads 1,2] [--runs 20]
                             [--peers ort,ort-int8,ov,ov-f32,ov-int8,torch,torch-int8]
                             [--json results.json]

It makes its own virtualenv (under ~/.cache/berth/peers-venv, or --venv) with onnxruntime,
onnx, openvino, nncf, torch and transformers, and re-runs itself there. It builds berth
(cargo build --release) unless --berth names a binary, asks `berth bench --export-inputs` for
the workloads' token ids and checkpoints (MiniLM from scripts/fetch-minilm.sh's cache, the
random BERT-base that berth bench writes), then, workload by workload, times berth
(`berth bench --json`, every dtype) and each peer on the same ids, interleaved so that the
machine's drift hits both, and prints one table of medians with berth's ratio to each peer.

The peers are set up as ../shared/PEERS.md says is fair:
- ort: ONNX Runtime on the TorchScript export (eager attention) after its BERT graph optimiser
  (Attention, SkipLayerNormalization, BiasGelu fused); ort-int8: `quantize_dynamic` on that
  graph, per channel.
- ov: OpenVINO's default precision on this CPU (bf16 where AMX is present); ov-f32: precision
  hint f32; ov-int8: NNCF post-training quantisation (defaults, transformer model type) with
  the workload's inputs as calibration data. LATENCY hint, one stream, threads set.
- torch: PyTorch eager f32; torch-int8: dynamic int8 on Linear.
Peers run the padded batch (they have no padding-free path); berth runs its real tokens. Times
are the encoder forward pass on token ids (no tokenisation), median of at least --runs runs
after a warm-up, as berth bench does.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPS = ["onnxruntime", "onnx", "openvino", "nncf", "torch", "transformers", "numpy"]
PEERS = ["ort", "ort-int8", "ov", "ov-f32", "ov-int8", "torch", "torch-int8"]


def cache_root():
    for var, sub in (("BERTH_CACHE_DIR", ""), ("XDG_CACHE_HOME", "berth")):
        if os.environ.get(var):
            return Path(os.environ[var]) / sub
    return Path.home() / ".cache" / "berth"


def ensure_venv(args):
    """Re-runs this script inside a virtualenv that has the peers installed."""
    venv = Path(args.venv or cache_root() / "peers-venv")
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating {venv}", file=sys.stderr)
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    probe = "import onnxruntime, onnx, openvino, nncf, torch, transformers, numpy"
    if subprocess.call([str(py), "-c", probe], stderr=subprocess.DEVNULL) != 0:
        print(f"installing {' '.join(DEPS)} into {venv}", file=sys.stderr)
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        subprocess.check_call([str(py), "-m", "pip", "install", "-q", *DEPS])
    os.execv(str(py), [str(py), __file__, *sys.argv[1:]])


def stats(times):
    import numpy as np

    t = np.asarray(times)
    return {
        "median_ms": float(np.median(t)),
        "p10_ms": float(np.percentile(t, 10)),
        "p90_ms": float(np.percentile(t, 90)),
        "min_ms": float(t.min()),
        "runs": len(times),
    }


def timed(fn, runs, min_time=1.0, warm_up=0.3):
    """Warm-up (at least 2 runs), then at least `runs` runs and `min_time` seconds."""
    start = time.perf_counter()
    n = 0
    while n < 2 or time.perf_counter() - start < warm_up:
        fn()
        n += 1
    times = []
    start = time.perf_counter()
    while len(times) < runs or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return stats(times)


def padded(work):
    import numpy as np

    seqs, width = work["sequences"], work["seq"]
    ids = np.zeros((len(seqs), width), dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


class Prepared:
    """One checkpoint's peer models, made once and reused by every workload on it."""

    def __init__(self, checkpoint, work_dir, calibration):
        import torch
        from transformers import BertModel

        self.checkpoint = checkpoint
        self.dir = Path(work_dir)
        self.calibration = calibration
        self.torch = BertModel.from_pretrained(
            checkpoint, add_pooling_layer=False, attn_implementation="eager"
        ).eval()
        self.cfg = self.torch.config
        self._torch_int8 = None
        self._onnx = None
        self._ort_int8 = None
        self._ov_int8 = None
        torch.manual_seed(0)

    def torch_int8(self):
        import torch

        if self._torch_int8 is None:
            self._torch_int8 = torch.ao.quantization.quantize_dynamic(
                self.torch, {torch.nn.Linear}, dtype=torch.qint8
            )
        return self._torch_int8

    def onnx(self):
        """The TorchScript export (eager attention), and the same after ORT's BERT optimiser."""
        if self._onnx is None:
            import torch
            from onnxruntime.transformers import optimizer

            raw = self.dir / "model.onnx"
            feed = {k: torch.from_numpy(v) for k, v in self.calibration[0].items()}
            names = ["input_ids", "attention_mask", "token_type_ids"]
            dyn = {n: {0: "batch", 1: "seq"} for n in names}
            dyn["last_hidden_state"] = {0: "batch", 1: "seq"}
            class Encoder(torch.nn.Module):
                # Keyword arguments: BertModel.forward's positional order changes between
                # transformers versions.
                def __init__(self, bert):
                    super().__init__()
                    self.bert = bert

                def forward(self, input_ids, attention_mask, token_type_ids):
                    return self.bert(
                        input_ids=input_ids,
                        attention_mask=attention_mask,
                        token_type_ids=token_type_ids,
                    ).last_hidden_state

            torch.onnx.export(
                Encoder(self.torch),
                (feed["input_ids"], feed["attention_mask"], feed["token_type_ids"]),
                str(raw),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=dyn,
                opset_version=17,
                dynamo=False,
            )
            opt = optimizer.optimize_model(
                str(raw),
                model_type="bert",
                num_heads=self.cfg.num_attention_heads,
                hidden_size=self.cfg.hidden_size,
            )
            fused = self.dir / "model.opt.onnx"
            opt.save_model_to_file(str(fused))
            self._onnx = (raw, fused, opt.get_fused_operator_statistics())
        return self._onnx

    def ort_int8(self):
        if self._ort_int8 is None:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            _, fused, _ = self.onnx()
            out = self.dir / "model.opt.int8.onnx"
            quantize_dynamic(
                str(fused),
                str(out),
                per_channel=True,
                weight_type=QuantType.QInt8,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
            self._ort_int8 = out
        return self._ort_int8

    def ov_int8(self):
        if self._ov_int8 is None:
            import nncf
            import openvino as ov

            raw, _, _ = self.onnx()
            model = ov.Core().read_model(str(raw))
            data = nncf.Dataset(self.calibration)
            self._ov_int8 = nncf.quantize(
                model,
                data,
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(self.calibration),
            )
        return self._ov_int8


def run_peer(peer, prep, feed, threads, runs):
    """Times one peer on one padded batch; returns stats and a note."""
    import numpy as np

    if peer in ("torch", "torch-int8"):
        import torch

        torch.set_num_threads(threads)
        model = prep.torch if peer == "torch" else prep.torch_int8()
        t = {k: torch.from_numpy(v) for k, v in feed.items()}

        def fn():
            with torch.inference_mode():
                model(**t)

        return timed(fn, runs), f"torch {torch.__version__}"
    if peer in ("ort", "ort-int8"):
        import onnxruntime as ort

        path = prep.onnx()[1] if peer == "ort" else prep.ort_int8()
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}
        f = {k: v for k, v in feed.items() if k in names}
        return timed(lambda: sess.run(None, f), runs), f"onnxruntime {ort.__version__}"
    if peer in ("ov", "ov-f32", "ov-int8"):
        import openvino as ov

        core = ov.Core()
        model = prep.ov_int8() if peer == "ov-int8" else core.read_model(str(prep.onnx()[0]))
        config = {
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(threads),
        }
        if peer == "ov-f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        compiled = core.compile_model(model, "CPU", config)
        precision = compiled.get_property("INFERENCE_PRECISION_HINT")
        req = compiled.create_infer_request()
        names = {p.get_any_name() for p in compiled.inputs}
        f = {k: v for k, v in feed.items() if k in names}
        return (
            timed(lambda: req.infer(f), runs),
            f"openvino {ov.__version__}, precision {precision}",
        )
    raise ValueError(peer)


def berth_records(berth, workload, threads, runs):
    cmd = [
        str(berth),
        "bench",
        "--workload",
        workload,
        "--threads",
        ",".join(map(str, threads)),
        "--runs",
        str(runs),
        "--json",
    ]
    return json.loads(subprocess.check_output(cmd))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", default="M1,M2,B1,B2,B3")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--berth", help="the berth binary (default: build target/release/berth)")
    ap.add_argument("--venv")
    ap.add_argument("--json", help="also write every record to this file")
    args = ap.parse_args()
    ensure_venv(args)

    workloads = args.workload.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    peers = [p for p in args.peers.split(",") if p]
    for p in peers:
        if p not in PEERS:
            sys.exit(f"unknown peer {p!r} (one of {', '.join(PEERS)})")
    berth = args.berth
    if not berth:
        subprocess.check_call(["cargo", "build", "--release", "-q", "-p", "berth-tools"], cwd=REPO)
        berth = REPO / "target" / "release" / "berth"
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs.json"
        subprocess.check_call(
            [str(berth), "bench", "--workload", args.workload, "--export-inputs", str(inputs)]
        )
        works = json.loads(inputs.read_text())["workloads"]
        prepared = {}
        rows = []
        for work in works:
            name = work["workload"]
            ckpt = work["checkpoint"]
            feed = padded(work)
            if ckpt not in prepared:
                d = Path(tmp) / work["model"]
                d.mkdir(exist_ok=True)
                print(f"preparing the peers of {work['model']}", file=sys.stderr)
                prepared[ckpt] = Prepared(ckpt, d, [feed])
            prep = prepared[ckpt]
            print(f"{name}: berth", file=sys.stderr)
            for r in berth_records(berth, name, threads, args.runs):
                rows.append(dict(r, engine="berth"))
            for peer in peers:
                for t in threads:
                    print(f"{name}: {peer} {t}t", file=sys.stderr)
                    try:
                        s, note = run_peer(peer, prep, feed, t, args.runs)
                    except Exception as e:  # a peer that fails is reported, not fatal
                        print(f"  {peer} failed: {e}", file=sys.stderr)
                        continue
                    rows.append(
                        dict(s, engine=peer, workload=name, threads=t, note=note,
                             gflop=work["gflop"])
                    )
            # After each workload, so that a long run's finished part survives.
            if args.json:
                Path(args.json).write_text(json.dumps(rows, indent=1))
            print(table(rows, [name], threads, peers), file=sys.stderr)
        print(table(rows, workloads, threads, peers))
        notes = sorted({(r["engine"], r["note"]) for r in rows if r.get("note")})
        for engine, note in notes:
            print(f"  {engine}: {note}")
        for ckpt, prep in prepared.items():
            if prep._onnx:
                print(f"  ORT fused operators ({Path(ckpt).name}): {prep._onnx[2]}")


# Which berth dtype each peer is compared with.
SAME_DTYPE = {
    "ort": "f32",
    "ov-f32": "f32",
    "torch": "f32",
    "ov": "bf16",
    "ort-int8": "int8",
    "ov-int8": "int8",
    "torch-int8": "int8",
}


def table(rows, workloads, threads, peers):
    def med(engine, w, t, dtype=None):
        for r in rows:
            if (r["engine"], r["workload"], r["threads"]) == (engine, w, t) and (
                dtype is None or r.get("dtype") == dtype
            ):
                return r["median_ms"]
        return None

    out = []
    dtypes = ("f32", "f16", "bf16", "int8")
    head = ["load", "thr", *(f"berth {d}" for d in dtypes), *peers]
    out.append("medians, ms (ratio = berth at the same dtype / peer; below 1 is berth faster)")
    out.append(" | ".join(f"{h:>10}" for h in head))
    for w in workloads:
        for t in threads:
            b = {d: med("berth", w, t, d) for d in dtypes}
            cells = [w, str(t)] + [f"{b[d]:.2f}" if b[d] else "-" for d in dtypes]
            for p in peers:
                m = med(p, w, t)
                if m is None:
                    cells.append("-")
                    continue
                mine = b[SAME_DTYPE[p]]
                ratio = f" ({mine / m:.2f}x)" if mine else ""
                cells.append(f"{m:.2f}{ratio}")
            out.append(" | ".join(f"{c:>10}" for c in cells))
    return "\n".join(out)


if __name__ == "__main__":
    main()

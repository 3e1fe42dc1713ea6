#!/usr/bin/python3
"""Standing parity check of Bonsai's CIFAR training against PyTorch on the reference's recipe.

For each seed it trains ResNet-20 with the reference's pretraining recipe twice, on the same images and with the
same settings: in PyTorch (scripts/torch_reference.py) and with `bonsai pretrain`. The two frameworks alternate
seed by seed (PyTorch 1, Bonsai 1, PyTorch 2, ...) so that a busy machine slows both alike. It then prints a
table (final and best held-out accuracy, final training loss, images/s: mean and sample standard deviation over
the seeds, and the difference of the means against its standard error) and writes it as markdown and JSON.

Not part of `mvn verify`: with 6 seeds and 20 epochs it takes about 40 minutes on two cores. Needs a JDK, Maven
(to build the jar once) and Debian's python3-torch and python3-torchvision; nothing else.

    /usr/bin/python3 scripts/torch-parity.py --seeds 6 --epochs 20 \
        --data ../shared/data/cifar10/first4000_of_data_batch_1.bin --out /tmp/parity \
        --summary benchmarks/results/torch-parity

Seeds do not give the same initial weights in the two frameworks (their generators differ); the comparison is
between the two distributions over seeds.
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_jar(out):
    """Builds the shaded jar and copies it into `out`, so that edits made while the run goes on do not change it."""
    subprocess.run(["mvn", "-q", "-B", "-DskipTests", "-pl", "dsp", "-am", "package"], cwd=ROOT, check=True)
    jar = os.path.join(out, "bonsai.jar")
    shutil.copyfile(os.path.join(ROOT, "dsp", "target", "bonsai.jar"), jar)
    return jar


def git_commit():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return rev + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_logged(cmd, log_path, env=None):
    with open(log_path, "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    if rc != 0:
        sys.exit("failed (exit %d): %s; see %s" % (rc, " ".join(cmd), log_path))


def read_torch(out, seed):
    with open(os.path.join(out, "torch-seed-%d.json" % seed)) as f:
        return json.load(f)["epochs"]


def read_bonsai(out, seed):
    epochs = []
    with open(os.path.join(out, "bonsai-seed-%d" % seed, "resnet20.metrics.jsonl")) as f:
        for line in f:
            e = json.loads(line)
            if e.get("event") == "epoch":
                epochs.append(e)
    return epochs


def run_torch(a, seed, out):
    path = os.path.join(out, "torch-seed-%d.json" % seed)
    cmd = [sys.executable, os.path.join(ROOT, "scripts", "torch_reference.py"), "--data", a.data, "--epochs", str(a.epochs),
           "--seed", str(seed), "--threads", str(a.threads), "--json", path]
    # PyTorch's OpenMP threads spin at every barrier by default; on a shared, oversubscribed machine that made it
    # 10x slower (14-21 against 170-246 images/s in a paired test). Passive waiting gives the CPU back instead.
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run_logged(cmd, os.path.join(out, "torch-seed-%d.log" % seed), env)
    return read_torch(out, seed)


def launcher_jvm_options():
    """The flags ./bonsai runs with (jvm.options at the repository root), so the parity run times what users run."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "jvm.options")
    with open(path) as f:
        return [l.strip() for l in f if l.strip() and not l.strip().startswith("#")]


def run_bonsai(a, jar, seed, out):
    save = os.path.join(out, "bonsai-seed-%d" % seed)
    cmd = ["java"] + launcher_jvm_options() + ["-jar", jar,
           "pretrain", "-l", "20", "--data", a.data, "--epochs", str(a.epochs), "--seed", str(seed), "--threads", str(a.threads),
           "--save-dir", save]
    run_logged(cmd, os.path.join(out, "bonsai-seed-%d.log" % seed))
    return read_bonsai(out, seed)


def summarise(epochs):
    """One seed's figures from its per-epoch records (both frameworks use the same field names)."""
    speeds = [e["imagesPerSecond"] for e in epochs[1:]] or [epochs[0]["imagesPerSecond"]]   # epoch 1 includes JIT warm-up
    return {"finalAcc": epochs[-1]["evalAccuracy"], "bestAcc": max(e["evalAccuracy"] for e in epochs),
            "finalLoss": epochs[-1]["trainLoss"], "imagesPerSecond": statistics.median(speeds)}


ROWS = [("finalAcc", "final held-out accuracy (%)", 2), ("bestAcc", "best held-out accuracy (%)", 2),
        ("finalLoss", "final training loss", 3), ("imagesPerSecond", "images/s (median over epochs 2..)", 0)]


def table(torch_runs, bonsai_runs):
    """Markdown table: mean +- sample std per framework, difference of means, its standard error."""
    lines = ["| quantity | PyTorch | Bonsai | Bonsai - PyTorch | standard error | within 1 SE |", "|---|---:|---:|---:|---:|:---:|"]
    stats = {}
    for key, label, digits in ROWS:
        t = [r[key] for r in torch_runs]
        b = [r[key] for r in bonsai_runs]
        sd_t = statistics.stdev(t) if len(t) > 1 else float("nan")
        sd_b = statistics.stdev(b) if len(b) > 1 else float("nan")
        diff = statistics.mean(b) - statistics.mean(t)
        se = math.sqrt(sd_t ** 2 / len(t) + sd_b ** 2 / len(b))
        stats[key] = {"pytorch": t, "bonsai": b, "pytorchMean": statistics.mean(t), "pytorchStd": sd_t,
                      "bonsaiMean": statistics.mean(b), "bonsaiStd": sd_b, "difference": diff, "standardError": se}
        f = "%%.%df" % digits
        within = "" if key == "imagesPerSecond" else ("yes" if abs(diff) <= se else "no")
        lines.append("| %s | %s ± %s | %s ± %s | %s | %s | %s |" % (
            label, f % statistics.mean(t), f % sd_t, f % statistics.mean(b), f % sd_b, ("%+" + f[1:]) % diff, f % se, within))
    return "\n".join(lines), stats


def main():
    p = argparse.ArgumentParser(description="Bonsai vs PyTorch on the reference's pretraining recipe, over N seeds.")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "cifar10", "first4000_of_data_batch_1.bin"))
    p.add_argument("--seeds", type=int, default=6)
    p.add_argument("--first-seed", type=int, default=1, help="start at this seed (to continue an interrupted run in the same --out)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="/tmp/bonsai-torch-parity", help="logs, per-seed results and checkpoints (large; not for git)")
    p.add_argument("--summary", help="write the table and figures to SUMMARY.md and SUMMARY.json (small; for git)")
    p.add_argument("--jar", help="use this bonsai.jar instead of building one")
    p.add_argument("--tabulate-only", action="store_true",
                   help="train nothing: tabulate the seeds whose PyTorch and Bonsai runs are both complete in --out")
    a = p.parse_args()
    if a.seeds < 2:
        sys.exit("--seeds: need at least 2 for a spread, got %d" % a.seeds)
    if not os.path.isfile(a.data):
        sys.exit("--data %s: no such file (a file of CIFAR-10 binary records)" % a.data)
    a.data = os.path.abspath(a.data)
    os.makedirs(a.out, exist_ok=True)
    commit = git_commit()

    start = time.time()
    torch_runs, bonsai_runs = [], []
    if a.tabulate_only:
        for seed in range(1, a.seeds + 1):
            try:
                t, b = read_torch(a.out, seed), read_bonsai(a.out, seed)
            except OSError:
                continue
            if len(t) == a.epochs and len(b) == a.epochs:
                torch_runs.append(summarise(t))
                bonsai_runs.append(summarise(b))
        if len(torch_runs) < 2:
            sys.exit("--tabulate-only: fewer than 2 seeds complete in %s" % a.out)
        a.seeds = len(torch_runs)
        commit = "(the commit that ran them)"
    else:
        jar = a.jar or build_jar(a.out)
        for seed in range(a.first_seed, a.seeds + 1):
            torch_runs.append(summarise(run_torch(a, seed, a.out)))
            print("seed %d pytorch: %s" % (seed, json.dumps(torch_runs[-1])), flush=True)
            bonsai_runs.append(summarise(run_bonsai(a, jar, seed, a.out)))
            print("seed %d bonsai:  %s" % (seed, json.dumps(bonsai_runs[-1])), flush=True)
    minutes = (time.time() - start) / 60

    md, stats = table(torch_runs, bonsai_runs)
    import torch
    header = ("ResNet-20, reference pretraining recipe, %d epochs, %d seeds each, %s, %d threads each; Bonsai %s, "
              "PyTorch %s" % (a.epochs, a.seeds, os.path.basename(a.data), a.threads, commit, torch.__version__)
              + ("" if a.tabulate_only else "; %.0f min in all" % minutes))
    print()
    print(header)
    print(md)
    if a.summary:
        os.makedirs(os.path.dirname(os.path.abspath(a.summary)), exist_ok=True)
        with open(a.summary + ".md", "w") as f:
            f.write(header + "\n\n" + md + "\n")
        with open(a.summary + ".json", "w") as f:
            json.dump({"description": header, "epochs": a.epochs, "seeds": a.seeds, "threads": a.threads, "bonsaiCommit": commit,
                       "pytorch": torch.__version__, "minutes": minutes, "stats": stats}, f, indent=1)


if __name__ == "__main__":
    main()

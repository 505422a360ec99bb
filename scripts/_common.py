"""Helpers shared by the fitting and evaluation scripts (not part of the package)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from ganscreen import _records

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "faces"

# Real sources whose photos were aligned with the FFHQ procedure (the geometry check's
# hard negatives); every other real source is an ordinary photo.
ALIGNED_REAL_GENERATORS = frozenset({"ffhq", "celebahq", "real-misc-aligned", "real-lowquality-aligned"})


# The protocol's `F` sources (model card, Data: Round 3): held out of CNN training by default
# (train_cnn.py --holdout), they fit and threshold the fusion. Unseen generators (StyleGAN3
# twice, e4e inversions, the GAN-Scanner set, generated.photos, StyleGAN2-ADA twice, R3GAN,
# seeprettyface), unseen ordinary-photo sources (tight crops, low-quality photos from
# restoration projects, misc portraits) and the two largest CelebA-HQ sources (aligned like
# StyleGAN, 1024 px). The smaller CelebA-HQ sources and the 256-px FFHQ photos stay in
# training: without high-resolution aligned reals the model learns "sharp aligned face = GAN".
FIT_SOURCES = ["gan/sg3perc", "gan/styleclip", "gan/ganscanner", "gan/agegan", "gan/facemash",
               "gan/katasg3", "gan/kenton", "gan/r3gan", "gan/seepretty", "gan/seeprettyyellow",
               "real/ciplabreal", "real/starganv2", "real/sean", "real/codeformer", "real/deep3d",
               "real/dfdnet", "real/gfpgan", "real/restoreformerpp", "real/sam", "real/styleganex"]

# The protocol's `E` sources: the 22 round-3 sources that arrived after CNN training started.
# No model, fit, threshold or choice may use them; they serve the evaluation table only.
UNSEEN_SOURCES = ["gan/analemasg3", "gan/asiimov", "gan/dcface", "gan/ilvr", "gan/kuldeep", "gan/pti",
                  "gan/realfacessd", "gan/sg2runway", "gan/tedigan", "gan/xinyiffsg2",
                  "real/arc2face", "real/asiimov", "real/diffpir", "real/faceapijs", "real/facerec",
                  "real/fairface", "real/ilvr", "real/kuldeep", "real/opensw23", "real/pti",
                  "real/pulid", "real/realfacessd"]


# The protocol's `E2` sources: round 4 (scripts/data/round4_manifest.tsv), fetched after every
# shipped model, fit and threshold was made: thispersondoesnotexist scrapes and study stimuli
# (StyleGAN2, 1024 px), studio portraits, and the FFHQ photos of a perception study. Like `E`,
# no model, fit, threshold or choice may use them; they serve the evaluation table only.
UNSEEN2_SOURCES = ["gan/fakesurvey", "gan/tpdneagile", "gan/tpdnejung", "gan/tpdnename", "gan/tpdnesulfur",
                   "gan/tpdneu1i", "real/amfd", "real/fakesurvey", "real/frlcanada", "real/frllondon"]


# Round-3 sources used for training (model card, Data: Round 3, role "train"); every source of
# the round-2 collection that is not an `F` source is a training source too.
ROUND3_TRAIN_SOURCES = frozenset({"gan/ailab140k", "real/ailab140k", "real/utkface", "gan/sdfd"})


def role_of(key: str) -> str:
    """The protocol role of 'label/file': ``unseen`` (`E`), ``unseen2`` (`E2`), ``fit`` (`F`)
    or ``train``."""
    source = source_of(key)
    if source in UNSEEN_SOURCES:
        return "unseen"
    if source in UNSEEN2_SOURCES:
        return "unseen2"
    return "fit" if source in FIT_SOURCES else "train"


def is_aligned_real(key: str, sources: dict[str, dict[str, str]]) -> bool:
    """Whether 'label/file' is a real photo of a dataset aligned like FFHQ (by SOURCES.tsv)."""
    return key.startswith("real/") and sources.get(key, {}).get("generator", "") in ALIGNED_REAL_GENERATORS


def process_memory_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A memory figure of a running process from /proc (Linux), in MB: ``VmRSS`` (resident
    now) or ``VmHWM`` (its peak so far); ``None`` once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON Lines scan, by the package's rule (ganscreen._records): a torn last
    line (a killed scan) is left out with a note on stderr; any other bad line stops the
    script with its file and line number, rather than fitting on a silently shorter set."""
    read = _records.read_records(path)
    if read.note:
        print(f"note: {read.note}", file=sys.stderr)
    return read.records


def read_cache(path: Path, key: str) -> list[dict[str, Any]]:
    """The entries of a JSON Lines cache a script appends to (objects with a str ``key``),
    by the same rule as :func:`read_records`. A torn last entry is cut off the file, so the
    next appended entry starts on a line of its own instead of being glued to it."""
    read = _records.read_records(path, accept=lambda v: isinstance(v, dict) and isinstance(v.get(key), str))
    if read.torn is not None:
        print(f"note: {read.note}; cut off the cache", file=sys.stderr)
        with path.open("r+b") as fh:
            fh.truncate(read.terminated_bytes)
    return read.records


def read_sources(data: Path) -> dict[str, dict[str, str]]:
    """SOURCES.tsv rows keyed by 'label/file' (empty when the table is absent)."""
    table = data / "SOURCES.tsv"
    if not table.exists():
        return {}
    lines = table.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return {row[0]: dict(zip(header, row, strict=False)) for row in (ln.split("\t") for ln in lines[1:])}


def read_all_sources(datas: Iterable[Path]) -> dict[str, dict[str, str]]:
    """:func:`read_sources` of every folder, merged (a later folder's row wins)."""
    return {k: v for data in datas for k, v in read_sources(data).items()}


def relative_key(path: str) -> str:
    """'…/faces/gan/x.jpg' → 'gan/x.jpg' (label folder and file name)."""
    parts = Path(path).parts
    return "/".join(parts[-2:])


def label_of(key: str) -> int | None:
    top = key.split("/")[0]
    return {"gan": 1, "real": 0}.get(top)


def source_of(key: str) -> str:
    """'gan/hardfakevsreal__fake_1.jpg' → 'gan/hardfakevsreal'."""
    label, name = key.split("/", 1)
    return f"{label}/{name.split('__', 1)[0]}"


def roc_metrics(y: Sequence[int], s: Sequence[float], fprs: Iterable[float] = (0.01, 0.005)) -> dict[str, Any]:
    """AUC and TPR at the given false-positive rates (thresholds from the negatives)."""
    y_a = np.asarray(y, int)
    s_a = np.asarray(s, float)
    pos, neg = s_a[y_a == 1], s_a[y_a == 0]
    out: dict[str, Any] = {"n_pos": int(len(pos)), "n_neg": int(len(neg))}
    if len(pos) == 0 or len(neg) == 0:
        return out
    auc = roc_auc_score(y_a, s_a)  # ties count half, as in the Mann-Whitney statistic
    out["auc"] = round(float(auc), 4)
    # Every threshold, so no corner of the curve is dropped; false positives as counts, so
    # the comparison with the allowed number is exact.
    fpr_curve, tpr_curve, _ = roc_curve(y_a, s_a, drop_intermediate=False)
    false_pos = np.rint(fpr_curve * len(neg))
    for fpr in fprs:
        # TPR at the threshold threshold_at_fpr picks: the best point of the curve with at
        # most floor(fpr * negatives) false positives (the (inf, 0, 0) point is always one).
        allowed = int(np.floor(fpr * len(neg)))
        out[f"tpr_at_fpr_{fpr:g}"] = round(float(tpr_curve[false_pos <= allowed].max()), 4)
    return out


def threshold_at_fpr(neg: np.ndarray, fpr: float) -> float:
    """Smallest threshold t with mean(neg > t) <= fpr: a flag threshold fitted on negatives
    alone (fit_fusion), the operating point whose TPR roc_metrics reports."""
    neg = np.sort(np.asarray(neg, float))
    k = int(np.floor(fpr * len(neg)))  # negatives allowed above t
    return float(neg[len(neg) - k - 1]) if k < len(neg) else float(neg[0]) - 1e-9


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table."""
    head = "| " + " | ".join(columns) + " |\n|" + "|".join("---" for _ in columns) + "|\n"
    body = "".join("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return head + body


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)

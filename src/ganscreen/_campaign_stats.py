"""Campaign statistics: the binomial tests against ordinary real photos, and the accounts
(which photo belongs to which account, and each account's tallies).

Private to :mod:`ganscreen.campaign` (which re-exports the public names); see its docstring
for the summary these fill in.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import PurePath
from typing import Any

from ganscreen._records import one_line
from ganscreen.checks import flags as registered_flags
from ganscreen.report import portable_text

log = logging.getLogger("ganscreen.campaign")

# Flags whose base rate among ordinary real photos is not shipped: the checks' flag
# thresholds and the fusion's gan threshold sit at about 1 % false positives on real photos.
DEFAULT_BASE_RATE = 0.01
VERDICT_TEST = ("verdict_gan", "are judged GAN-generated")
ASSUMED_RATE = (DEFAULT_BASE_RATE, "assumed 1 % (no measured rate shipped; the check's flag threshold "
                "is set at about 1 % false positives on real photos, so this is conservative)", False)


def campaign_tests() -> tuple[str, ...]:
    """The campaign's tests: every registered check's flags, then the verdict."""
    return (*registered_flags(), VERDICT_TEST[0])


def wording_for(name: str) -> str:
    """Completes "N of M faces ..." for a test."""
    if name == VERDICT_TEST[0]:
        return VERDICT_TEST[1]
    flag = registered_flags().get(name)
    return flag.campaign if flag is not None else f"carry the flag {name}"


# --------------------------------------------------------------------------- statistics


def binomial_sf(k: int, n: int, p: float) -> tuple[float, float]:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, exactly, as ``(p_value, log10 p_value)``.

    Summed in log space (``math.lgamma``), so tails far below the smallest float keep an
    exact ``log10``; the returned p-value is then 0.0.
    """
    if k <= 0:
        return 1.0, 0.0
    if k > n or p <= 0.0:
        return 0.0, -math.inf
    if p >= 1.0:
        return 1.0, 0.0
    lp, lq = math.log(p), math.log1p(-p)
    base = math.lgamma(n + 1)
    terms = [base - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq
             for i in range(k, n + 1)]
    top = max(terms)
    log_sf = top + math.log(math.fsum(math.exp(t - top) for t in terms))
    log_sf = min(log_sf, 0.0)
    return math.exp(log_sf), log_sf / math.log(10)


def p_text(p_value: float, log10_p: float) -> str:
    """``p = 0.012``, ``p = 3.1e-04`` or, for very small values, ``p < 1e-30``."""
    if log10_p == -math.inf:
        return "p = 0"
    if p_value >= 0.001:
        return f"p = {p_value:.3g}"
    if log10_p >= -6:
        return f"p = {p_value:.1e}"
    return f"p < 1e-{math.floor(-log10_p)}"


@cache
def _base_rates() -> tuple[dict[str, tuple[float, str, bool]], tuple[str, ...]]:
    rates = {name: ASSUMED_RATE for name in campaign_tests()}
    rates["verdict_gan"] = (DEFAULT_BASE_RATE, "assumed 1 %: the fusion's gan threshold is set at a "
                            "held-out false-positive rate of 1 % on real photos", False)
    from ganscreen._assets import AssetError, load_json

    try:
        template = load_json("ffhq_template.json")
    except (AssetError, OSError, ValueError) as exc:
        # An altered, missing or unreadable model file: the summary is still worth having,
        # but it must say that the measured rate was replaced, and why.
        reason = one_line(exc)
        rates["ffhq_alignment"] = (DEFAULT_BASE_RATE, "assumed 1 %: the measured rate in "
                                   f"models/ffhq_template.json could not be read ({reason})", False)
        note = (f"the measured base rate of ffhq_alignment could not be read ({reason}); "
                "the assumed 1 % is used instead")
        log.warning("campaign: %s", note)
        return rates, (note,)
    info = template.get("ordinary_real_on_template_rate") if isinstance(template, dict) else None
    info = info if isinstance(info, dict) else {}
    rate = info.get("on_template")
    if isinstance(rate, (int, float)) and 0 < rate < 1:
        rates["ffhq_alignment"] = (float(rate), f"measured: {rate:.2%} of {info.get('n', '?')} ordinary "
                                   "real photos sit on the template (models/ffhq_template.json)", True)
    return rates, ()


def base_rates() -> dict[str, tuple[float, str, bool]]:
    """Per test: (rate among ordinary real photos, where it comes from, measured?)."""
    return _base_rates()[0]


def base_rate_notes() -> tuple[str, ...]:
    """Why a shipped base rate was not used (empty when every one was read)."""
    return _base_rates()[1]


def binomial_test(name: str, observed: int, total: int, rate: float, source: str,
                  measured: bool) -> dict[str, Any]:
    p_value, log10_p = binomial_sf(observed, total, rate)
    expected = total * rate
    shown = f"{expected:.1f}" if expected >= 0.95 else f"{expected:.2g}"
    text = (f"{observed} of {total} faces {wording_for(name)}; expected "
            f"{shown} by chance ({rate:.2%} of ordinary real photos"
            f"{'' if measured else ', assumed'}); {p_text(p_value, log10_p)}")
    return {"name": name, "observed": observed, "total": total, "base_rate": rate,
            "base_rate_source": source, "base_rate_measured": measured,
            "expected": round(expected, 4), "p_value": p_value,
            "log10_p": None if log10_p == -math.inf else round(log10_p, 4), "text": text}


def statistics(photos: Sequence[Mapping[str, Any]], clusters: Sequence[Sequence[int]]) -> dict[str, Any]:
    """The binomial tests over distinct photos (``clusters``: the member ids of each cluster)."""
    # The unit is a distinct photo: a reused photo is one draw, not one per copy (a single
    # GAN face posted forty times must not read as forty independent GAN faces).
    units: list[list[int]] = [list(members) for members in clusters]
    clustered = {m for members in units for m in members}
    units += [[p["id"]] for p in photos if p["id"] not in clustered]
    rates = base_rates()
    tests = []
    for name in campaign_tests():
        observed = total = 0
        for members in units:
            judged = [photos[m] for m in members if photos[m]["status"] == "ok"
                      and (name != "verdict_gan" or photos[m]["verdict"] is not None)]
            if not judged:
                continue
            total += 1
            hits = sum((p["verdict"] == "gan") if name == "verdict_gan" else (name in p["flags"])
                       for p in judged)
            observed += 2 * hits >= len(judged)  # at least half of its copies
        rate, source, measured = rates.get(name, ASSUMED_RATE)
        tests.append(binomial_test(name, observed, total, rate, source, measured))
    result = {"unit": "distinct photos with a face (each cluster of reused copies counts once, "
                    "as flagged when at least half of its copies are)",
            "note": "one-sided exact binomial test against the rate among ordinary real photos; it "
                    "assumes the distinct photos are independent draws, so a small p says the set is "
                    "unlike ordinary photos, not who made it",
            "tests": tests}
    notes = base_rate_notes()
    if notes:  # only then: a summary made with every rate read keeps its documented keys
        result["notes"] = list(notes)
    return result


# --------------------------------------------------------------------------- accounts


def default_roots(paths: Sequence[str]) -> list[str]:
    """Without given folders: the deepest folder holding every path (its subfolders are accounts)."""
    dirs = [os.path.dirname(os.path.abspath(p)) for p in paths]
    if not dirs:
        return []
    try:
        return [os.path.commonpath(dirs)]
    except ValueError:  # different drives
        return []


def assign_accounts(paths: Sequence[str], roots: Sequence[str]) -> list[str | None]:
    """The account of each path: its first folder below the root that holds it (or None)."""
    absroots = [os.path.abspath(r) for r in roots]
    named = len(absroots) > 1
    accounts: list[str | None] = []
    for path in paths:
        account = None
        full = os.path.abspath(path)
        for root, absroot in zip(roots, absroots, strict=True):
            try:
                rel = PurePath(os.path.relpath(full, absroot))
            except ValueError:
                continue
            if rel.parts and rel.parts[0] != "..":
                if len(rel.parts) >= 2:
                    account = f"{PurePath(root).name}/{rel.parts[0]}" if named else rel.parts[0]
                break
        accounts.append(None if account is None else portable_text(account))
    return accounts


def account_tallies(photos: Sequence[Mapping[str, Any]], clusters: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per account: photos, gan, uncertain, reused from elsewhere, and who shares a photo with it."""
    names = sorted({p["account"] for p in photos if p["account"] is not None})
    if not names:
        return []
    info = {a: {"name": a, "photos": 0, "gan": 0, "uncertain": 0, "reused_from_elsewhere": 0}
            for a in names}
    shares: dict[str, Counter[str]] = {a: Counter() for a in names}
    for p in photos:
        a = p["account"]
        if a is None:
            continue
        info[a]["photos"] += 1
        if p["verdict"] in ("gan", "uncertain"):
            info[a][p["verdict"]] += 1
        if p["cluster"] is not None:
            cluster = clusters[p["cluster"]]
            others = [o for o in cluster["accounts"] if o != a]
            if others:
                info[a]["reused_from_elsewhere"] += 1
                shares[a].update(others)
    return [{**info[a], "shares_with": [{"account": o, "photos": k}
                                        for o, k in sorted(shares[a].items(), key=lambda t: (-t[1], t[0]))]}
            for a in names]

"""Campaign view: from a folder of suspected accounts, find the network, not just the photo.

``ganscreen campaign PATH...`` (or ``--from-scan scan.jsonl``) takes the records of a scan
(run here, or read back from JSON Lines without re-running the checks), re-reads every image
to hash it, and summarises the set as a whole:

- **reused photos**: clusters of near-duplicate images (the same photo resized,
  re-compressed, cropped, rotated, mirrored or colour-filtered), found with perceptual hashes
  of the whole image and of the landmark-aligned face (:mod:`ganscreen.hashing`), then a
  second stage: looser candidates (hashes within ``CANDIDATE_THRESHOLD`` bits, or photos
  sharing rare keypoint keys) verified with keypoints and pixels (:mod:`ganscreen.keypoints`),
  which joins copies cropped by up to a quarter or rotated by a few degrees;
- **a shared generator fingerprint**: how many distinct faces carry each flag (and the
  verdict ``gan``) against how many ordinary real photos would, with a one-sided binomial
  test;
- **accounts**: when a given folder has subfolders, each subfolder directly under it is an
  account; per account: photos, flagged, uncertain, reused from elsewhere, and which other
  accounts share a photo with it.

Threshold (``DEFAULT_THRESHOLD`` = 4 bits of 64), measured by
``scripts/measure_hash_threshold.py --sample 300`` (seed 0) on the training collection: 300
photos (GAN and real), 44,850 pairs of distinct photos, six edited copies of each photo;
distance = the smaller of plain and mirrored hash; "either" = the smaller of the image and
the face distance, as the campaign matches. phash sets exactly half its bits, so every
distance is even.

- distinct photos: image hash median 28, min 8, 1st percentile 16; face hash median 24,
  min 6, 1st percentile 16; either kind: min 6, 1st percentile 14. Pairs matched at 4
  bits: 0 of 44,850; at 6: 1; at 8: 3; at 10: 32.
- edited copies matched at 4 bits (either kind): resize to 35-70 % 100 %, JPEG quality
  50-75 100 %, mirror 100 %, colour filter (saturation, contrast, brightness, tint) 100 %,
  crop of 3-15 % per side 79 %, all five at once 64 % (at 8 bits: 84 % and 84 %). The
  copies missed are crops that cut into the face itself (tightly framed photos), where
  the face hash changes as much as between different people.
- 4 is the largest attainable distance below the closest distinct pair (6): a campaign of
  a thousand photos has half a million pairs, so looser thresholds would join strangers.

``summary.json`` schema (``"schema": "ganscreen-campaign/1"``; every path is the record's):

- ``schema``, ``generated`` (UTC ISO 8601), ``ganscreen_version``;
- ``source``: ``{"paths": [...], "scan": str | null, "roots": [...]}``: the folders whose
  subfolders are accounts;
- ``hash``: ``{"algorithm", "bits": 64, "threshold", "kinds": ["image", "face"],
  "mirrored": true, "verification"}`` (the second stage's parameters, or null when off);
- ``totals``: ``files``, ``ok``, ``no_face``, ``error``, ``gan``, ``uncertain``, ``real``,
  ``hashed``, ``not_hashed``, ``clusters``, ``photos_in_clusters``, ``accounts``;
- ``photos``: one object per record, in record order: ``id`` (index), ``path``,
  ``account`` (str | null), ``status``, ``verdict``, ``score``, ``flags``, ``cluster``
  (cluster id | null), ``hash`` (``{"image": hex, "face": hex | null}`` | null) and
  ``hash_error`` (str | null);
- ``clusters``: ``id``, ``size``, ``members`` (photo ids), ``accounts`` (sorted, non-null),
  ``spans_accounts`` (bool), ``links``: the matches that joined the cluster, closest first,
  one fewer than members: ``{"a", "b", "kind": "image" | "face" | "keypoints", "distance"
  (bits; null for a keypoint-vote candidate), "mirrored": bool, "inliers", "correlation"}``
  (the last two for ``keypoints`` links, else null);
- ``statistics``: ``{"unit", "note", "tests": [...]}``, and ``"notes": [str]`` only when a
  shipped base rate could not be read (an altered or missing model file: the assumed 1 %
  stands in, the page and the log say so); each test: ``name`` (a flag, or
  ``verdict_gan``), ``observed``, ``total``, ``base_rate``, ``base_rate_source``,
  ``base_rate_measured`` (bool), ``expected``, ``p_value`` (float; 0.0 when it underflows),
  ``log10_p``, ``text``;
- ``accounts``: a list (empty without subfolders) of ``{"name", "photos", "gan",
  "uncertain", "reused_from_elsewhere", "shares_with": [{"account", "photos"}]}``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ganscreen._campaign_page import render_html as render_html  # re-exported: the cli's name
from ganscreen._campaign_pairs import entry_pairs as entry_pairs
from ganscreen._campaign_pairs import nearest_candidates as nearest_candidates
from ganscreen._campaign_pairs import vote_candidates as vote_candidates
from ganscreen._campaign_stats import DEFAULT_BASE_RATE as DEFAULT_BASE_RATE
from ganscreen._campaign_stats import account_tallies, statistics
from ganscreen._campaign_stats import assign_accounts as assign_accounts
from ganscreen._campaign_stats import base_rates as base_rates
from ganscreen._campaign_stats import binomial_sf as binomial_sf
from ganscreen._campaign_stats import binomial_test as binomial_test
from ganscreen._campaign_stats import campaign_tests as campaign_tests
from ganscreen._campaign_stats import default_roots as default_roots
from ganscreen._campaign_stats import p_text as p_text
from ganscreen._campaign_stats import wording_for as wording_for
from ganscreen._records import VERDICTS, largest_face, one_line, outcome
from ganscreen._version import __version__
from ganscreen.hashing import PhotoHashes, UnionFind, photo_hashes

if TYPE_CHECKING:
    from ganscreen.keypoints import Match
from ganscreen.report import portable_text

_log = logging.getLogger("ganscreen")

__all__ = [
    "CANDIDATES_PER_PHOTO",
    "CANDIDATE_THRESHOLD",
    "DEFAULT_BASE_RATE",
    "DEFAULT_THRESHOLD",
    "KINDS",
    "SCHEMA",
    "Link",
    "Verifier",
    "assign_accounts",
    "base_rates",
    "binomial_sf",
    "binomial_test",
    "build",
    "campaign_tests",
    "cluster_photos",
    "default_roots",
    "entry_pairs",
    "hash_record",
    "nearest_candidates",
    "p_text",
    "record_landmarks",
    "record_verifier",
    "render_html",
    "summarise",
    "verification_parameters",
    "vote_candidates",
    "wording_for",
]

SCHEMA = "ganscreen-campaign/1"
DEFAULT_THRESHOLD = 4
# Second stage: pairs within this many bits (either kind), at most this many per photo
# (its closest), are verified with keypoints (scripts/measure_hash_threshold.py --verify).
CANDIDATE_THRESHOLD = 8
CANDIDATES_PER_PHOTO = 4
KINDS = ("image", "face")


# --------------------------------------------------------------------------- hashing


def record_landmarks(record: Mapping[str, Any]) -> list[list[float]] | None:
    """The five landmarks of the record's largest face, if any."""
    face = largest_face(record.get("faces"))
    return None if face is None else [[float(x), float(y)] for x, y in face["landmarks"]]


def hash_record(record: Mapping[str, Any], *, keys: bool = False) -> tuple[PhotoHashes | None, str | None]:
    """Re-read the record's image and hash it: ``(hashes, None)`` or ``(None, why not)``;
    ``keys``: with its keypoint signature too (the second stage's candidates)."""
    from ganscreen.images import ImageLoadError, load_recorded

    path = record.get("path")
    if not isinstance(path, str):
        return None, "no path"
    try:
        image = load_recorded(record)  # the scan's reading rule: nothing it refused or did not see
    except ImageLoadError as exc:
        return None, str(exc)
    try:
        hashes = photo_hashes(image.rgb, record_landmarks(record) if record.get("status") == "ok" else None)
        if keys:
            from ganscreen.keypoints import signature

            hashes = dataclasses.replace(hashes, keys=signature(image.rgb))
        return hashes, None
    except Exception as exc:  # never let one photo end the campaign: its hash_error says why
        _log.warning("campaign: cannot hash %s: %s", record.get("path"), one_line(exc), exc_info=True)
        return None, f"cannot hash: {one_line(exc)}"


# --------------------------------------------------------------------------- clustering


@dataclass(frozen=True, slots=True)
class Link:
    a: int
    b: int
    kind: str  # "image" or "face" (a hash match) or "keypoints" (a verified candidate)
    distance: int | None  # bits between the closest hashes (None: a keypoint-vote candidate)
    mirrored: bool
    inliers: int | None = None  # keypoint links: RANSAC inliers
    correlation: float | None = None  # keypoint links: band-passed pixel correlation

    def to_record(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "kind": self.kind, "distance": self.distance,
                "mirrored": self.mirrored, "inliers": self.inliers, "correlation": self.correlation}


Verifier = Callable[[int, int], "Match | None"]


def cluster_photos(hashes: Sequence[PhotoHashes | None], threshold: int = DEFAULT_THRESHOLD, *,
                   verify: Verifier | None = None, candidate_threshold: int = CANDIDATE_THRESHOLD,
                   candidates_per_photo: int = CANDIDATES_PER_PHOTO) -> list[tuple[list[int], list[Link]]]:
    """Clusters of near-duplicate photos (two or more members) and the links that joined them.

    Photos match when their hashes of one kind (image or face) are within ``threshold``
    bits, each plain or mirrored (so a mirrored copy matches). Closest matches are joined
    first, so each cluster's hash links are a minimum spanning tree of its matches.

    With ``verify`` (photo index, photo index → :class:`ganscreen.keypoints.Match` or None), a
    second stage then looks at looser pairs, within ``candidate_threshold`` bits, keeping
    each photo's ``candidates_per_photo`` closest: a pair not yet in one cluster is joined
    when ``verify`` confirms it (keypoints and pixels agree under a similarity transform:
    cropped and rotated copies). Candidates are tried closest first, ties by photo index,
    so the result is deterministic.
    """
    loose = max(threshold, candidate_threshold) if verify is not None else threshold
    own, knd, mir, ea, eb, dist = entry_pairs(hashes, loose)
    if not own.size and verify is None:
        return []
    strict = dist <= threshold
    sa, sb, sd = ea[strict], eb[strict], dist[strict]
    order = np.lexsort((own[sb], own[sa], sd))
    uf = UnionFind(len(hashes))
    links: list[Link] = []
    for t in order.tolist():
        i, j = int(sa[t]), int(sb[t])
        a, b = int(own[i]), int(own[j])
        if uf.union(a, b):
            links.append(Link(min(a, b), max(a, b), KINDS[int(knd[i])], int(sd[t]), bool(mir[i] ^ mir[j])))
    if verify is not None:
        # Hash candidates closest first, then keypoint-vote candidates most votes first.
        close = nearest_candidates(own, ea, eb, dist, candidates_per_photo).tolist()
        voted = [(a, b, None) for a, b, _ in vote_candidates(hashes, candidates_per_photo).tolist()]
        for a, b, d in close + voted:
            if uf.find(a) == uf.find(b):
                continue
            found = verify(a, b)
            if found is not None and found.verified:
                uf.union(a, b)
                links.append(Link(a, b, "keypoints", d, found.mirrored, found.inliers, found.correlation))
    groups = uf.groups()
    by_root: dict[int, list[Link]] = defaultdict(list)
    for link in links:
        by_root[uf.find(link.a)].append(link)
    return [(members, by_root[uf.find(members[0])]) for members in groups]


# --------------------------------------------------------------------------- summary


def summarise(records: Sequence[Mapping[str, Any]], hashes: Sequence[PhotoHashes | None],
              hash_errors: Sequence[str | None], accounts: Sequence[str | None], *,
              threshold: int = DEFAULT_THRESHOLD, paths: Sequence[str] = (), scan: str | None = None,
              roots: Sequence[str] = (), verify: Verifier | None = None) -> dict[str, Any]:
    """The campaign summary (the JSON document described in the module docstring).

    ``verify`` turns on the keypoint stage of :func:`cluster_photos` (``build`` passes one
    that re-reads the photos)."""
    n = len(records)
    if not (len(hashes) == len(hash_errors) == len(accounts) == n):
        raise ValueError("records, hashes, hash_errors and accounts must have the same length")
    clusters = cluster_photos(hashes, threshold, verify=verify)
    cluster_of: dict[int, int] = {}
    cluster_json = []
    for cid, (members, links) in enumerate(clusters):
        for m in members:
            cluster_of[m] = cid
        accs = sorted({a for a in (accounts[m] for m in members) if a is not None})
        cluster_json.append({"id": cid, "size": len(members), "members": members, "accounts": accs,
                             "spans_accounts": len(accs) > 1,
                             "links": [link.to_record() for link in links]})

    photos = []
    totals: Counter[str] = Counter()
    for i, record in enumerate(records):
        status = str(record.get("status"))
        verdict = record.get("verdict") if status == "ok" else None
        totals[status] += 1
        if (judged := outcome(status, verdict)) in VERDICTS:
            totals[judged] += 1
        flags = [portable_text(str(f)) for f in record.get("flags") or [] if isinstance(record.get("flags"), list)]
        score = record.get("score")
        photos.append({
            "id": i, "path": portable_text(str(record.get("path"))), "account": accounts[i],
            "status": status, "verdict": verdict,
            "score": score if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
            "flags": flags, "cluster": cluster_of.get(i),
            "hash": None if (photo_hash := hashes[i]) is None else photo_hash.to_record(),
            "hash_error": None if (hash_error := hash_errors[i]) is None else portable_text(hash_error),
        })

    tests = statistics(photos, [members for members, _ in clusters])
    account_list = account_tallies(photos, cluster_json)
    hashed = sum(h is not None for h in hashes)
    return {
        "schema": SCHEMA,
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ganscreen_version": __version__,
        "source": {"paths": [portable_text(str(p)) for p in paths],
                   "scan": None if scan is None else portable_text(scan),
                   "roots": [portable_text(str(r)) for r in roots]},
        "hash": {"algorithm": "imagehash.phash (64-bit DCT perceptual hash) of the whole image and "
                              "of the landmark-aligned face centre, plain and mirrored",
                 "bits": 64, "threshold": threshold, "kinds": list(KINDS), "mirrored": True,
                 "verification": None if verify is None else verification_parameters()},
        "totals": {"files": n, "ok": totals["ok"], "no_face": totals["no_face"], "error": totals["error"],
                   "gan": totals["gan"], "uncertain": totals["uncertain"], "real": totals["real"],
                   "hashed": hashed, "not_hashed": n - hashed, "clusters": len(cluster_json),
                   "photos_in_clusters": len(cluster_of), "accounts": len(account_list)},
        "photos": photos,
        "clusters": cluster_json,
        "statistics": tests,
        "accounts": account_list,
    }


def verification_parameters() -> dict[str, Any]:
    from ganscreen import keypoints as kp

    return {"method": "ORB keypoints, ratio test, RANSAC similarity transform (plain and mirrored), "
                      "then band-passed pixel correlation under that transform",
            "candidate_threshold": CANDIDATE_THRESHOLD, "candidates_per_photo": CANDIDATES_PER_PHOTO,
            "min_votes": kp.MIN_VOTES, "min_inliers": kp.MIN_INLIERS, "min_correlation": kp.MIN_CORRELATION}


def record_verifier(records: Sequence[Mapping[str, Any]]) -> Verifier:
    """Keypoint verification of candidate pairs, re-reading the records' images on demand."""
    from ganscreen.images import ImageLoadError, load_recorded
    from ganscreen.keypoints import FeatureCache

    def load(i: int) -> np.ndarray | None:
        try:  # the scan's reading rule, as for hashing
            return load_recorded(records[i]).rgb
        except ImageLoadError:
            return None

    return FeatureCache(load).verify


def build(records: Sequence[Mapping[str, Any]], *, roots: Sequence[str] | None = None,
          threshold: int = DEFAULT_THRESHOLD, paths: Sequence[str] = (), scan: str | None = None,
          on_photo: Callable[[], None] | None = None, verify: bool = True) -> dict[str, Any]:
    """Hash every record's image and summarise (``roots=None``: inferred from the paths);
    ``verify``: also join the cropped and rotated copies that keypoints confirm."""
    hashes: list[PhotoHashes | None] = []
    errors: list[str | None] = []
    for record in records:
        h, err = hash_record(record, keys=verify)
        hashes.append(h)
        errors.append(err)
        if on_photo is not None:
            on_photo()
    file_paths = [str(r.get("path")) for r in records]
    if roots is None:
        roots = default_roots(file_paths)
    return summarise(records, hashes, errors, assign_accounts(file_paths, roots), threshold=threshold,
                     paths=paths, scan=scan, roots=roots, verify=record_verifier(records) if verify else None)

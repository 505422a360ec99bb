#!/usr/bin/env python3
"""Rebuild a training-image collection from a manifest of public git repositories.

Developer script, never used by ganscreen at run time. The manifest is a TSV with the columns
``repo, commit, path, label, generator, license, sha256, file``: one row per image, naming the
GitHub repository (``owner/name``), the commit it was taken from, its path there, its label
(``real`` or ``gan``), the generator, the licence the repository states, the SHA-256 of its bytes
and its file name in the collection.

For each repository the script clones it (or reuses a clone under ``--clones``), reads every
listed path at the listed commit, checks the SHA-256 and writes ``OUT/<label>/<file>``; it then
writes ``OUT/SOURCES.tsv`` with the columns of the shared collection. A repository that cannot be
cloned, or a commit that cannot be found, is skipped with a warning. Images are read straight from
git objects, so no work tree is checked out. Clones are made with ``--filter=blob:none`` when the
server allows it, so only the listed images are downloaded.

Example:
    python scripts/build_collection.py --manifest scripts/data/round3_manifest.tsv \\
        --out /work/data/round3-rebuilt --clones /tmp/clones
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

MANIFEST_COLUMNS = ["repo", "commit", "path", "label", "generator", "license", "sha256", "file"]
SOURCES_COLUMNS = ["file", "label", "generator", "repo", "commit", "original_path", "license_if_stated"]
LABELS = ("real", "gan")


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def read_manifest(path: Path) -> list[dict[str, str]]:
    """Read and validate the manifest rows."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: missing columns {', '.join(missing)}")
        rows = []
        for n, row in enumerate(reader, start=2):
            if row["label"] not in LABELS:
                raise SystemExit(f"{path}:{n}: label must be one of {LABELS}, got {row['label']!r}")
            if "/" in row["file"] or row["file"] in ("", ".", ".."):
                raise SystemExit(f"{path}:{n}: bad file name {row['file']!r}")
            rows.append(row)
    return rows


def group_by_repo(rows: list[dict[str, str]]) -> OrderedDict[tuple[str, str], list[dict[str, str]]]:
    groups: OrderedDict[tuple[str, str], list[dict[str, str]]] = OrderedDict()
    for row in rows:
        groups.setdefault((row["repo"], row["commit"]), []).append(row)
    return groups


def git(args: list[str], git_dir: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    cmd = ["git"] + (["--git-dir", str(git_dir)] if git_dir else []) + args
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    return subprocess.run(cmd, capture_output=True, env=env, **kwargs)


def has_commit(git_dir: Path, commit: str) -> bool:
    return git(["cat-file", "-e", f"{commit}^{{commit}}"], git_dir).returncode == 0


def ensure_clone(repo: str, commit: str, clones: Path, url_base: str) -> Path | None:
    """Return a bare git directory holding ``commit`` of ``repo``, cloning or fetching if needed."""
    git_dir = clones / (repo.replace("/", "+") + ".git")
    url = f"{url_base.rstrip('/')}/{repo}.git"
    if not git_dir.exists():
        print(f"cloning {repo} ...", file=sys.stderr)
        res = git(["clone", "--bare", "--filter=blob:none", "--quiet", url, str(git_dir)])
        if res.returncode != 0:
            res = git(["clone", "--bare", "--quiet", url, str(git_dir)])
        if res.returncode != 0:
            warn(f"{repo}: cannot clone ({res.stderr.decode(errors='replace').strip()[:200]}); skipped")
            return None
    if not has_commit(git_dir, commit):
        git(["fetch", "--quiet", "origin", commit], git_dir)
    if not has_commit(git_dir, commit):
        warn(f"{repo}: commit {commit} not found; skipped")
        return None
    return git_dir


def read_blob(git_dir: Path, commit: str, path: str) -> bytes | None:
    res = git(["show", f"{commit}:{path}"], git_dir)
    return res.stdout if res.returncode == 0 else None


def build(rows: list[dict[str, str]], out: Path, clones: Path, url_base: str) -> tuple[int, int]:
    """Copy every manifest row into ``out``; return (written, failed)."""
    for label in LABELS:
        (out / label).mkdir(parents=True, exist_ok=True)
    written, failed = 0, 0
    sources: list[list[str]] = []
    for (repo, commit), items in group_by_repo(rows).items():
        git_dir = ensure_clone(repo, commit, clones, url_base)
        if git_dir is None:
            failed += len(items)
            continue
        for row in items:
            data = read_blob(git_dir, commit, row["path"])
            if data is None:
                warn(f"{repo}@{commit[:10]}: {row['path']} missing; skipped")
                failed += 1
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest != row["sha256"]:
                warn(f"{repo}: {row['path']} sha256 {digest[:12]} != manifest {row['sha256'][:12]}; skipped")
                failed += 1
                continue
            (out / row["label"] / row["file"]).write_bytes(data)
            sources.append(
                [
                    f"{row['label']}/{row['file']}",
                    row["label"],
                    row["generator"],
                    repo,
                    commit,
                    row["path"],
                    row["license"],
                ]
            )
            written += 1
    with (out / "SOURCES.tsv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(SOURCES_COLUMNS)
        writer.writerows(sources)
    return written, failed


def dry_run(rows: list[dict[str, str]]) -> None:
    for (repo, commit), items in group_by_repo(rows).items():
        labels = sorted({r["label"] for r in items})
        gens = sorted({r["generator"] for r in items})
        print(f"{repo}\t{commit}\t{len(items)} files\t{','.join(labels)}\t{','.join(gens)}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring for the manifest format.",
    )
    ap.add_argument(
        "--manifest",
        type=Path,
        default=Path(__file__).parent / "data" / "round3_manifest.tsv",
        help="manifest TSV (default: scripts/data/round3_manifest.tsv)",
    )
    ap.add_argument("--out", type=Path, help="output folder; gets real/, gan/ and SOURCES.tsv")
    ap.add_argument(
        "--clones",
        type=Path,
        default=None,
        help="folder of bare clones to reuse and add to (default: a temporary folder)",
    )
    ap.add_argument("--url-base", default="https://github.com", help="where repositories are cloned from")
    ap.add_argument("--dry-run", action="store_true", help="list the repositories and stop")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = read_manifest(args.manifest)
    if args.dry_run:
        dry_run(rows)
        return 0
    if args.out is None:
        raise SystemExit("--out is required unless --dry-run is given")
    if args.clones is not None:
        args.clones.mkdir(parents=True, exist_ok=True)
        written, failed = build(rows, args.out, args.clones, args.url_base)
    else:
        with tempfile.TemporaryDirectory(prefix="ganscreen-clones-") as tmp:
            written, failed = build(rows, args.out, Path(tmp), args.url_base)
    print(f"wrote {written} files to {args.out}; {failed} skipped", file=sys.stderr)
    return 0 if written or not rows else 1


if __name__ == "__main__":
    sys.exit(main())

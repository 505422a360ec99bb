"""scripts/make_splits.py: every source lands in the folders of its role, and only there."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_splits  # noqa: E402

HEADER = "file\tlabel\tgenerator\trepo"


def _collection(root: Path, keys: list[str], unlisted: tuple[str, ...] = ()) -> Path:
    root.mkdir()
    for label in ("gan", "real"):
        (root / label).mkdir()
    rows = [HEADER]
    for key in keys:
        (root / key).write_bytes(key.encode())
        rows.append(f"{key}\t{key.split('/')[0]}\tgen\towner/{key.split('/')[1].split('__')[0]}")
    for key in unlisted:  # a row whose file is absent
        rows.append(f"{key}\t{key.split('/')[0]}\tgen\towner/x")
    (root / "SOURCES.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != "SOURCES.tsv"}


def test_roles(tmp_path: Path) -> None:
    shared = _collection(tmp_path / "shared", ["gan/sg3perc__1.png", "gan/headshotcls__1.jpg",
                                               "real/sean__1.jpg", "real/ffhq__1.png"])
    round3 = _collection(tmp_path / "round3", ["gan/tedigan__1.png", "real/asiimov__1.jpg", "gan/kenton__1.png",
                                               "real/codeformer__1.png", "gan/ailab140k__1.jpg",
                                               "real/ailab140k__1.jpg", "real/utkface__1.jpg", "gan/sdfd__1.png"],
                         unlisted=("gan/tedigan__gone.png",))
    out = tmp_path / "out"
    counts = make_splits.lay_out([shared, round3], shared, out)

    assert _files(out / "unseen") == {"gan/tedigan__1.png", "real/asiimov__1.jpg"}
    assert _files(out / "fit") == {"gan/sg3perc__1.png", "real/sean__1.jpg", "gan/kenton__1.png",
                                   "real/codeformer__1.png"}
    assert _files(out / "round3-fit") == {"gan/kenton__1.png", "real/codeformer__1.png"}
    assert _files(out / "ailab140k") == {"gan/ailab140k__1.jpg", "real/ailab140k__1.jpg"}
    assert _files(out / "utkface") == {"real/utkface__1.jpg"}
    assert (out / "utkface" / "gan").is_dir()  # both label folders, even when empty
    assert counts["fit"] == {"gan": 2, "real": 2}
    # SOURCES.tsv holds exactly the folder's rows, header first
    table = (out / "fit" / "SOURCES.tsv").read_text(encoding="utf-8").splitlines()
    assert table[0] == HEADER
    assert sorted(line.split("\t")[0] for line in table[1:]) == sorted(_files(out / "fit"))
    # hard links, not copies
    assert (out / "unseen" / "gan" / "tedigan__1.png").samefile(round3 / "gan" / "tedigan__1.png")
    # a second run over the same folder is a no-op, not an error
    assert make_splits.lay_out([shared, round3], shared, out) == counts


def test_round_four_sources_go_to_unseen2_only(tmp_path: Path) -> None:
    shared = _collection(tmp_path / "shared", ["gan/sg3perc__1.png"])
    round3 = _collection(tmp_path / "round3", ["gan/tedigan__1.png", "real/asiimov__1.jpg"])
    round4 = _collection(tmp_path / "round4", ["gan/tpdnejung__000_1.jpg", "real/frllondon__neutral_1.jpg",
                                               "real/fakesurvey__person_1.png"])
    out = tmp_path / "out"
    counts = make_splits.lay_out([shared, round3, round4], shared, out)
    assert _files(out / "unseen2") == {"gan/tpdnejung__000_1.jpg", "real/frllondon__neutral_1.jpg",
                                       "real/fakesurvey__person_1.png"}
    assert _files(out / "unseen") == {"gan/tedigan__1.png", "real/asiimov__1.jpg"}
    assert counts["unseen2"] == {"gan": 1, "real": 2}
    for name in ("fit", "round3-fit", "ailab140k", "utkface"):
        assert not {k for k in _files(out / name) if "tpdne" in k or "frl" in k or "fakesurvey" in k}
    # A copy of an E photo in round 4 leaves E2, not E.
    leaks = tmp_path / "leaks.json"
    leaks.write_text(json.dumps({"leaks": [
        {"a": str(round3 / "real/asiimov__1.jpg"), "a_role": "unseen",
         "b": str(round4 / "real/frllondon__neutral_1.jpg"), "b_role": "unseen2"}]}), encoding="utf-8")
    out2 = tmp_path / "out2"
    make_splits.lay_out([shared, round3, round4], shared, out2, make_splits.leaked_keys(leaks))
    assert "real/frllondon__neutral_1.jpg" not in _files(out2 / "unseen2")
    assert "real/asiimov__1.jpg" in _files(out2 / "unseen")


def test_a_source_without_a_role_stops_the_layout(tmp_path: Path) -> None:
    shared = _collection(tmp_path / "shared", ["gan/sg3perc__1.png"])
    round3 = _collection(tmp_path / "round3", ["gan/tedigan__1.png", "gan/newsource__1.png"])
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="gan/newsource"):
        make_splits.lay_out([shared, round3], shared, out)
    assert not out.exists()


def test_unseen_and_fit_never_overlap() -> None:
    unseen, unseen2 = set(make_splits.UNSEEN_SOURCES), set(make_splits.UNSEEN2_SOURCES)
    fit = set(make_splits.FIT_SOURCES)
    assert not unseen & fit and not unseen2 & fit and not unseen & unseen2
    assert not (unseen | unseen2 | fit) & make_splits.ROUND3_TRAIN_SOURCES


def test_the_held_out_side_of_a_leak_is_left_out(tmp_path: Path) -> None:
    shared = _collection(tmp_path / "shared", ["real/headshotcls__1.png", "real/sean__1.jpg"])
    round3 = _collection(tmp_path / "round3", ["real/diffpir__1.png", "real/asiimov__1.jpg", "real/sam__1.jpg",
                                               "real/codeformer__1.png"])
    leaks = tmp_path / "leaks.json"
    leaks.write_text(json.dumps({"leaks": [
        # an E photo that is a training photo: out of unseen
        {"a": str(shared / "real/headshotcls__1.png"), "a_role": "train",
         "b": str(round3 / "real/diffpir__1.png"), "b_role": "unseen"},
        # an F photo that is a training photo: out of fit and round3-fit
        {"a": str(round3 / "real/sam__1.jpg"), "a_role": "fit",
         "b": str(shared / "real/headshotcls__1.png"), "b_role": "train"},
    ]}), encoding="utf-8")
    out = tmp_path / "out"
    make_splits.lay_out([shared, round3], shared, out, make_splits.leaked_keys(leaks))
    assert _files(out / "unseen") == {"real/asiimov__1.jpg"}
    assert _files(out / "fit") == {"real/sean__1.jpg", "real/codeformer__1.png"}
    assert _files(out / "round3-fit") == {"real/codeformer__1.png"}

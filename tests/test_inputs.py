"""Tests for ganscreen._inputs: finding the input files under the paths given to a scan.

The reading rule itself (FIFOs, swapped links, files outside the folder) is tested against
hostile files in test_hostile.py. Every file here is generated in ``tmp_path``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from PIL import Image

from ganscreen.images import InputFile, iter_inputs, load_image


def _touch_png(path: Path, colour=(0, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (2, 2), colour).save(path, "PNG")
    return path


def _rel(items, root: Path) -> list[str]:
    return [os.path.relpath(item.path, root) for item in items]


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "root"
    for rel in ("b.png", "a/z.jpg", "a/c/d.webp", "A.JPG", "x.jpg/inner.png", "a/c/e.Tiff"):
        _touch_png(root / rel)
    (root / "notes.txt").write_text("hello")
    (root / "Makefile").write_text("all:")
    (root / "a" / "c" / "readme.md").write_text("#")
    return root


def test_iter_inputs_sorted_depth_first(tree):
    items = list(iter_inputs([tree]))
    assert all(isinstance(i, InputFile) and i.error is None for i in items)
    assert _rel(items, tree) == [
        "A.JPG",
        os.path.join("a", "c", "d.webp"),
        os.path.join("a", "c", "e.Tiff"),
        os.path.join("a", "z.jpg"),
        "b.png",
        os.path.join("x.jpg", "inner.png"),
    ]
    # stable: a second walk gives the same order
    assert [i.path for i in iter_inputs([tree])] == [i.path for i in items]


def test_iter_inputs_directory_named_like_image_is_walked(tree):
    paths = [i.path for i in iter_inputs([tree])]
    assert tree / "x.jpg" not in paths
    assert tree / "x.jpg" / "inner.png" in paths


def test_iter_inputs_all_files_includes_other_suffixes(tree):
    rel = _rel(iter_inputs([tree], all_files=True), tree)
    assert rel == [
        "A.JPG",
        "Makefile",
        os.path.join("a", "c", "d.webp"),
        os.path.join("a", "c", "e.Tiff"),
        os.path.join("a", "c", "readme.md"),
        os.path.join("a", "z.jpg"),
        "b.png",
        "notes.txt",
        os.path.join("x.jpg", "inner.png"),
    ]


def test_iter_inputs_explicit_files_always_yielded(tree, tmp_path):
    notes = tree / "notes.txt"
    missing = tmp_path / "missing.bin"
    items = list(iter_inputs([notes, str(missing), tree / "b.png"]))
    assert [i.path for i in items] == [notes, missing, tree / "b.png"]
    assert all(i.error is None for i in items)


def test_iter_inputs_keeps_argument_order(tmp_path):
    one = _touch_png(tmp_path / "one" / "1.png")
    two = _touch_png(tmp_path / "two" / "2.png")
    assert [i.path for i in iter_inputs([tmp_path / "two", tmp_path / "one"])] == [two, one]


def test_iter_inputs_symlink_loop_terminates(tree):
    (tree / "a" / "up").symlink_to(tree, target_is_directory=True)  # a/up -> root
    (tree / "a" / "c" / "self").symlink_to(tree / "a" / "c", target_is_directory=True)
    expected = sorted(_rel(iter_inputs([tree]), tree))
    for follow in (False, True):
        items = list(itertools.islice(iter_inputs([tree], follow_symlinks=follow), 1000))
        assert len(items) < 1000, "symlink loop was entered"
        rel = _rel(items, tree)
        assert len(rel) == len(set(rel)), f"a file was yielded twice: {rel}"
        real = [os.path.realpath(i.path) for i in items]
        assert len(real) == len(set(real)), f"a file was yielded twice: {real}"
        assert sorted(rel) == expected


def test_iter_inputs_symlink_loop_given_directly(tmp_path):
    loop = tmp_path / "loop"
    loop.mkdir()
    _touch_png(loop / "only.png")
    (loop / "again").symlink_to(loop, target_is_directory=True)
    (loop / "parent").symlink_to(tmp_path, target_is_directory=True)
    for follow in (False, True):
        items = list(itertools.islice(iter_inputs([loop], follow_symlinks=follow), 100))
        assert [i.path for i in items] == [loop / "only.png"]


def test_iter_inputs_file_symlink_outside_root(tmp_path):
    outside = _touch_png(tmp_path / "elsewhere" / "secret.png")
    root = tmp_path / "root"
    _touch_png(root / "inside.png")
    (root / "link.png").symlink_to(outside)

    items = list(iter_inputs([root]))
    assert [i.path for i in items] == [root / "inside.png", root / "link.png"]
    assert items[0].error is None
    assert items[1].error is not None and "outside" in items[1].error
    assert "\n" not in items[1].error

    followed = list(iter_inputs([root], follow_symlinks=True))
    assert [i.path for i in followed] == [root / "inside.png", root / "link.png"]
    assert all(i.error is None for i in followed)
    assert load_image(followed[1].path).rgb.shape == (2, 2, 3)


def test_iter_inputs_file_symlink_inside_root_has_no_error(tmp_path):
    root = tmp_path / "root"
    real = _touch_png(root / "sub" / "real.png")
    (root / "alias.png").symlink_to(real)
    items = list(iter_inputs([root]))
    assert [(i.path, i.error) for i in items] == [(root / "alias.png", None), (real, None)]


def test_iter_inputs_broken_symlink_is_reported(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "dead.jpg").symlink_to(tmp_path / "nothing.jpg")
    (root / "dead.txt").symlink_to(tmp_path / "nothing.txt")  # not an image name: skipped
    items = list(iter_inputs([root]))
    assert [i.path for i in items] == [root / "dead.jpg"]
    assert items[0].error is not None and "broken" in items[0].error


def test_iter_inputs_folder_symlink_outside_followed_only_on_request(tmp_path):
    outside = _touch_png(tmp_path / "elsewhere" / "pic.png")
    root = tmp_path / "root"
    root.mkdir()
    (root / "ext").symlink_to(outside.parent, target_is_directory=True)
    assert list(iter_inputs([root])) == []
    followed = list(iter_inputs([root], follow_symlinks=True))
    assert [(i.path, i.error) for i in followed] == [(root / "ext" / "pic.png", None)]


def test_iter_inputs_odd_file_names(tmp_path):
    root = tmp_path / "root"
    names = ["with space.png", "ünïcödé-写真.jpg", "new\nline.png", "ends.JPEG"]
    for name in names:
        _touch_png(root / name)
    items = list(iter_inputs([root]))
    assert [i.path.name for i in items] == sorted(names)
    assert all(i.error is None for i in items)
    for item in items:
        assert load_image(item.path).rgb.shape == (2, 2, 3)

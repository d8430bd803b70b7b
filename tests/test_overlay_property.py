"""Law: a commit of an overlay, read back, equals the mounted merged view.

Random sequences of file operations run through a real kernel overlay; the
image committed from the upper dir, and the one committed from the merged
root compared with the base, must both read back as exactly what the
mounted merged directory shows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from builders import layer, write_docker_save
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from overlays import hash_tree, overlay, require_overlay, tree_view, unpack

from layerdiff import merged_view, open_image
from layerdiff.changes import read_container
from layerdiff.commit import commit_container, view_differences
from layerdiff.mounts import MountTable

NAMES = ["a", "b", "c"]
DIRS = ["", "d", "d/e", "f"]


def base_layer():
    return (
        layer()
        .dir("d")
        .file("d/a", b"lower a")
        .dir("d/e")
        .file("d/e/b", b"lower b")
        .symlink("d/c", "a")
        .dir("f")
        .file("f/a", b"fa")
        .hardlink("f/b", "f/a")
        .file("a", b"top")
    )


paths = st.builds(
    lambda d, n: f"{d}/{n}" if d else n, st.sampled_from(DIRS), st.sampled_from(NAMES)
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), paths, st.binary(max_size=40)),
        st.tuples(st.just("append"), paths, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("mkdir"), paths),
        st.tuples(st.just("remove"), paths),
        st.tuples(st.just("chmod"), paths, st.sampled_from([0o600, 0o755, 0o444])),
        st.tuples(st.just("symlink"), paths, st.sampled_from(NAMES)),
        st.tuples(st.just("link"), paths, paths),
        st.tuples(st.just("xattr"), paths, st.binary(min_size=1, max_size=6)),
        st.tuples(st.just("replace"), paths),
    ),
    max_size=12,
)


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()


def apply(merged: Path, ops) -> None:
    """Run operations; ones that make no sense in the current tree do nothing."""
    for op in ops:
        target = merged / op[1]
        try:
            if op[0] == "write":
                if target.is_dir() and not target.is_symlink():
                    continue
                target.unlink(missing_ok=True)
                target.write_bytes(op[2])
            elif op[0] == "append" and target.is_file() and not target.is_symlink():
                with open(target, "ab") as handle:
                    handle.write(op[2])
            elif op[0] == "mkdir":
                target.mkdir()
            elif op[0] == "remove":
                _remove(target)
            elif op[0] == "chmod" and not target.is_symlink():
                os.chmod(target, op[2])
            elif op[0] == "symlink":
                target.symlink_to(op[2])
            elif op[0] == "link" and (merged / op[2]).is_file():
                if not (merged / op[2]).is_symlink():
                    os.link(merged / op[2], target)
            elif op[0] == "xattr" and not target.is_symlink() and target.exists():
                os.setxattr(target, "user.test", op[2])
            elif op[0] == "replace" and target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
                target.mkdir()
                (target / "new").write_bytes(b"replaced")
        except (FileExistsError, FileNotFoundError, NotADirectoryError):
            continue


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_commit_of_random_operations_reads_back_as_the_merged_view(ops):
    require_overlay()
    with tempfile.TemporaryDirectory(prefix="layerdiff-prop-") as scratch:
        work = Path(scratch)
        data = base_layer().tar_bytes()
        image = write_docker_save(work / "base.tar", [data])
        unpack(data, work / "lower")
        with overlay(work / "lower", work / "ovl") as (upper, merged):
            apply(merged, ops)
            live = tree_view(merged)
            before = hash_tree(upper)
            container = read_container(
                str(upper), base=str(image), table=MountTable.defaults()
            )
            try:
                result = commit_container(
                    container, str(work / "out.tar"), fmt="oci", verify=True
                )
            finally:
                container.close()
            assert hash_tree(upper) == before
            from_merged = read_container(
                None, merged=str(merged), base=str(image), table=MountTable.defaults()
            )
            try:
                again = commit_container(
                    from_merged, str(work / "merged.tar"), fmt="docker", verify=True
                )
            finally:
                from_merged.close()

        assert result.problems == [] and again.problems == []
        for output in ("out.tar", "merged.tar"):
            img = open_image(str(work / output))
            try:
                assert view_differences(live, merged_view(img)) == [], output
            finally:
                img.close()

"""Where an output may go: never over an input, a folder or a device; a clean error for an unwritable folder or a
full disk; an interrupted write leaves nothing behind. Each case checks the input is intact and nothing is left.
The same for a whole output folder (atomic_folder): the previous one stays until the new one is complete."""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ODD_MODEL, REPO
from minibert import OutputError, cli
from minibert.io import atomic_folder, atomic_output, write_npy

TEXT = b"The cat sat on the mat.\nA dog barked.\n"


def encode(source, output, *extra) -> int:
    return cli.main(["encode", "--model", str(ODD_MODEL), "--input", str(source), "--output", str(output), *extra])


def assert_nothing_left(folder, *expected):
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(TEXT)
    return path


def test_output_same_file_as_input_is_refused(tmp_path, source, capsys):
    assert encode(source, source) == 1
    assert f"--output {source}: is the input {source}; refusing to overwrite an input" in capsys.readouterr().err
    os.link(source, tmp_path / "link.npy")  # another name, the same file: caught by inode
    assert encode(source, tmp_path / "link.npy") == 1
    assert "is the input" in capsys.readouterr().err
    assert source.read_bytes() == TEXT
    assert_nothing_left(tmp_path, "in.txt", "link.npy")


def test_output_through_a_symbolic_link_to_the_input_is_refused(tmp_path, source, capsys):
    (tmp_path / "alias.npy").symlink_to(source)
    assert encode(source, tmp_path / "alias.npy") == 1
    assert "is the input" in capsys.readouterr().err and source.read_bytes() == TEXT


def test_output_is_a_fifo_a_folder_or_a_device(tmp_path, source, capsys):
    os.mkfifo(tmp_path / "fifo.npy")
    assert encode(source, tmp_path / "fifo.npy") == 1
    assert "fifo.npy: exists and is not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo.npy").st_mode)
    (tmp_path / "folder").mkdir()
    assert encode(source, tmp_path / "folder") == 1
    assert "folder: is a folder; expected a file name" in capsys.readouterr().err
    names = ["in.txt", "fifo.npy", "folder"]
    if os.geteuid() == 0:  # a device node like /dev/null, made here so that nothing real is at risk
        os.mknod(tmp_path / "null.npy", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        assert encode(source, tmp_path / "null.npy") == 1
        assert "null.npy: exists and is not a regular file" in capsys.readouterr().err
        assert stat.S_ISCHR(os.stat(tmp_path / "null.npy").st_mode)
        names.append("null.npy")
    assert source.read_bytes() == TEXT
    assert_nothing_left(tmp_path, *names)


@pytest.fixture
def mount(tmp_path):
    """Mount a tmpfs with the given options at a fresh folder (skips where the test may not mount)."""
    mounted = []

    def make(options: str):
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", str(where)], check=True)


def test_unwritable_folder(tmp_path, source, capsys, mount):
    if os.geteuid() == 0:
        folder = mount("ro,size=64k")  # root may write anywhere a read-only mount does not forbid
    else:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
    assert encode(source, folder / "out.npy") == 1
    assert f"--output {folder / 'out.npy'}: folder {folder} is not writable" in capsys.readouterr().err
    assert list(folder.iterdir()) == [] and source.read_bytes() == TEXT


def test_full_disk(tmp_path, source, capsys, mount):
    folder = mount("size=64k")
    many = tmp_path / "many.txt"
    many.write_bytes(b"a sentence to fill the disk\n" * 400)  # 400 x 80 float32 = 128 KB > 64 KB
    (folder / "out.npy").write_bytes(b"previous")
    assert encode(many, folder / "out.npy") == 1
    assert capsys.readouterr().err.endswith("cannot write (the disk is full); nothing was written\n")
    assert_nothing_left(folder, "out.npy")
    assert (folder / "out.npy").read_bytes() == b"previous"


def test_full_disk_simulated(tmp_path, monkeypatch):
    """The same without a mount: the write that meets ENOSPC is an OutputError and the temp file goes."""
    def blocks():
        yield np.zeros((2, 4), np.float32)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutputError, match=r"out\.npy: cannot write \(the disk is full\); nothing was written$"):
        write_npy(tmp_path / "out.npy", blocks(), 4)
    assert_nothing_left(tmp_path)


def test_permissions_of_an_ordinary_file(tmp_path, source):
    old = os.umask(0o027)
    try:
        assert encode(source, tmp_path / "out.npy") == 0
        with atomic_output(tmp_path / "plain.txt") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "out.npy").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode) == 0o640


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from minibert.io import write_npy

    def blocks():
        yield np.ones((4, 8), np.float32)
        print("writing", flush=True)
        time.sleep(60)
        yield np.ones((4, 8), np.float32)

    write_npy(sys.argv[1], blocks(), 8)
""")


def interrupt_writer(writer: str, out: Path, signum: int) -> None:
    """Run `writer` on `out` in a child, send it `signum` once it is writing, and check that it failed."""
    process = subprocess.Popen([sys.executable, "-c", writer, str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=REPO)
    assert process.stdout.readline() == b"writing\n"
    assert len(list(out.parent.iterdir())) == 2  # the temp file or folder exists mid-write
    process.send_signal(signum)
    assert process.wait(timeout=30) != 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_write_leaves_nothing(tmp_path, signum):
    out = tmp_path / "out.npy"
    out.write_bytes(b"previous")
    interrupt_writer(WRITER, out, signum)
    assert_nothing_left(tmp_path, "out.npy")
    assert out.read_bytes() == b"previous"


def test_input_from_a_fifo_is_read_once(tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(TEXT))
    writer.start()
    assert encode(fifo, tmp_path / "out.npy") == 0
    writer.join()
    assert np.load(tmp_path / "out.npy").shape == (2, 80)


def test_input_from_a_process_substitution(tmp_path):
    out = tmp_path / "out.npy"
    command = (f"{sys.executable} -m minibert.cli encode --model {ODD_MODEL} --output {out} "
               "--input <(printf 'one\\ntwo\\nthree\\n')")
    done = subprocess.run(["bash", "-c", command], capture_output=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert np.load(out).shape == (3, 80)
    assert_nothing_left(tmp_path, "out.npy")


# ----------------------------------------------------------------------------------------------------------------
# A whole folder: atomic_folder
# ----------------------------------------------------------------------------------------------------------------

PREVIOUS = {"a.txt": b"previous", "sub": None, "sub/b.bin": b"\x00\x01"}


def tree(folder: Path) -> dict:
    """Every entry under `folder` by relative path: a file's bytes, None for a folder."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def fill(folder: Path, entries: dict) -> None:
    for name, data in entries.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is not None:
            path.write_bytes(data)


@pytest.fixture
def previous(tmp_path) -> Path:
    out = tmp_path / "out"
    fill(out, PREVIOUS)
    return out


def test_atomic_folder_writes_a_new_folder_and_replaces_the_previous_one(tmp_path, previous):
    old = os.umask(0o027)
    try:
        with atomic_folder(tmp_path / "new") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".new.") and list(tmp.iterdir()) == []
            fill(tmp, {"x.txt": b"new"})
    finally:
        os.umask(old)
    assert tree(tmp_path / "new") == {"x.txt": b"new"}
    assert stat.S_IMODE(os.stat(tmp_path / "new").st_mode) == 0o750  # an ordinary folder, not mkdtemp's 0o700
    with atomic_folder(previous) as tmp:
        fill(tmp, {"c.txt": b"replacement"})
    assert tree(previous) == {"c.txt": b"replacement"}  # replaced whole: no file of the previous folder is left
    (tmp_path / "empty").mkdir()
    with atomic_folder(tmp_path / "empty") as tmp:
        fill(tmp, {"d.txt": b"filled"})
    assert tree(tmp_path / "empty") == {"d.txt": b"filled"}
    assert_nothing_left(tmp_path, "new", "out", "empty")


def test_atomic_folder_error_keeps_the_previous_folder(tmp_path, previous):
    with pytest.raises(ZeroDivisionError):
        with atomic_folder(previous) as tmp:
            fill(tmp, {"a.txt": b"half", "c.txt": b"written"})
            1 / 0
    assert tree(previous) == PREVIOUS
    full = rf"^--output {re.escape(str(previous))}: cannot write \(the disk is full\); nothing was written$"
    with pytest.raises(OutputError, match=full):  # an OSError in the block: a clean error naming the output
        with atomic_folder(previous):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert tree(previous) == PREVIOUS
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(tmp_path / "never"):
            raise KeyboardInterrupt
    assert_nothing_left(tmp_path, "out")


def test_atomic_folder_refuses_a_file_a_fifo_an_input_and_a_missing_parent(tmp_path, previous):
    a_file = tmp_path / "file"
    a_file.write_bytes(b"mine")
    with pytest.raises(OutputError, match=rf"^--output {re.escape(str(a_file))}: is a file; expected a folder$"):
        with atomic_folder(a_file):
            pytest.fail("the block ran")
    with pytest.raises(FileExistsError, match=rf"^{re.escape(str(a_file))}: is a file; expected a folder$"):
        atomic_folder(a_file, option="", error=FileExistsError).__enter__()  # an API's own error, no option
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OutputError, match="fifo: exists and is not a folder"):
        atomic_folder(tmp_path / "fifo").__enter__()
    inputs = [("in.bin", os.stat(previous / "sub" / "b.bin"))]  # replacing the folder would remove this input
    with pytest.raises(OutputError, match=r"out: holds the input in\.bin; refusing to overwrite an input$"):
        atomic_folder(previous, inputs=inputs).__enter__()
    with pytest.raises(OutputError, match=rf"folder {re.escape(str(tmp_path / 'no'))} does not exist$"):
        atomic_folder(tmp_path / "no" / "out").__enter__()
    assert a_file.read_bytes() == b"mine" and stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)
    assert tree(previous) == PREVIOUS
    assert_nothing_left(tmp_path, "file", "fifo", "out")


def test_atomic_folder_callers_check_runs_first_and_again_before_the_rename(tmp_path, previous):
    seen = []

    def check(path: Path) -> None:
        seen.append(path)
        if len(seen) == 2:
            raise FileExistsError(f"{path}: something else appeared")

    with pytest.raises(FileExistsError, match="something else appeared"):
        with atomic_folder(previous, check=check) as tmp:
            fill(tmp, {"c.txt": b"new"})
    assert seen == [previous, previous] and tree(previous) == PREVIOUS
    assert_nothing_left(tmp_path, "out")


FOLDER_WRITER = textwrap.dedent("""
    import sys, time
    from minibert.io import atomic_folder

    with atomic_folder(sys.argv[1]) as tmp:
        (tmp / "a.txt").write_bytes(b"new")
        print("writing", flush=True)
        time.sleep(60)
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_atomic_folder_signal_mid_write_keeps_the_previous_folder(tmp_path, previous, signum):
    interrupt_writer(FOLDER_WRITER, previous, signum)
    assert tree(previous) == PREVIOUS
    assert_nothing_left(tmp_path, "out")


class Boom(Exception):
    """The failure a test injects into the block."""


ENTRIES = st.dictionaries(st.sampled_from(["a", "b", "sub/c"]), st.binary(max_size=32), max_size=3)
# None: the write succeeds; ("block", k): the block raises after writing k files; ("rename", n): the n-th
# os.rename of the swap fails (the one-step rename, moving the previous folder aside, or moving the new one in).
FAILURES = st.one_of(st.none(), st.tuples(st.just("block"), st.integers(0, 3)),
                     st.tuples(st.just("rename"), st.integers(0, 2)))


def failing_rename(n: int):
    """os.rename failing with EIO on its n-th call (from 0), the others real."""
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) - 1 == n:
            raise OSError(errno.EIO, "Input/output error")
        real(src, dst)

    return mock.patch("os.rename", rename)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(ENTRIES, FAILURES), min_size=1, max_size=6))
def test_atomic_folder_holds_the_previous_or_the_new_content_never_a_mix(writes):
    with tempfile.TemporaryDirectory() as work:
        out, current = Path(work) / "out", None  # None: no folder yet
        for entries, failure in writes:
            new = {**{"sub": None for name in entries if name.startswith("sub/")}, **entries}
            try:
                with failing_rename(failure[1] if failure and failure[0] == "rename" else -1):
                    with atomic_folder(out) as tmp:
                        for i, (name, data) in enumerate(entries.items()):
                            if failure == ("block", i):
                                raise Boom
                            fill(tmp, {name: data})
                        if failure and failure[0] == "block":
                            raise Boom
            except (Boom, OutputError):
                assert failure is not None
            else:
                current = new
            assert (tree(out) if out.exists() else None) == current
            assert sorted(os.listdir(work)) == ([] if current is None else ["out"])  # no temp or aside folder

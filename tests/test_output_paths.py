"""Where an output may go: never over an input, a folder or a device; a clean error for an unwritable folder or a
full disk; an interrupted write leaves nothing behind. Each case checks the input is intact and nothing is left."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from conftest import ODD_MODEL, REPO
from minibert import OutputError, cli
from minibert.io import atomic_output, write_npy

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


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_write_leaves_nothing(tmp_path, signum):
    out = tmp_path / "out.npy"
    out.write_bytes(b"previous")
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(out)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=REPO)
    assert process.stdout.readline() == b"writing\n"
    assert len(list(tmp_path.iterdir())) == 2  # the temp file exists mid-write
    process.send_signal(signum)
    assert process.wait(timeout=30) != 0
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

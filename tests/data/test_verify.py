"""The record of checked files lives in the cache, never in the data root, and `scratchnet data
verify` hashes every file again (a flipped byte behind a restored mtime is caught)."""
import hashlib
import os
import stat

import pytest

from scratchnet import cli
from scratchnet.data import dataset_path, registry, verify_dataset

BODY = bytes(range(256)) * 8  # 2,048 bytes


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """A registered dataset "toy" with two files under tmp_path/root/toy (and a fresh process memo)."""
    entry = {"description": "toy", "license": "none", "manual": "make it yourself",
             "files": {"a.bin": {"size": len(BODY), "sha256": hashlib.sha256(BODY).hexdigest()},
                       "sub/b.txt": {"size": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}}}
    monkeypatch.setattr(registry, "_registry", {"toy": entry})
    monkeypatch.setattr(registry, "_checked", {})
    root = tmp_path / "root"
    (root / "toy" / "sub").mkdir(parents=True)
    (root / "toy" / "a.bin").write_bytes(BODY)
    (root / "toy" / "sub" / "b.txt").write_bytes(b"hello")
    return root


def _tree(root):
    """Every path under root with its mode, size and mtime: what 'unchanged' means for a data root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.stat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def _make_read_only(root):
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o444)
        os.chmod(dirpath, 0o555)


def _make_writable(root):
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)


def test_a_read_only_data_root_is_never_written(toy, private_cache):
    _make_read_only(toy)
    before = _tree(toy)
    try:
        assert dataset_path("toy", root=toy, download=False) == toy / "toy"
        assert verify_dataset("toy", root=toy) == ([], [])
        assert _tree(toy) == before  # no record, no temporary file: nothing at all
        records = list((private_cache / "verified").iterdir())
        assert [p.name.split("-")[0] for p in records] == ["toy"]
        registry._checked.clear()  # a new process: the record in the cache spares the hashing
        hashed = []
        real = registry.sha256_file
        registry.sha256_file = lambda path, **kw: hashed.append(path) or real(path, **kw)
        try:
            assert verify_dataset("toy", root=toy) == ([], [])
        finally:
            registry.sha256_file = real
        assert hashed == []
    finally:
        _make_writable(toy)


def test_an_unwritable_cache_is_skipped_silently(toy, monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SCRATCHNET_CACHE", str(blocker / "cache"))  # mkdir fails, even for the superuser
    before = _tree(toy)
    assert verify_dataset("toy", root=toy) == ([], [])
    assert dataset_path("toy", root=toy, download=False) == toy / "toy"
    assert _tree(toy) == before and blocker.read_text() == "not a folder"


def test_records_are_keyed_by_the_data_roots_absolute_path(toy, private_cache, tmp_path):
    other = tmp_path / "other"
    (other / "toy" / "sub").mkdir(parents=True)
    (other / "toy" / "a.bin").write_bytes(bytes(len(BODY)))  # the right size, the wrong bytes
    (other / "toy" / "sub" / "b.txt").write_bytes(b"hello")
    assert verify_dataset("toy", root=toy) == ([], [])
    missing, bad = verify_dataset("toy", root=other)
    assert missing == [] and [rel for rel, _ in bad] == ["a.bin"]  # the first root's record does not vouch for it
    assert len(list((private_cache / "verified").iterdir())) == 2


def _flip_a_byte_keeping_mtime(path):
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # size and mtime as before
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def test_data_verify_catches_a_flipped_byte_with_a_restored_mtime(toy, capsys):
    assert cli.main(["data", "verify", "toy", "--root", str(toy)]) == 0
    out = capsys.readouterr().out
    assert "toy: 2 of 2 files match the registry" in out
    _flip_a_byte_keeping_mtime(toy / "toy" / "a.bin")
    assert cli.main(["data", "verify", "toy", "--root", str(toy)]) == 1
    out = capsys.readouterr().out
    assert f"BAD     {toy / 'toy' / 'a.bin'}: sha256 " in out and "b.txt" not in out
    assert "toy: 1 of 2 files match the registry, 1 differ" in out
    missing, bad = verify_dataset("toy", root=toy)  # the routine check no longer trusts the record either
    assert missing == [] and [rel for rel, _ in bad] == ["a.bin"]


def test_data_verify_rehashes_despite_the_record(toy, monkeypatch):
    assert verify_dataset("toy", root=toy) == ([], [])  # recorded
    registry._checked.clear()
    hashed = []
    real = registry.sha256_file
    monkeypatch.setattr(registry, "sha256_file", lambda path, **kw: hashed.append(path.name) or real(path, **kw))
    assert verify_dataset("toy", root=toy) == ([], []) and hashed == []
    assert verify_dataset("toy", root=toy, rehash=True) == ([], []) and sorted(hashed) == ["a.bin", "b.txt"]


def test_data_verify_reports_missing_files_and_every_file_when_verbose(toy, capsys):
    (toy / "toy" / "sub" / "b.txt").unlink()
    assert cli.main(["data", "verify", "--root", str(toy), "-v"]) == 1
    out = capsys.readouterr().out
    assert f"OK      {toy / 'toy' / 'a.bin'}" in out and f"MISSING {toy / 'toy' / 'sub' / 'b.txt'}" in out
    assert "1 missing" in out


def test_data_verify_unknown_name_and_empty_root(toy, capsys, tmp_path):
    assert cli.main(["data", "verify", "nope", "--root", str(toy)]) == 1
    assert "unknown dataset 'nope'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["data", "verify", "--root", str(empty)]) == 0
    out = capsys.readouterr().out
    assert "toy: not installed" in out and "no dataset found" in out
    assert stat.S_ISDIR(empty.stat().st_mode) and list(empty.iterdir()) == []

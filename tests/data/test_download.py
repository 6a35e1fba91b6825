"""download(): atomic, checked transfers against a local HTTP server, and the dataset-level fetch
(mirrors, archives, offline messages) through a toy registry entry."""
import hashlib
import io
import tarfile

import pytest

from scratchnet.data import dataset_path, registry, verify_dataset
from scratchnet.data.download import ChecksumError, DownloadError, download

BODY = bytes(range(256)) * 40  # 10,240 bytes
SHA = hashlib.sha256(BODY).hexdigest()


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


# -- download() ---------------------------------------------------------------------------------------
def test_good_file_is_moved_into_place(http_server, tmp_path):
    url = http_server.add("/data.bin", BODY)
    dest = tmp_path / "sub" / "data.bin"
    assert download(url, dest, sha256=SHA, size=len(BODY)) == dest
    assert dest.read_bytes() == BODY
    assert _leftovers(dest.parent) == ["data.bin"]  # no .part left behind


def test_wrong_sha256_is_rejected_and_removed(http_server, tmp_path):
    url = http_server.add("/data.bin", BODY)
    dest = tmp_path / "data.bin"
    with pytest.raises(ChecksumError, match="checksum mismatch") as info:
        download(url, dest, sha256="0" * 64)
    assert str(dest) in str(info.value)  # says where to put the file by hand
    assert _leftovers(tmp_path) == []


def test_wrong_size_is_rejected(http_server, tmp_path):
    url = http_server.add("/data.bin", BODY)
    with pytest.raises(ChecksumError, match="size mismatch"):
        download(url, tmp_path / "data.bin", sha256=SHA, size=len(BODY) + 1)
    assert _leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_nothing(http_server, tmp_path):
    url = http_server.add("/cut.bin", BODY, short=True)  # Content-Length 10240, then 5120 bytes and a close
    with pytest.raises(DownloadError, match="interrupted") as info:
        download(url, tmp_path / "cut.bin", sha256=SHA)
    assert not isinstance(info.value, ChecksumError)
    assert _leftovers(tmp_path) == []


def test_unreachable_url_is_a_network_error(closed_port_url, tmp_path):
    with pytest.raises(DownloadError, match="network error") as info:
        download(closed_port_url + "/data.bin", tmp_path / "data.bin", sha256=SHA)
    assert info.value.offline
    assert _leftovers(tmp_path) == []


def test_http_error_is_reported(http_server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download(http_server.url + "/nothing", tmp_path / "x.bin", sha256=SHA)
    assert not info.value.offline


def test_mirrors_are_tried_in_order(http_server, closed_port_url, tmp_path):
    bad = http_server.add("/bad.bin", b"not it")
    good = http_server.add("/good.bin", BODY)
    dest = tmp_path / "data.bin"
    download([closed_port_url + "/x.bin", bad, good], dest, sha256=SHA, size=len(BODY))
    assert dest.read_bytes() == BODY
    assert http_server.hits == ["/bad.bin", "/good.bin"]


# -- dataset_path() with a toy registry entry -------------------------------------------------------------
@pytest.fixture
def toy_registry(monkeypatch):
    """Replace the registry with an empty one the test fills; restored afterwards."""
    entries = {}
    monkeypatch.setattr(registry, "_registry", entries)
    monkeypatch.setattr(registry, "_checked", {})
    return entries


def _toy(base_urls):
    return {"description": "toy", "license": "none", "mirrors": list(base_urls),
            "files": {"a.bin": {"size": len(BODY), "sha256": SHA},
                      "sub/b.txt": {"size": 5, "sha256": hashlib.sha256(b"hello").hexdigest()}}}


def test_dataset_is_downloaded_then_reused(toy_registry, http_server, tmp_path):
    http_server.add("/toy/a.bin", BODY)
    http_server.add("/toy/sub/b.txt", b"hello")
    toy_registry["toy"] = _toy([http_server.url + "/toy/"])
    folder = dataset_path("toy", root=tmp_path)
    assert folder == tmp_path / "toy"
    assert (folder / "a.bin").read_bytes() == BODY and (folder / "sub" / "b.txt").read_bytes() == b"hello"
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["a.bin", "b.txt"]  # the record is elsewhere
    assert registry._memo_path(folder).is_file()
    registry._checked.clear()  # a new process: only the record in the cache is left
    assert dataset_path("toy", root=tmp_path) == folder
    assert len(http_server.hits) == 2  # present and checked: nothing fetched again


def test_present_file_with_wrong_checksum_is_reported_not_replaced(toy_registry, http_server, tmp_path):
    toy_registry["toy"] = _toy([http_server.url + "/toy/"])
    folder = tmp_path / "toy"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(bytes(len(BODY)))  # right size, wrong bytes
    (folder / "sub" / "b.txt").write_bytes(b"hello")
    with pytest.raises(RuntimeError, match="do not match the registry"):
        dataset_path("toy", root=tmp_path)
    assert (folder / "a.bin").read_bytes() == bytes(len(BODY))
    assert http_server.hits == []


def test_offline_message_names_dataset_files_urls_and_folder(toy_registry, closed_port_url, tmp_path):
    toy_registry["toy"] = _toy([closed_port_url + "/toy/"])
    with pytest.raises(RuntimeError) as info:
        dataset_path("toy", root=tmp_path)
    msg = str(info.value)
    assert "'toy'" in msg and "no network" in msg
    assert f"{tmp_path / 'toy'}/" in msg
    assert "a.bin" in msg and closed_port_url + "/toy/a.bin" in msg and SHA in msg
    assert not (tmp_path / "toy" / "a.bin").exists()


def test_download_false_says_where_files_go(toy_registry, http_server, tmp_path):
    toy_registry["toy"] = _toy([http_server.url + "/toy/"])
    with pytest.raises(FileNotFoundError, match="download=False") as info:
        dataset_path("toy", root=tmp_path, download=False)
    assert str(tmp_path / "toy") in str(info.value)
    assert http_server.hits == []


def test_manual_dataset_gives_instructions(toy_registry, tmp_path):
    toy_registry["toy"] = {"description": "toy", "license": "none", "manual": "ask the authors",
                           "files": {"a.bin": {"size": len(BODY), "sha256": SHA}}}
    with pytest.raises(FileNotFoundError, match="ask the authors"):
        dataset_path("toy", root=tmp_path)


def _tar_gz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():  # one member per pass
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _toy_archive(url):
    entry = _toy([])
    del entry["mirrors"]
    entry["archive"] = {"urls": [url], "format": "tar.gz", "prefix": "toy-abc123/"}
    return entry


def test_archive_members_are_unpacked_and_checked(toy_registry, http_server, tmp_path):
    body = _tar_gz({"toy-abc123/a.bin": BODY, "toy-abc123/sub/b.txt": b"hello", "toy-abc123/setup.py": b"x"})
    toy_registry["toy"] = _toy_archive(http_server.add("/abc123.tar.gz", body))
    folder = dataset_path("toy", root=tmp_path)
    assert (folder / "a.bin").read_bytes() == BODY and (folder / "sub" / "b.txt").read_bytes() == b"hello"
    assert not (folder / "setup.py").exists() and not (folder / "abc123.tar.gz").exists()
    assert verify_dataset("toy", root=tmp_path) == ([], [])


def test_archive_with_a_bad_member_keeps_only_checked_files(toy_registry, http_server, tmp_path):
    body = _tar_gz({"toy-abc123/a.bin": BODY, "toy-abc123/sub/b.txt": b"HELLO"})
    toy_registry["toy"] = _toy_archive(http_server.add("/abc123.tar.gz", body))
    with pytest.raises(RuntimeError, match="sub/b.txt"):
        dataset_path("toy", root=tmp_path)
    folder = tmp_path / "toy"
    assert (folder / "a.bin").read_bytes() == BODY
    assert sorted(p.name for p in folder.rglob("*") if p.is_file()) == ["a.bin"]

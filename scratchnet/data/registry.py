"""Where datasets live and how they get there: the registry (``datasets/registry.json``), the data
root, and ``dataset_path(name)``, which checks a dataset's files and downloads what is missing.

    root = data_root()                  # $SCRATCHNET_DATA, else the repository's datasets/, else ~/.cache/scratchnet
    folder = dataset_path("mnist")      # <root>/mnist, holding the upstream files, checked by sha256

Every dataset keeps its upstream file layout under ``<root>/<name>/``. A registry entry gives the
files (size and sha256 each) and where they come from: ``mirrors`` (base URLs tried in order, a
file's URL is base + its name, plus any ``urls`` of its own), or an ``archive`` (a tar.gz whose
members under ``prefix`` are the files), or ``manual`` (instructions only).

A file hashed once is not hashed again while its size, modification time and inode change time
stay the same: that record lives in a cache folder (``$SCRATCHNET_CACHE``, else
``~/.cache/scratchnet``), under ``verified/``, one file per dataset folder keyed by its absolute
path, never in the data root, which may be read-only or shared. ``verify_dataset(name,
rehash=True)`` (``scratchnet data verify``) ignores the record and hashes every file again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import tarfile
from pathlib import Path, PurePosixPath

from .download import DownloadError, sha256_file
from .download import download as fetch_file  # `download` is dataset_path's flag

__all__ = ["data_root", "cache_root", "dataset_path", "dataset_info", "list_datasets", "load_registry",
           "verify_dataset"]

_HERE = Path(__file__).resolve().parent
_REPO_DATASETS = _HERE.parents[1] / "datasets"  # <repo>/datasets next to the package (editable installs)
_REGISTRY_FILES = (_HERE / "registry.json", _REPO_DATASETS / "registry.json")  # packaged copy first
_MEMO_FORMAT = 2  # memo of checked files: {"folder": abs path, "files": {file: [size, mtime_ns, ctime_ns, sha256]}}
_registry = None  # the parsed registry, loaded once
_checked = {}  # absolute path -> (size, mtime_ns, ctime_ns, sha256) verified in this process


def load_registry() -> dict:
    """The dataset registry (parsed once): ``{name: {description, license, files, mirrors | archive | manual}}``."""
    global _registry
    if _registry is None:
        path = next((p for p in _REGISTRY_FILES if p.is_file()), None)
        if path is None:
            raise RuntimeError(f"scratchnet.data: the dataset registry is missing (looked for "
                               f"{' and '.join(str(p) for p in _REGISTRY_FILES)})")
        _registry = json.loads(path.read_text(encoding="utf-8"))
    return _registry


def list_datasets() -> list:
    """The names of the registered datasets."""
    return sorted(load_registry())


def dataset_info(name: str) -> dict:
    """The registry entry of ``name``; ValueError naming the known datasets if there is none."""
    registry = load_registry()
    if name not in registry:
        raise ValueError(f"scratchnet.data: unknown dataset {name!r}; registered: {', '.join(sorted(registry))}")
    return registry[name]


def data_root() -> Path:
    """The folder that holds one sub-folder per dataset.

    ``$SCRATCHNET_DATA`` if set; else ``datasets/`` of the repository when the package runs from a
    checkout (an editable install); else ``~/.cache/scratchnet``.
    """
    env = os.environ.get("SCRATCHNET_DATA")
    if env:
        return Path(env).expanduser()
    if (_REPO_DATASETS / "registry.json").is_file():
        return _REPO_DATASETS
    return Path.home() / ".cache" / "scratchnet"


def cache_root() -> Path:
    """The folder for scratchnet's own bookkeeping (the record of checked files, under ``verified/``):
    ``$SCRATCHNET_CACHE`` if set, else ``~/.cache/scratchnet``. Nothing fails when it is not writable."""
    env = os.environ.get("SCRATCHNET_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scratchnet"


def dataset_path(name: str, *, root=None, download=True) -> Path:
    """The folder ``<root>/<name>`` holding the dataset's upstream files, every file checked.

    Missing files are downloaded (``download=True``) from the registered mirrors or archive, each
    checked by size and sha256; with ``download=False`` a missing file raises FileNotFoundError.
    Either way the error says which files to put where by hand. A present file that does not match
    the registry raises RuntimeError (it is never overwritten silently).
    """
    entry = dataset_info(name)
    folder = (Path(root).expanduser() if root is not None else data_root()) / name
    missing, bad = verify_dataset(name, root=folder.parent)
    if bad:
        lines = "\n".join(f"  {folder / rel}: {why}" for rel, why in bad)
        raise RuntimeError(f"dataset {name!r}: these files do not match the registry (corrupt or another "
                           f"version):\n{lines}\nDelete them to download them again, or replace them with the "
                           f"upstream files.\n{_manual_help(name, entry, folder)}")
    if not missing:
        return folder
    if not download:
        raise FileNotFoundError(f"dataset {name!r}: {_count(missing)} missing from {folder} and download=False.\n"
                                f"{_manual_help(name, entry, folder, missing)}")
    if "mirrors" not in entry and "archive" not in entry:
        raise FileNotFoundError(f"dataset {name!r} cannot be downloaded automatically.\n"
                                f"{_manual_help(name, entry, folder, missing)}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RuntimeError(f"dataset {name!r}: cannot create {folder} to download into ({err}); set SCRATCHNET_DATA "
                           f"to a writable folder.\n{_manual_help(name, entry, folder, missing)}") from err
    try:
        if "archive" in entry:
            _fetch_archive(name, entry, folder, missing)
        else:
            for rel in missing:  # one file, from its first working mirror
                info = entry["files"][rel]
                fetch_file(_file_urls(entry, rel), folder / _safe_rel(rel), sha256=info["sha256"], size=info["size"])
                _remember(folder, entry, [rel])
    except DownloadError as err:
        reason = "no network connection?" if err.offline else "download failed"
        raise RuntimeError(f"dataset {name!r}: could not download it ({reason}).\n{err}\n\n"
                           f"{_manual_help(name, entry, folder, missing)}") from err
    return folder


def verify_dataset(name: str, *, root=None, rehash=False, on_file=None):
    """Check the files of ``name`` under ``<root>/<name>``: returns ``(missing, bad)``.

    ``missing`` lists the registered files that are absent; ``bad`` lists ``(file, reason)`` for
    those whose size or sha256 differ. A file verified before with the same size, mtime and ctime
    is not hashed again (a record in ``cache_root()/verified/`` and a per-process memo), unless
    ``rehash=True``, which hashes every present file (``scratchnet data verify``).
    ``on_file(file, problem)`` is called once per registered file, ``problem`` being None (it
    matches), "missing" or the reason it is bad.
    """
    entry = dataset_info(name)
    folder = (Path(root).expanduser() if root is not None else data_root()) / name
    memo = _read_memo(folder)
    missing, bad, changed = [], [], False
    for rel, info in entry["files"].items():  # one registered file per pass
        path = folder / _safe_rel(rel)
        problem = _check_file(path, info, memo.get(rel), rehash)
        if problem == "missing":
            missing.append(rel)
        elif problem is not None:
            bad.append((rel, problem))
        if problem is None:  # record the good ...
            stamp = list(_checked[str(path)])
            if memo.get(rel) != stamp:
                memo[rel], changed = stamp, True
        elif rel in memo:  # ... and forget the bad
            del memo[rel]
            changed = True
        if on_file is not None:
            on_file(rel, problem)
    if changed:
        _write_memo(folder, memo)
    return missing, bad


def _check_file(path: Path, info: dict, recorded, rehash: bool):
    """None when ``path`` matches the registry (hashed now, or recorded with the same stamp),
    "missing", or the reason it does not match."""
    try:
        st = path.stat()
    except FileNotFoundError:
        _checked.pop(str(path), None)
        return "missing"
    if st.st_size != info["size"]:
        _checked.pop(str(path), None)
        return f"{st.st_size:,} bytes, expected {info['size']:,}"
    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, info["sha256"])
    if not rehash and (recorded == list(stamp) or _checked.get(str(path)) == stamp):
        _checked[str(path)] = stamp
        return None
    digest = sha256_file(path)
    if digest != info["sha256"]:
        _checked.pop(str(path), None)
        return f"sha256 {digest}, expected {info['sha256']}"
    _checked[str(path)] = stamp
    return None


# -- fetching ------------------------------------------------------------------------------------------
def _file_urls(entry: dict, rel: str) -> list:
    """Every URL of one file, in the order to try: each mirror + its name, then its own ``urls``."""
    return [base + rel for base in entry.get("mirrors", [])] + list(entry["files"][rel].get("urls", []))


def _fetch_archive(name: str, entry: dict, folder: Path, missing: list) -> None:
    """Download the registered archive into ``folder``, unpack the missing files (each checked), remove it."""
    spec = entry["archive"]
    if spec.get("format", "tar.gz") != "tar.gz":
        raise ValueError(f"dataset {name!r}: unsupported archive format {spec.get('format')!r} (only tar.gz)")
    urls = spec["urls"]
    archive = folder / PurePosixPath(urls[0]).name
    # a GitHub archive is generated on request and has no stable checksum: the members are checked instead
    fetch_file(urls, archive, sha256=spec.get("sha256"), size=spec.get("size"))
    wanted = {spec.get("prefix", "") + rel: rel for rel in missing}  # member name -> file
    problems, done = [], []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one archive member per pass; only the registered files are written
                rel = wanted.pop(member.name, None)
                if rel is None or not member.isfile():
                    continue
                why = _extract_checked(tar.extractfile(member), folder / _safe_rel(rel), entry["files"][rel])
                if why:
                    problems.append(f"{rel}: {why}")
                else:
                    done.append(rel)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DownloadError(f"download: the archive {archive.name} from {urls[0]} is damaged ({err}); "
                            f"nothing unverified was kept") from err
    finally:
        archive.unlink(missing_ok=True)
        _remember(folder, entry, done)
    problems += [f"{rel}: not in the archive" for rel in wanted.values()]
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:10])
        if len(problems) > 10:
            shown += f"\n  ... and {len(problems) - 10} more"
        raise RuntimeError(f"dataset {name!r}: the archive {urls[0]} does not hold the registered files:\n{shown}\n"
                           f"The files that did match were kept in {folder}.")


def _extract_checked(src, dest: Path, info: dict):
    """Copy one archive member to ``dest`` through a part file, checked; returns a problem or None."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        with src, open(part, "wb") as out:
            for block in iter(lambda: src.read(1 << 16), b""):  # one chunk per pass
                out.write(block)
                digest.update(block)
                size += len(block)
        if size != info["size"] or digest.hexdigest() != info["sha256"]:
            part.unlink()
            return f"{size:,} bytes with sha256 {digest.hexdigest()}, expected {info['size']:,} bytes, {info['sha256']}"
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return None


# -- messages ------------------------------------------------------------------------------------------
def _count(files) -> str:
    return f"{len(files)} file" + ("" if len(files) == 1 else "s")


def _manual_help(name: str, entry: dict, folder: Path, files=None) -> str:
    """How to install ``name`` by hand: which files, from where, into which folder."""
    files = list(entry["files"]) if files is None else list(files)
    if "manual" in entry:
        return f"To install {name!r} by hand: {entry['manual']}\nPut the files into {folder}/"
    if "archive" in entry:
        spec = entry["archive"]
        tops = sorted({rel.split("/")[0] + ("/" if "/" in rel else "") for rel in files})  # README.md, recordings/
        lines = [f"To install {name!r} by hand: download {spec['urls'][0]}, unpack it, and copy "
                 f"{', '.join(tops)} from its folder {spec.get('prefix', '') or './'} into {folder}/ "
                 f"({_count(files)}, each checked by sha256)"]
    else:
        lines = [f"To install {name!r} by hand, put these files into {folder}/"]
        for rel in files:  # one file with its checksum and its URLs
            info = entry["files"][rel]
            lines.append(f"  {rel}  ({info['size']:,} bytes, sha256 {info['sha256']}) from any of:")
            lines += [f"      {u}" for u in _file_urls(entry, rel)]
    lines.append(f"or set SCRATCHNET_DATA to a folder that already holds {name}/.")
    return "\n".join(lines)


# -- the verification memo ---------------------------------------------------------------------------------
def _safe_rel(rel: str) -> Path:
    """A registry file name as a relative path that stays inside its dataset folder."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise ValueError(f"scratchnet.data: bad file name {rel!r} in the dataset registry")
    return Path(*parts)


def _memo_path(folder: Path) -> Path:
    """Where the record of ``folder``'s checked files lives: in the cache, keyed by the folder's absolute path."""
    key = hashlib.sha256(str(folder.absolute()).encode("utf-8")).hexdigest()[:16]
    return cache_root() / "verified" / f"{folder.name}-{key}.json"


def _read_memo(folder: Path) -> dict:
    """``{file: [size, mtime_ns, ctime_ns, sha256]}`` recorded for ``folder``; empty when there is none."""
    try:
        memo = json.loads(_memo_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if (not isinstance(memo, dict) or memo.get("format") != _MEMO_FORMAT
            or memo.get("folder") != str(folder.absolute()) or not isinstance(memo.get("files"), dict)):
        return {}
    return memo["files"]


def _write_memo(folder: Path, files: dict) -> None:
    """Save the record atomically in the cache; when the cache is not writable, skip it silently
    (the per-process memo still holds). The data folder itself is never written to."""
    path = _memo_path(folder)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": _MEMO_FORMAT, "folder": str(folder.absolute()), "files": files}
        tmp.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _remember(folder: Path, entry: dict, rels) -> None:
    """Record files that were just downloaded and checked, so the next call does not hash them again."""
    memo = _read_memo(folder)
    for rel in rels:  # one checked file per pass
        path = folder / _safe_rel(rel)
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, entry["files"][rel]["sha256"])
        memo[rel] = list(stamp)
        _checked[str(path)] = stamp
    if rels:
        _write_memo(folder, memo)

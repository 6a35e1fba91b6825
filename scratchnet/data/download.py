"""Fetch one file over HTTP(S) safely: stream to ``dest.part`` with a progress bar, check the size and
the sha256, then move it into place atomically. A failed, interrupted or mismatched transfer never
leaves a file that looks valid.

    download(["https://mirror-a/x.gz", "https://mirror-b/x.gz"], "datasets/mnist/x.gz",
             sha256="440fca...", size=9912422)
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..progress import progress as progress_bar

__all__ = ["download", "sha256_file", "DownloadError", "ChecksumError"]

_CHUNK = 1 << 16  # bytes per read
_TIMEOUT = 30.0  # seconds without data before a connection counts as dead
_USER_AGENT = "scratchnet-data/0.1 (python-urllib)"


class DownloadError(RuntimeError):
    """No URL could deliver the file (offline, refused, HTTP error, interrupted transfer).

    ``failures`` lists ``(url, kind, reason)`` for every URL tried, kind being "network" (no
    connection), "http" (an error status), "interrupted" or "checksum".
    """

    def __init__(self, message: str, failures=()):
        super().__init__(message)
        self.failures = list(failures)

    @property
    def offline(self) -> bool:
        """True when every URL failed for lack of a connection (no answer at all)."""
        return bool(self.failures) and all(kind == "network" for _, kind, _ in self.failures)


class ChecksumError(DownloadError):
    """The bytes arrived but their size or sha256 is not the registered one."""


def sha256_file(path, *, chunk=1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url, dest, *, sha256, size=None, progress=True) -> Path:
    """Download ``url`` (or the first working URL of a list of mirrors) to ``dest``; returns ``dest``.

    The bytes go to ``dest + ".part"``; when the transfer completes and the size (``size``, and the
    server's Content-Length) and ``sha256`` match, the part file is renamed to ``dest`` with
    ``os.replace``. Otherwise the part file is removed and the next mirror is tried. ``sha256=None``
    skips the digest check: only for archives whose members are checked one by one afterwards.
    ``progress``: a byte-count bar where the library shows bars (see ``scratchnet.progress``);
    False hides it.
    Raises ChecksumError when every failure was a mismatch, DownloadError otherwise; both say where
    to put the file by hand.
    """
    urls = [url] if isinstance(url, (str, os.PathLike)) else list(url)
    if not urls:
        raise ValueError("download: no URL given")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []  # (url, kind, reason) per mirror tried
    for u in urls:
        try:
            _fetch_one(str(u), dest, sha256=sha256, size=size, show=progress)
            return dest
        except ChecksumError as err:
            failures.append((str(u), "checksum", str(err)))
        except DownloadError as err:
            failures.append((str(u), "interrupted", str(err)))
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:  # OSError: sockets, timeouts
            failures.append((str(u), *_classify(err)))
    tried = "\n".join(f"  {u}\n    -> {why}" for u, _, why in failures)
    cls = ChecksumError if all(kind == "checksum" for _, kind, _ in failures) else DownloadError
    raise cls(f"download: could not fetch {dest.name}; tried:\n{tried}\n"
              f"Put the file by hand at {dest}" + (f" (sha256 {sha256})" if sha256 else ""), failures)


def _fetch_one(url: str, dest: Path, *, sha256, size, show) -> None:
    """One attempt: stream ``url`` into ``dest.part``, check it, rename it; the part file never survives a failure."""
    part = dest.with_name(dest.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response, open(part, "wb") as out:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else size
            bar = progress_bar(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                               leave=False, disable=None if show else True)
            with bar:
                for block in iter(lambda: response.read(_CHUNK), b""):  # one chunk of the body per pass
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
        if length and length.isdigit() and received != int(length):
            raise DownloadError(f"transfer interrupted: received {received:,} of {int(length):,} bytes")
        if size is not None and received != size:
            raise ChecksumError(f"size mismatch: received {received:,} bytes, expected {size:,}")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise ChecksumError(f"checksum mismatch: sha256 {digest.hexdigest()}, expected {sha256.lower()}")
        os.replace(part, dest)
    except BaseException:  # any failure, Ctrl-C included: leave nothing that looks like a finished file
        part.unlink(missing_ok=True)
        raise


def _classify(err) -> tuple:
    """(kind, short reason) of a failed request: an HTTP status, a dead connection, a local error."""
    if isinstance(err, urllib.error.HTTPError):
        return "http", f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return "network", f"network error: {err.reason}"
    if isinstance(err, http.client.HTTPException):  # IncompleteRead, RemoteDisconnected, ...
        return "interrupted", f"transfer interrupted: {type(err).__name__}: {err}"
    if isinstance(err, (ConnectionError, TimeoutError)):
        return "network", f"network error: {type(err).__name__}: {err}"
    return "local", f"{type(err).__name__}: {err}"  # e.g. the destination folder is not writable

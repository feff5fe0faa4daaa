"""Blob storage for ``file://`` and ``s3://`` URLs behind one small interface."""
from __future__ import annotations

import abc
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.response import StreamingBody

CHUNK_SIZE = 1024 * 1024
MiB = 1024 * 1024
# S3 rejects multipart uploads whose non-final parts are smaller than this.
S3_MIN_PART_SIZE = 5 * MiB
DEFAULT_REGION = "us-east-1"
# Bounded so that a dead endpoint fails within seconds instead of hanging a request or job.
DEFAULT_CLIENT_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=5,
    read_timeout=60,
)
# Marks in-flight FileStorage writes; list() hides them and keys may not use it,
# so a half-written upload can never be mistaken for (or collide with) a real key.
_TEMP_PREFIX = ".storage-tmp-"
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class StorageError(Exception):
    """A storage operation failed; the message names the key and the storage URL."""


class StorageKeyNotFound(StorageError):
    """The key does not exist in the storage."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative ``a/b/c.ext`` path, else raise ValueError."""
    # Keys often embed tenant-supplied names, so anything that could climb out of the
    # base location or be read differently by the two backends is refused outright.
    if not isinstance(key, str) or not key:
        raise ValueError(f"Invalid storage key {key!r}: must be a non-empty string")
    if "\\" in key or "\x00" in key:
        raise ValueError(f"Invalid storage key {key!r}: backslashes and NUL are not allowed")
    if key.startswith("/"):
        raise ValueError(f"Invalid storage key {key!r}: must be relative, not absolute")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"Invalid storage key {key!r}: empty, '.' and '..' segments are not allowed")
        if segment.startswith(_TEMP_PREFIX):
            raise ValueError(f"Invalid storage key {key!r}: {_TEMP_PREFIX!r} is reserved")
    return key


def _validate_prefix(prefix: str) -> str:
    # A prefix may be partial ("inv") or end in "/", but must obey the key rules otherwise.
    if prefix:
        validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _as_stream(stream: BinaryIO | bytes) -> BinaryIO:
    return io.BytesIO(stream) if isinstance(stream, (bytes, bytearray, memoryview)) else stream


class Storage(abc.ABC):
    """A flat namespace of binary blobs addressed by relative keys under ``url``."""

    url: str

    @abc.abstractmethod
    def put(self, key: str, stream: BinaryIO | bytes, *, content_type: str | None = None) -> int:
        """Store ``stream`` at ``key`` (replacing it) and return the number of bytes written."""

    @abc.abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Return a readable binary stream for ``key``; the caller closes it."""

    def get_bytes(self, key: str) -> bytes:
        with self.open(key) as stream:
            return stream.read()

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> int:
        """Store the local file ``path`` at ``key``; the file may be moved away in the process."""
        with path.open("rb") as handle:
            return self.put(key, handle, content_type=content_type)

    @contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        """A local file holding the key's bytes, for readers that need a path; the caller only reads it."""
        with tempfile.TemporaryDirectory(prefix="portal-storage-") as tmp:
            path = Path(tmp) / "blob"
            with self.open(key) as source, path.open("wb") as out:
                shutil.copyfileobj(source, out, CHUNK_SIZE)
            yield path

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Return all keys starting with ``prefix``, relative to ``url`` and sorted."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    @abc.abstractmethod
    def size(self, key: str) -> int: ...

    def close(self) -> None:
        """Release network resources; the storage must not be used afterwards."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class FileStorage(Storage):
    """Keys are files below a local directory; writes are atomic via rename."""

    def __init__(self, url: str, root: str | os.PathLike[str]) -> None:
        self.url = url
        # Resolved once so a later chdir() cannot silently move a relative storage.
        self.root = Path(root).absolute()

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _error(self, op: str, key: str, exc: BaseException) -> StorageError:
        return StorageError(f"File {op} of {key!r} in {self.url} failed: {exc}")

    def put(self, key: str, stream: BinaryIO | bytes, *, content_type: str | None = None) -> int:
        # content_type has no place on a filesystem; callers infer it from the key.
        path = self._path(key)
        source = _as_stream(stream)
        tmp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Same directory as the target so os.replace is a rename, never a copy.
            fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=".part", dir=path.parent)
            written = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK_SIZE):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                # Without fsync a crash after the rename can leave an empty file at the key.
                os.fsync(out.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
            return written
        except Exception as exc:
            # The stream is the caller's, so its failures are reported with the key too.
            raise self._error("put", key, exc) from exc
        finally:
            if tmp_name is not None:
                try:
                    os.unlink(tmp_name)
                except FileNotFoundError:
                    pass

    def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> int:
        """Moved into place by a rename when the file is on the storage's filesystem: no copy."""
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if os.stat(path).st_dev != os.stat(target.parent).st_dev:
                return super().put_file(key, path, content_type=content_type)
            os.chmod(path, 0o600)  # as put()'s temporary files are
            with path.open("rb") as handle:
                os.fsync(handle.fileno())  # as put() does: the bytes are on disk before the key shows them
            size = path.stat().st_size
            os.replace(path, target)
            return size
        except OSError as exc:
            raise self._error("put", key, exc) from exc

    @contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        """The stored file itself: no copy."""
        path = self._path(key)
        if not path.is_file():
            raise StorageKeyNotFound(f"Key {key!r} not found in {self.url}")
        yield path

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise StorageKeyNotFound(f"Key {key!r} not found in {self.url}") from exc
        except OSError as exc:
            raise self._error("open", key, exc) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        _validate_prefix(prefix)
        # Only walk the deepest directory the prefix pins down, not the whole tree.
        directory = prefix.rpartition("/")[0]
        start = self.root.joinpath(*directory.split("/")) if directory else self.root
        keys: list[str] = []
        try:
            for dirpath, _dirnames, filenames in os.walk(start, onerror=_walk_error):
                rel_dir = Path(dirpath).relative_to(self.root).as_posix()
                for name in filenames:
                    if name.startswith(_TEMP_PREFIX):
                        continue
                    key = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if key.startswith(prefix):
                        keys.append(key)
        except OSError as exc:
            raise self._error("list", prefix, exc) from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        # Empty parent directories are left in place: pruning them would race with a
        # concurrent put() that has just created the same directory.
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error("delete", key, exc) from exc

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            if not path.is_file():
                raise FileNotFoundError(str(path))
            return path.stat().st_size
        except FileNotFoundError as exc:
            raise StorageKeyNotFound(f"Key {key!r} not found in {self.url}") from exc
        except OSError as exc:
            raise self._error("size", key, exc) from exc


def _walk_error(exc: OSError) -> None:
    # A directory that is absent (or vanished mid-walk) simply holds no keys, but os.walk's
    # default of ignoring every error would also turn an unreadable tree into "no keys".
    if not isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        raise exc


class _CountingReader:
    """Feeds a caller's stream to s3transfer in full-sized reads, counting the bytes.

    It has no seek()/tell() on purpose: s3transfer then takes its streaming path, which
    keeps only a bounded number of parts in memory.
    """

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._eof = False
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        # s3transfer reads `threshold` bytes, treats a short result as the end of a small
        # object and then calls read() for "the rest". Filling every read (sockets and
        # pipes may return less) keeps that guess right, and after EOF the unbounded
        # read() never reaches the source at all.
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))
        parts: list[bytes] = []
        remaining = size
        while remaining > 0 and not self._eof:
            chunk = self._source.read(remaining)
            if not chunk:
                self._eof = True
                break
            parts.append(chunk)
            remaining -= len(chunk)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        self.count += len(data)
        return data


class _S3Body(io.RawIOBase):
    """Adapts botocore's StreamingBody to io so it can sit under a BufferedReader."""

    def __init__(self, body: StreamingBody, storage: S3Storage, key: str) -> None:
        self._body = body
        self._storage = storage
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        # RawIOBase's default would loop in 8 KiB steps.
        return self._read(None)

    def _read(self, size: int | None) -> bytes:
        try:
            return self._body.read(size)
        except (BotoCoreError, ClientError, OSError) as exc:
            raise self._storage._error("read", self._key, exc) from exc

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Storage(Storage):
    """Keys are objects in ``bucket`` under an optional key prefix."""

    def __init__(
        self,
        url: str,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client_config: Config | None = None,
        multipart_threshold: int = 16 * MiB,
        multipart_chunksize: int = 16 * MiB,
    ) -> None:
        if multipart_chunksize < S3_MIN_PART_SIZE:
            raise ValueError(f"multipart_chunksize must be at least {S3_MIN_PART_SIZE} bytes (S3 minimum part size)")
        if multipart_threshold < 1:
            raise ValueError("multipart_threshold must be positive")
        _validate_prefix(prefix)
        self.url = url
        self.bucket = bucket
        self.prefix = prefix.rstrip("/") + "/" if prefix else ""
        # A private session: creating clients from boto3's shared default session is not
        # thread-safe, while the resulting client is and is reused for every call.
        session = boto3.session.Session()
        self.client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=session.region_name or DEFAULT_REGION,
            config=client_config or DEFAULT_CLIENT_CONFIG,
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
            # The CRT transfer client ignores these settings and our client's endpoint/retries.
            preferred_transfer_client="classic",
        )
        self._bucket_verified = False

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _error(self, op: str, key: str, exc: BaseException) -> StorageError:
        return StorageError(f"S3 {op} of {key!r} {'to' if op == 'put' else 'in'} {self.url} failed: {exc}")

    def _lookup_error(self, op: str, key: str, exc: BotoCoreError | ClientError) -> StorageError:
        if not isinstance(exc, ClientError) or _error_code(exc) not in _NOT_FOUND_CODES:
            return self._error(op, key, exc)
        # HEAD answers a bare 404 for a missing bucket too; telling the two apart keeps a
        # misconfigured bucket from looking like an empty one.
        self._verify_bucket(key)
        return StorageKeyNotFound(f"Key {key!r} not found in {self.url}")

    def _verify_bucket(self, key: str) -> None:
        if self._bucket_verified:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = _error_code(exc)
            if code in _NOT_FOUND_CODES | {"NoSuchBucket"}:
                raise StorageError(
                    f"S3 access to {key!r} in {self.url} failed: bucket {self.bucket!r} does not exist"
                ) from exc
            if code in ("403", "AccessDenied"):
                # Object-level IAM grants often omit HeadBucket; the key's 404 is then all we know.
                return
            raise self._error("bucket check", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("bucket check", key, exc) from exc
        # Buckets are not deleted under a running portal; one successful check is enough.
        self._bucket_verified = True

    def put(self, key: str, stream: BinaryIO | bytes, *, content_type: str | None = None) -> int:
        object_key = self._key(key)
        reader = _CountingReader(_as_stream(stream))
        extra_args = {"ContentType": content_type} if content_type else None
        try:
            self.client.upload_fileobj(
                reader, self.bucket, object_key, ExtraArgs=extra_args, Config=self.transfer_config
            )
        except Exception as exc:
            # s3transfer surfaces botocore errors, its own wrappers and the caller's stream
            # errors alike; all of them mean "not stored".
            raise self._error("put", key, exc) from exc
        return reader.count

    def open(self, key: str) -> BinaryIO:
        object_key = self._key(key)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key)
        except (BotoCoreError, ClientError) as exc:
            raise self._lookup_error("open", key, exc) from exc
        return io.BufferedReader(_S3Body(response["Body"], self, key), buffer_size=CHUNK_SIZE)

    def _head(self, key: str) -> dict[str, Any]:
        object_key = self._key(key)
        try:
            return self.client.head_object(Bucket=self.bucket, Key=object_key)
        except (BotoCoreError, ClientError) as exc:
            raise self._lookup_error("head", key, exc) from exc

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except StorageKeyNotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    def list(self, prefix: str = "") -> list[str]:
        _validate_prefix(prefix)
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) :]
                    # "folder/" placeholder objects made by consoles are not blobs.
                    if key and not key.endswith("/"):
                        keys.append(key)
        except (BotoCoreError, ClientError) as exc:
            raise self._error("list", prefix, exc) from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        object_key = self._key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=object_key)
        except (BotoCoreError, ClientError) as exc:
            raise self._error("delete", key, exc) from exc

    def close(self) -> None:
        self.client.close()


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def open_storage(url: str, *, endpoint_url: str | None = None) -> Storage:
    """Open ``file:///abs``, ``file://relative`` (to the cwd) or ``s3://bucket[/prefix]``."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme == "file":
        path = url.split("://", 1)[1]
        if not path:
            raise ValueError(f"Storage URL {url!r} has no path")
        return FileStorage(url, path)
    if scheme == "s3":
        bucket, _, prefix = url.split("://", 1)[1].partition("/")
        if not bucket:
            raise ValueError(f"Storage URL {url!r} has no bucket")
        return S3Storage(url, bucket, prefix, endpoint_url=endpoint_url)
    raise ValueError(f"Unsupported storage URL {url!r}: use file:// or s3://")

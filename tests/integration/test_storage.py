"""Storage adapter behaviour on a real filesystem and on an S3 API served by moto over HTTP."""
from __future__ import annotations

import hashlib
import random
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from portal.storage import (
    FileStorage,
    S3Storage,
    Storage,
    StorageError,
    StorageKeyNotFound,
    open_storage,
)
from tests.support.s3 import moto_server

MiB = 1024 * 1024
BUCKET = "portal-storage-tests"
INVALID_KEYS = ["../x", "a/../../x", "/abs", "", "a\\b", "a//b", "./a"]


class Reader:
    """A non-seekable stream over ``data`` that records how it is read and can fail midway."""

    def __init__(
        self,
        data: bytes,
        *,
        fail_after: int | None = None,
        on_read: Callable[[], None] | None = None,
        max_read: int | None = None,
    ) -> None:
        self._data = data
        self._pos = 0
        self._fail_after = fail_after
        # Like a socket or a pipe, hand out less than asked for even before the end.
        self._max_read = max_read
        self._on_read = on_read
        self.read_sizes: list[int | None] = []

    def read(self, size: int | None = -1) -> bytes:
        self.read_sizes.append(size)
        if self._on_read is not None:
            self._on_read()
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError("simulated client disconnect")
        end = len(self._data) if size is None or size < 0 else self._pos + size
        if self._max_read is not None:
            end = min(end, self._pos + self._max_read)
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        admin = boto3.client("s3", endpoint_url=endpoint)
        admin.create_bucket(Bucket=BUCKET)
        admin.close()
        yield endpoint


@pytest.fixture
def s3_admin(s3_endpoint: str) -> Iterator[Any]:
    """A plain boto3 client, independent of the code under test, to inspect what landed in S3."""
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    yield client
    client.close()


@pytest.fixture
def s3_prefix() -> str:
    # Each test gets its own prefix in the shared bucket so tests cannot see each other's keys.
    return f"tests/{uuid.uuid4().hex}"


@pytest.fixture
def s3_storage(s3_endpoint: str, s3_prefix: str) -> Iterator[Storage]:
    store = open_storage(f"s3://{BUCKET}/{s3_prefix}", endpoint_url=s3_endpoint)
    yield store
    store.close()


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "file":
        return open_storage((tmp_path / "blobs").as_uri())
    # Looked up lazily so file-only runs (-k file) never start the moto server.
    return request.getfixturevalue("s3_storage")


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- behaviour shared by both backends -------------------------------------------------


def test_put_then_get_bytes_round_trips_bytes(storage: Storage) -> None:
    data = payload(1000)

    assert storage.put("invoices/2024/inv-1.pdf", data) == len(data)

    assert storage.get_bytes("invoices/2024/inv-1.pdf") == data


def test_put_then_open_round_trips_a_stream(storage: Storage) -> None:
    data = payload(3 * MiB + 17)

    assert storage.put("exports/catalog.csv", Reader(data), content_type="text/csv") == len(data)

    received = bytearray()
    with storage.open("exports/catalog.csv") as stream:
        while chunk := stream.read(256 * 1024):
            received += chunk
    assert bytes(received) == data


def test_put_of_empty_content_stores_an_empty_object(storage: Storage) -> None:
    assert storage.put("empty.txt", b"") == 0

    assert storage.exists("empty.txt")
    assert storage.get_bytes("empty.txt") == b""
    assert storage.size("empty.txt") == 0


def test_put_reads_the_stream_in_bounded_chunks(storage: Storage) -> None:
    data = payload(2 * MiB + 1)
    reader = Reader(data, max_read=64 * 1024)

    assert storage.put("big.bin", reader) == len(data)

    assert reader.read_sizes, "the stream was never read"
    assert all(size is not None and size > 0 for size in reader.read_sizes), "read the whole stream at once"
    assert storage.get_bytes("big.bin") == data


def test_put_replaces_an_existing_key(storage: Storage) -> None:
    storage.put("logo.png", b"old logo")

    storage.put("logo.png", b"new")

    assert storage.get_bytes("logo.png") == b"new"
    assert storage.size("logo.png") == 3


def test_size_reports_the_stored_length(storage: Storage) -> None:
    storage.put("a/b.bin", payload(12345))

    assert storage.size("a/b.bin") == 12345


def test_size_of_missing_key_raises_key_not_found(storage: Storage) -> None:
    with pytest.raises(StorageKeyNotFound, match="nope.bin"):
        storage.size("nope.bin")


def test_exists_is_true_only_for_stored_keys(storage: Storage) -> None:
    storage.put("a/b/c.txt", b"x")

    assert storage.exists("a/b/c.txt")
    assert not storage.exists("a/b/d.txt")
    assert not storage.exists("a/b"), "a 'directory' is not a key"


def test_list_returns_all_keys_sorted_and_relative(storage: Storage) -> None:
    for key in ["b.txt", "a/2.txt", "a/sub/3.txt", "a/1.txt", "ab.txt"]:
        storage.put(key, key.encode())

    assert storage.list() == ["a/1.txt", "a/2.txt", "a/sub/3.txt", "ab.txt", "b.txt"]


def test_list_with_prefix_returns_only_matching_nested_keys(storage: Storage) -> None:
    for key in ["b.txt", "a/2.txt", "a/sub/3.txt", "a/1.txt", "ab.txt"]:
        storage.put(key, key.encode())

    assert storage.list("a/") == ["a/1.txt", "a/2.txt", "a/sub/3.txt"]
    assert storage.list("a/sub/") == ["a/sub/3.txt"]
    assert storage.list("a") == ["a/1.txt", "a/2.txt", "a/sub/3.txt", "ab.txt"]
    assert storage.list("a/s") == ["a/sub/3.txt"]
    assert storage.list("missing/") == []


def test_list_of_an_empty_storage_is_empty(storage: Storage) -> None:
    assert storage.list() == []


def test_delete_removes_the_key(storage: Storage) -> None:
    storage.put("tmp/report.csv", b"1,2,3")
    storage.put("tmp/keep.csv", b"4,5,6")

    storage.delete("tmp/report.csv")

    assert not storage.exists("tmp/report.csv")
    assert storage.list() == ["tmp/keep.csv"]


def test_delete_of_a_missing_key_is_not_an_error(storage: Storage) -> None:
    storage.delete("never/stored.txt")

    assert not storage.exists("never/stored.txt")


def test_open_of_a_missing_key_raises_key_not_found(storage: Storage) -> None:
    with pytest.raises(StorageKeyNotFound, match="missing.pdf"):
        storage.open("missing.pdf")
    with pytest.raises(StorageKeyNotFound):
        storage.get_bytes("missing.pdf")


def test_local_file_holds_the_stored_bytes(storage: Storage) -> None:
    storage.put("uploads/catalog.csv", b"sku;title\nA-1;x\n")
    with storage.local_file("uploads/catalog.csv") as path:
        assert path.read_bytes() == b"sku;title\nA-1;x\n"


def test_put_file_stores_a_local_file(storage: Storage, tmp_path: Path) -> None:
    local = tmp_path / "catalog.csv"
    local.write_bytes(b"sku\nA-1\n")
    assert storage.put_file("uploads/catalog.csv", local) == 8
    assert storage.get_bytes("uploads/catalog.csv") == b"sku\nA-1\n"
    storage.put_file("uploads/catalog.csv", _written(tmp_path / "again.csv", b"sku\nA-2\n"))
    assert storage.get_bytes("uploads/catalog.csv") == b"sku\nA-2\n"


def test_files_put_into_file_storage_are_private(tmp_path: Path) -> None:
    storage = open_storage((tmp_path / "store").as_uri())
    storage.put("a/streamed.csv", b"x")
    storage.put_file("a/moved.csv", _written(tmp_path / "moved.csv", b"y"))
    modes = {key: (tmp_path / "store" / key).stat().st_mode & 0o777 for key in ("a/streamed.csv", "a/moved.csv")}
    assert modes == {"a/streamed.csv": 0o600, "a/moved.csv": 0o600}


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_local_file_of_a_missing_key_raises_key_not_found(storage: Storage) -> None:
    with pytest.raises(StorageKeyNotFound), storage.local_file("missing/catalog.csv"):
        pass


def test_key_not_found_is_a_storage_error() -> None:
    assert issubclass(StorageKeyNotFound, StorageError)


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_invalid_keys_are_rejected_by_every_operation(storage: Storage, key: str) -> None:
    operations: list[Callable[[], object]] = [
        lambda: storage.put(key, b"x"),
        lambda: storage.open(key),
        lambda: storage.get_bytes(key),
        lambda: storage.exists(key),
        lambda: storage.size(key),
        lambda: storage.delete(key),
    ]
    for operation in operations:
        with pytest.raises(ValueError, match="Invalid storage key"):
            operation()


@pytest.mark.parametrize("prefix", ["../", "/abs", "a\\"])
def test_list_rejects_unsafe_prefixes(storage: Storage, prefix: str) -> None:
    with pytest.raises(ValueError):
        storage.list(prefix)


def test_failing_stream_leaves_nothing_at_the_key(storage: Storage) -> None:
    reader = Reader(payload(3 * MiB), fail_after=MiB)

    with pytest.raises(StorageError, match="upload.bin"):
        storage.put("upload.bin", reader)

    assert not storage.exists("upload.bin")
    assert storage.list() == []


def test_failing_stream_keeps_the_previous_content(storage: Storage) -> None:
    storage.put("catalog.csv", b"previous version")

    with pytest.raises(StorageError):
        storage.put("catalog.csv", Reader(payload(3 * MiB), fail_after=MiB))

    assert storage.get_bytes("catalog.csv") == b"previous version"


def test_readers_see_the_old_content_while_a_put_is_in_progress(storage: Storage) -> None:
    storage.put("feed.xml", b"<old/>")
    seen_during_put: list[bytes] = []
    reader = Reader(payload(3 * MiB), on_read=lambda: seen_during_put.append(storage.get_bytes("feed.xml")))

    storage.put("feed.xml", reader)

    assert seen_during_put and set(seen_during_put) == {b"<old/>"}
    assert storage.get_bytes("feed.xml") == payload(3 * MiB)


# --- opening storages -------------------------------------------------------------------


@pytest.mark.parametrize("url", ["ftp://host/dir", "http://example.com/x", "gs://bucket", "/plain/path", "bucket/key"])
def test_unsupported_scheme_raises_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="Unsupported storage URL"):
        open_storage(url)


def test_s3_url_without_bucket_is_rejected() -> None:
    with pytest.raises(ValueError, match="no bucket"):
        open_storage("s3://")


def test_open_storage_picks_the_backend_from_the_scheme(tmp_path: Path, s3_endpoint: str) -> None:
    file_url = tmp_path.as_uri()
    s3_url = f"s3://{BUCKET}/some/prefix"

    file_store = open_storage(file_url)
    s3_store = open_storage(s3_url, endpoint_url=s3_endpoint)

    assert isinstance(file_store, FileStorage) and file_store.url == file_url
    assert isinstance(s3_store, S3Storage) and s3_store.url == s3_url
    s3_store.close()


# --- file backend -----------------------------------------------------------------------


def test_file_put_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = open_storage(tmp_path.as_uri())

    store.put("a/b/c.txt", payload(2 * MiB + 3))
    store.put("a/b/c.txt", b"replaced")
    store.put("d.txt", Reader(b"streamed"))

    assert files_under(tmp_path) == ["a/b/c.txt", "d.txt"]


def test_file_failing_put_leaves_no_file_and_no_temporary_file(tmp_path: Path) -> None:
    store = open_storage(tmp_path.as_uri())
    store.put("a/existing.txt", b"keep me")

    with pytest.raises(StorageError, match="new.bin"):
        store.put("a/new.bin", Reader(payload(3 * MiB), fail_after=2 * MiB))

    assert files_under(tmp_path) == ["a/existing.txt"]


def test_file_list_ignores_in_progress_uploads(tmp_path: Path) -> None:
    store = open_storage(tmp_path.as_uri())
    listed_during_put: list[list[str]] = []
    store.put("done.txt", b"x")

    store.put("big.bin", Reader(payload(2 * MiB + 1), on_read=lambda: listed_during_put.append(store.list())))

    assert listed_during_put and all(keys == ["done.txt"] for keys in listed_during_put)


def test_file_relative_url_is_resolved_against_the_cwd_at_open_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_storage("file://var/blobs")
    monkeypatch.chdir("/")

    store.put("x/y.txt", b"hello")

    assert (tmp_path / "var" / "blobs" / "x" / "y.txt").read_bytes() == b"hello"
    assert store.list() == ["x/y.txt"]


def test_file_list_of_a_base_directory_that_does_not_exist_is_empty(tmp_path: Path) -> None:
    assert open_storage((tmp_path / "not-yet").as_uri()).list() == []


# --- S3 backend -------------------------------------------------------------------------


@pytest.fixture
def multipart_store(s3_endpoint: str, s3_prefix: str) -> Iterator[S3Storage]:
    """An S3 storage that switches to multipart at S3's smallest part size, so tests stay small."""
    store = S3Storage(f"s3://{BUCKET}/{s3_prefix}", BUCKET, s3_prefix, endpoint_url=s3_endpoint,
                      multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    yield store
    store.close()


def test_s3_large_stream_is_uploaded_in_parts(multipart_store: S3Storage, s3_admin: Any, s3_prefix: str) -> None:
    store = multipart_store
    data = payload(12 * MiB + 5)

    # Short reads must still produce full 5 MiB parts: S3 rejects smaller non-final parts.
    written = store.put("exports/full.csv", Reader(data, max_read=256 * 1024))

    assert written == len(data)
    head = s3_admin.head_object(Bucket=BUCKET, Key=f"{s3_prefix}/exports/full.csv")
    # S3 gives multipart objects an ETag of "<md5-of-part-md5s>-<part count>".
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(data)
    assert hashlib.sha256(store.get_bytes("exports/full.csv")).digest() == hashlib.sha256(data).digest()


def test_s3_small_object_is_uploaded_in_one_request(s3_storage: Storage, s3_admin: Any, s3_prefix: str) -> None:

    s3_storage.put("small.txt", payload(MiB))

    head = s3_admin.head_object(Bucket=BUCKET, Key=f"{s3_prefix}/small.txt")
    assert "-" not in head["ETag"]


def test_s3_failed_multipart_upload_is_aborted(multipart_store: S3Storage, s3_admin: Any, s3_prefix: str) -> None:
    store = multipart_store

    with pytest.raises(StorageError, match="broken.bin"):
        store.put("broken.bin", Reader(payload(12 * MiB), fail_after=7 * MiB))

    assert not store.exists("broken.bin")
    uploads = s3_admin.list_multipart_uploads(Bucket=BUCKET, Prefix=s3_prefix).get("Uploads", [])
    assert uploads == []


def test_s3_put_records_the_content_type(s3_storage: Storage, s3_admin: Any, s3_prefix: str) -> None:

    s3_storage.put("img/logo.png", b"\x89PNG", content_type="image/png")

    head = s3_admin.head_object(Bucket=BUCKET, Key=f"{s3_prefix}/img/logo.png")
    assert head["ContentType"] == "image/png"


def test_s3_keys_live_under_the_url_prefix(s3_endpoint: str, s3_admin: Any, s3_prefix: str) -> None:
    tenant_a = open_storage(f"s3://{BUCKET}/{s3_prefix}/tenant-a/", endpoint_url=s3_endpoint)
    tenant_ab = open_storage(f"s3://{BUCKET}/{s3_prefix}/tenant-ab", endpoint_url=s3_endpoint)

    tenant_a.put("doc.txt", b"a")
    tenant_ab.put("doc.txt", b"ab")

    stored = [o["Key"] for o in s3_admin.list_objects_v2(Bucket=BUCKET, Prefix=s3_prefix)["Contents"]]
    assert stored == [f"{s3_prefix}/tenant-a/doc.txt", f"{s3_prefix}/tenant-ab/doc.txt"]
    assert tenant_a.list() == ["doc.txt"]
    assert tenant_a.get_bytes("doc.txt") == b"a"
    tenant_a.close()
    tenant_ab.close()


def test_s3_list_skips_folder_placeholder_objects(s3_storage: Storage, s3_admin: Any, s3_prefix: str) -> None:
    s3_admin.put_object(Bucket=BUCKET, Key=f"{s3_prefix}/folder/", Body=b"")

    s3_storage.put("folder/file.txt", b"x")

    assert s3_storage.list() == ["folder/file.txt"]


S3_OPERATIONS: dict[str, Callable[[Storage], object]] = {
    "put": lambda s: s.put("k/obj.bin", b"data"),
    "open": lambda s: s.open("k/obj.bin"),
    "exists": lambda s: s.exists("k/obj.bin"),
    "size": lambda s: s.size("k/obj.bin"),
    "list": lambda s: s.list("k/"),
    "delete": lambda s: s.delete("k/obj.bin"),
}


@pytest.mark.parametrize("operation", S3_OPERATIONS.values(), ids=S3_OPERATIONS.keys())
def test_s3_missing_bucket_raises_storage_error_naming_the_bucket(
    s3_endpoint: str, operation: Callable[[Storage], object]
) -> None:
    store = open_storage("s3://no-such-bucket-here/prefix", endpoint_url=s3_endpoint)

    with pytest.raises(StorageError, match="no-such-bucket-here") as excinfo:
        operation(store)

    # A missing bucket is misconfiguration, not an absent key.
    assert not isinstance(excinfo.value, StorageKeyNotFound)
    store.close()


@pytest.mark.parametrize("operation", S3_OPERATIONS.values(), ids=S3_OPERATIONS.keys())
def test_s3_unreachable_endpoint_raises_storage_error(
    s3_endpoint: str, operation: Callable[[Storage], object]
) -> None:
    store = open_storage(f"s3://{BUCKET}/prefix", endpoint_url=f"http://127.0.0.1:{closed_port()}")

    with pytest.raises(StorageError, match=f"s3://{BUCKET}/prefix") as excinfo:
        operation(store)

    assert not isinstance(excinfo.value, StorageKeyNotFound)
    store.close()


def test_s3_multipart_chunk_size_below_the_s3_minimum_is_rejected() -> None:
    with pytest.raises(ValueError, match="multipart_chunksize"):
        S3Storage(f"s3://{BUCKET}", BUCKET, multipart_chunksize=4 * MiB)

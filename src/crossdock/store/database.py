"""Where transactions run.

SQLite: one writer thread commits micro-batches of jobs, a savepoint per job, so one failing job
does not undo the others and the fsync cost is shared. Reads use per-thread connections (WAL lets
them run beside the writer).

PostgreSQL: several writer threads, one connection and one transaction per job; row locks taken in
one order (SKUs sorted, then orders) and conditional updates keep concurrent jobs safe, and jobs
that lose a race (deadlock, serialization failure, duplicate key) run again.
"""

from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from crossdock.domain.errors import Conflict, Overloaded
from crossdock.services.ports import UnitOfWork
from crossdock.store.clock import utcnow
from crossdock.store.uow import CatalogCache, SqlUnitOfWork

T = TypeVar("T")
Job = Callable[[UnitOfWork], T]
MAX_ATTEMPTS = 5
BUSY_TIMEOUT = 30.0  # seconds a connection waits for another process's write lock


class Database(Protocol):
    url: str
    dialect: str

    def submit(self, job: Job[T], deadline: float | None = None) -> Future[T]:
        """Queues a write. With a `deadline` (time.time()), a job still queued then is not run but
        fails with Overloaded: under saturation, a quick refusal instead of a late answer."""

    def run(self, job: Job[T]) -> T: ...
    def read(self, job: Job[T]) -> T: ...
    def add_commit_listener(self, listener: Callable[[], None]) -> None: ...
    def close(self) -> None: ...


@dataclass
class _Pending:
    job: Job[Any]
    future: Future[Any]
    deadline: float | None = None

    def start(self) -> bool:
        """Marks the job running; False if its caller cancelled it or its deadline passed."""
        if not self.future.set_running_or_notify_cancel():
            return False
        if self.deadline is not None and time.time() > self.deadline:
            self.future.set_exception(Overloaded("the write queue is too long: not applied, try again"))
            return False
        return True


Clock = Callable[[], datetime]


def open_database(url: str, *, writers: int = 8, clock: Clock = utcnow) -> Database:
    """`clock` gives each unit of work its `now` (hold expiry, timestamps); tests inject a fake one."""
    if url.startswith("sqlite:///"):
        return SqliteDatabase(url, clock=clock)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, writers=writers, clock=clock)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://...")


class _Base(ABC):
    url: str
    dialect: str

    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._local = threading.local()
        self._readers: list[Any] = []
        self._readers_lock = threading.Lock()
        self._cache = CatalogCache()
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._listeners: list[Callable[[], None]] = []

    def add_commit_listener(self, listener: Callable[[], None]) -> None:
        """`listener()` runs in the writer thread after a commit that wrote events: keep it quick."""
        self._listeners.append(listener)

    def _committed(self) -> None:
        if getattr(self._local, "wake", False):
            self._local.wake = False
            for listener in self._listeners:
                listener()

    def _uow(self, conn: Any) -> SqlUnitOfWork:
        return SqlUnitOfWork(conn, self.dialect, self._clock(), self._cache)

    def _execute(self, conn: Any, job: Job[T]) -> T:
        uow = self._uow(conn)
        result = job(uow)
        uow.complete()
        if uow.wake_relay:
            self._local.wake = True
        return result

    def submit(self, job: Job[T], deadline: float | None = None) -> Future[T]:
        if self._closed:
            raise RuntimeError("database is closed")
        fut: Future[T] = Future()
        self._queue.put(_Pending(job, fut, deadline))
        return fut

    def run(self, job: Job[T]) -> T:
        return self.submit(job).result()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=30)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    @abstractmethod
    def _connect(self) -> Any: ...

    def _reader(self) -> Any:
        """This thread's read connection (reads run in the caller's thread, beside the writers)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _start(self, n: int, target: Callable[[], None]) -> None:
        for i in range(n):
            t = threading.Thread(target=target, name=f"crossdock-writer-{i}", daemon=True)
            t.start()
            self._threads.append(t)


class SqliteDatabase(_Base):
    dialect = "sqlite"

    def __init__(self, url: str, batch_max: int = 256, clock: Clock = utcnow, *, writer: bool = True) -> None:
        super().__init__(clock)
        self.url = url
        self.path = url.removeprefix("sqlite:///")
        self.batch_max = batch_max
        # WAL is a property of the file, set once here: switching takes an exclusive lock, which
        # connections opened at the same moment (the writer, the relay's readers) would fight over.
        with contextlib.closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        if writer:  # without one, only reads (the writes go to a writer process: store.writer)
            self._start(1, self._write_loop)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT)
        # NORMAL in WAL mode survives a process crash (kill -9); only an OS crash can lose the last commits.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def read(self, job: Job[T]) -> T:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return job(self._uow(conn))
        finally:
            conn.execute("COMMIT")

    def _write_loop(self) -> None:
        conn = self._connect()
        conn.execute("PRAGMA busy_timeout = 0")  # _begin_immediate does its own, finer waiting
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop = False
            while len(batch) < self.batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._commit_batch(conn, [p for p in batch if p.start()])
            if stop:
                break
        conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        outcomes: list[tuple[_Pending, Any, BaseException | None]] = []
        try:
            _begin_immediate(conn)
            for pending in batch:
                outcomes.append((pending, *self._run_one(conn, pending.job)))
            conn.execute("COMMIT")
            self._committed()
        except BaseException as exc:  # the commit itself failed: nothing in the batch happened
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for pending in batch:
                pending.future.set_exception(exc)
            return
        for pending, result, error in outcomes:
            if error is None:
                pending.future.set_result(result)
            else:
                pending.future.set_exception(error)

    def _run_one(self, conn: sqlite3.Connection, job: Job[Any]) -> tuple[Any, BaseException | None]:
        for attempt in range(MAX_ATTEMPTS):
            conn.execute("SAVEPOINT job")
            try:
                result = self._execute(conn, job)
            except Conflict as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                if attempt == MAX_ATTEMPTS - 1:
                    return None, exc
                continue
            except Exception as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                return None, exc
            conn.execute("RELEASE job")
            return result, None
        raise AssertionError("unreachable")


class PostgresDatabase(_Base):
    dialect = "postgresql"

    def __init__(self, url: str, writers: int = 8, clock: Clock = utcnow) -> None:
        super().__init__(clock)
        self.url = url
        self._start(writers, self._write_loop)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=False)

    def read(self, job: Job[T]) -> T:
        conn = self._reader()
        try:
            return job(self._uow(conn))
        finally:
            conn.rollback()

    def _write_loop(self) -> None:
        import psycopg.errors as pe

        retryable = (pe.DeadlockDetected, pe.SerializationFailure, pe.UniqueViolation, Conflict)
        conn = self._connect()
        while True:
            pending = self._queue.get()
            if pending is None:
                break
            if not pending.start():
                continue
            for attempt in range(MAX_ATTEMPTS):
                try:
                    result = self._execute(conn, pending.job)
                    conn.commit()
                    self._committed()
                except retryable as exc:
                    conn.rollback()
                    if attempt == MAX_ATTEMPTS - 1:
                        pending.future.set_exception(exc)
                    continue
                except BaseException as exc:
                    conn.rollback()
                    pending.future.set_exception(exc)
                    if conn.closed or conn.broken:
                        conn = self._connect()
                    break
                pending.future.set_result(result)
                break
        conn.close()


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """Takes the write lock. Another process (`serve --workers N`) may hold it for one batch: retry
    within a fraction of a millisecond rather than through SQLite's busy handler, whose sleeps grow
    to 100 ms and would dominate tail latency."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    delay = 0.0001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.002)

"""One writer process for several API processes (`crossdock serve --workers N` on SQLite).

The API processes send their write jobs (module-level functions bound with `partial`, pickled)
over a Unix socket; the writer runs them on its database's write path and sends the outcomes back.
An API process then spends its core on HTTP and the writer its core on transactions, without the
two sharing a GIL. Reads stay in the API processes: SQLite in WAL mode lets any process read
beside the writer.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import socket
import struct
import sys
import threading
from concurrent.futures import Future
from functools import partial
from typing import Any, BinaryIO

from crossdock.store.database import Database, Job, SqliteDatabase, T

_HEADER = struct.Struct("!I")


def _frame(message: Any) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


def _send(sock: socket.socket, lock: threading.Lock, frame: bytes) -> None:
    with lock:
        sock.sendall(frame)


def _receive(stream: BinaryIO) -> Any:
    """The next message, or None when the other side has gone."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    payload = stream.read(_HEADER.unpack(header)[0])
    return pickle.loads(payload)


class WriterServer:
    """Runs in the `serve` process: takes jobs from API processes onto `db`'s write path."""

    def __init__(self, db: Database, path: str) -> None:
        self.db = db
        self.path = path
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen()
        threading.Thread(target=self._accept, name="crossdock-writer-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._serve, args=(conn,), name="crossdock-writer-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        lock = threading.Lock()
        with conn, conn.makefile("rb") as stream:
            while (message := _receive(stream)) is not None:
                request_id, job, deadline = message
                self.db.submit(job, deadline).add_done_callback(partial(self._reply, conn, lock, request_id))

    @staticmethod
    def _reply(conn: socket.socket, lock: threading.Lock, request_id: int, done: Future[Any]) -> None:
        error = done.exception()
        try:
            frame = _frame((request_id, error is None, done.result() if error is None else error))
        except Exception as exc:  # an outcome that cannot be pickled must still answer the caller
            frame = _frame((request_id, False, RuntimeError(f"the outcome could not be sent: {exc!r}")))
        with contextlib.suppress(OSError):  # the API process has gone; its client saw the connection drop
            _send(conn, lock, frame)

    def close(self) -> None:
        self.listener.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


class RemoteDatabase(SqliteDatabase):
    """In an API process: reads from the SQLite file here, writes through the writer process."""

    def __init__(self, url: str, path: str) -> None:
        super().__init__(url, writer=False)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self._send_lock = threading.Lock()
        self._pending: dict[int, Future[Any]] = {}
        self._ids = itertools.count()
        threading.Thread(target=self._receive_loop, name="crossdock-writer-client", daemon=True).start()

    def submit(self, job: Job[T], deadline: float | None = None) -> Future[T]:
        if self._closed:
            raise RuntimeError("database is closed")
        fut: Future[T] = Future()
        # Running from now on: once sent, only the writer can refuse it (past its deadline), so the
        # caller must not believe a cancel here stopped it.
        fut.set_running_or_notify_cancel()
        request_id = next(self._ids)
        self._pending[request_id] = fut
        # The deadline travels with the job: only the writer knows whether it started in time.
        _send(self.sock, self._send_lock, _frame((request_id, job, deadline)))
        return fut

    def _receive_loop(self) -> None:
        with contextlib.suppress(OSError), self.sock.makefile("rb") as stream:  # reset: the writer died
            while (message := _receive(stream)) is not None:
                request_id, ok, outcome = message
                fut = self._pending.pop(request_id)
                if ok:
                    fut.set_result(outcome)
                else:
                    fut.set_exception(outcome)
        if not self._closed:
            # The writer (the `serve` process) is gone: this process can no longer change anything,
            # so it stops rather than keep answering reads from a server that is down.
            print("crossdock: the writer process has gone; stopping", file=sys.stderr, flush=True)
            os._exit(70)

    def close(self) -> None:
        super().close()
        self.sock.close()

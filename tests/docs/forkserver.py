"""A fork server that makes the docs examples fast: ``focusnet`` and ``python`` without the imports.

Each example command would otherwise spend most of its time importing torch and Lightning (seconds
per command on a busy 2-core machine). The server imports them once; the ``focusnet`` and ``python``
shims that the examples find first on ``PATH`` (see fences.py) send their command line, working
folder, environment and standard streams to it over a Unix socket, and the server forks a child
that runs the command exactly as a fresh process would (``focusnet.cli.main`` for ``focusnet``, the
script or ``-c`` code for ``python``), with the caller's streams, folder and environment, and
returns its exit code. Every command runs in a fresh fork of the pristine server, so no state
passes from one command to the next. Without the server (``FOCUSNET_DOCS_SERVER`` unset or not
answering) the shims run the command themselves.

Start: ``python -m tests.docs.forkserver SOCKET`` (the ``docs_server`` fixture does it).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import traceback

ENV_VAR = "FOCUSNET_DOCS_SERVER"
CHILD_SECONDS = 600  # a command that runs longer is stopped


# ------------------------------------------------------------------------------------- client side
def request(kind: str, argv: list[str]) -> int | None:
    """Run ``kind`` (``focusnet`` or ``python``) with ``argv`` in the server; None when there is none."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError:
        return None
    with sock:
        payload = json.dumps({"kind": kind, "argv": argv, "cwd": os.getcwd(), "env": dict(os.environ),
                              "shim": os.path.abspath(sys.argv[0])}).encode()
        socket.send_fds(sock, [struct.pack("!Q", len(payload))], [0, 1, 2])
        sock.sendall(payload)
        reply = b""
        while len(reply) < 4:
            chunk = sock.recv(4 - len(reply))
            if not chunk:
                return 1  # the child died without an exit code
            reply += chunk
    return struct.unpack("!i", reply)[0]


# ------------------------------------------------------------------------------------- server side
def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client went away")
        data += chunk
    return data


def _run_command(message: dict) -> int:
    """In the forked child: become the caller's process and run its command; returns the exit code."""
    from tests.docs.fences import shrink_argv

    os.chdir(message["cwd"])
    os.environ.clear()
    os.environ.update(message["env"])
    main_module = sys.modules["__main__"]
    main_module.__spec__ = None  # so Lightning's DDP launcher re-runs the shim, not this server
    argv = list(message["argv"])
    if message["kind"] == "focusnet":
        from focusnet.cli import main

        sys.argv = [message["shim"], *argv]
        return int(main(shrink_argv(argv)) or 0)
    import runpy

    if argv[0] == "-c":
        sys.argv = ["-c", *argv[2:]]
        sys.path[0] = ""
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        return 0
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
    runpy.run_path(argv[0], run_name="__main__")
    return 0


def _child(conn: socket.socket, listener: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.alarm(CHILD_SECONDS)
    listener.close()
    code = 1
    try:
        (header,), fds = _recv_header(conn)
        message = json.loads(_recv_exact(conn, header))
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        try:
            code = _run_command(message)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - report it as a crashed process would
            traceback.print_exc()
            code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        try:
            conn.sendall(struct.pack("!i", code))
        finally:
            os._exit(code)


def _recv_header(conn: socket.socket) -> tuple[tuple[int], list[int]]:
    data, fds, _, _ = socket.recv_fds(conn, 8, 3)
    if len(data) < 8:
        data += _recv_exact(conn, 8 - len(data))
    return struct.unpack("!Q", data), fds


def serve(path: str) -> None:
    """Import everything the examples use, then fork a child per request until terminated."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib  # noqa: F401
    import torch

    torch.set_num_threads(1)
    import lightning  # noqa: F401

    import focusnet.cli  # noqa: F401
    import focusnet.data.cache  # noqa: F401
    import focusnet.data.synthetic  # noqa: F401
    import focusnet.engine.evaluate  # noqa: F401
    import focusnet.engine.export  # noqa: F401
    import focusnet.engine.module  # noqa: F401
    import focusnet.engine.predict  # noqa: F401
    import focusnet.engine.scoring  # noqa: F401
    import focusnet.engine.train  # noqa: F401
    import tests.docs.fences  # noqa: F401

    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        pass
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    listener.settimeout(5.0)
    parent = os.getppid()
    print("ready", flush=True)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:  # the test session is gone: do not outlive it
                return
            continue
        conn.settimeout(None)
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            _child(conn, listener)
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])

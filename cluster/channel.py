"""The exchange channel between a braid's leader (the fusion actor) and its member actors.

One TCP connection per member, leader to member (a star: members never talk to each other). Hidden states
and updates cross it as raw bytes whose shape both ends already know, so an exchange is one ``sendall`` and
one ``recv_into``: the same wire cost as a gloo send/recv pair, without a process group. A peer that dies
closes its socket, which the other end sees at once as ``ChannelClosed``; a peer that hangs trips the
per-operation timeout as ``ChannelTimeout``. Either way no wait is unbounded, and replacing one member
means re-dialling one connection, not rebuilding a group across every rank.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
from typing import Any

import torch

_LEN = struct.Struct("!I")
STATE, RESULT, ERROR, UPDATE, NO_UPDATE = b"S", b"R", b"E", b"U", b"N"  # one-byte tags


class ChannelError(ConnectionError):
    """The peer is gone or did not answer in time."""


class ChannelClosed(ChannelError):
    pass


class ChannelTimeout(ChannelError):
    pass


def parse_dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} on the channel")
    return dtype


class TensorChannel:
    """Framed messages (a JSON header plus tensors) and raw tensors of known shape over one socket."""

    def __init__(self, sock: socket.socket, timeout: float):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small frames must not wait for Nagle
        sock.settimeout(timeout)
        self.sock = sock
        self.timeout = timeout
        self.sent = self.received = 0  # bytes, for measuring what an exchange costs

    @classmethod
    def connect(cls, host: str, port: int, timeout: float) -> TensorChannel:
        try:
            return cls(socket.create_connection((host, port), timeout=timeout), timeout)
        except TimeoutError as e:
            raise ChannelTimeout(f"no answer from {host}:{port} within {timeout:g}s") from e
        except OSError as e:
            raise ChannelClosed(f"cannot reach {host}:{port}: {e}") from e

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    # -- raw bytes ----------------------------------------------------------------------------------------
    def _send(self, *parts: bytes | memoryview) -> None:
        try:
            for part in parts:
                self.sock.sendall(part)
                self.sent += len(part)
        except TimeoutError as e:
            raise ChannelTimeout(f"send timed out after {self.timeout:g}s") from e
        except OSError as e:
            raise ChannelClosed(f"peer closed the channel: {e}") from e

    def _recv_into(self, view: memoryview) -> None:
        got = 0
        try:
            while got < len(view):
                n = self.sock.recv_into(view[got:])
                if n == 0:
                    raise ChannelClosed("peer closed the channel")
                got += n
                self.received += n
        except TimeoutError as e:
            raise ChannelTimeout(f"no data from the peer within {self.timeout:g}s") from e
        except ChannelClosed:
            raise
        except OSError as e:
            raise ChannelClosed(f"peer closed the channel: {e}") from e

    def _recv(self, n: int) -> bytearray:
        buf = bytearray(n)
        self._recv_into(memoryview(buf))
        return buf

    # -- tensors of known shape (the hot path) ------------------------------------------------------------
    def send_tensor(self, tag: bytes, tensor: torch.Tensor) -> None:
        flat = tensor.detach().contiguous().reshape(-1).cpu().view(torch.uint8)  # bf16 has no numpy type
        self._send(tag + memoryview(flat.numpy()).tobytes())

    def send_tag(self, tag: bytes) -> None:
        self._send(tag)

    def recv_tag(self) -> bytes:
        return bytes(self._recv(1))

    def recv_tensor(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        numel = 1
        for s in shape:
            numel *= s
        buf = self._recv(numel * torch.empty((), dtype=dtype).element_size())
        return torch.frombuffer(buf, dtype=torch.uint8).view(dtype).reshape(shape)

    # -- framed messages ----------------------------------------------------------------------------------
    def send_msg(self, header: dict[str, Any], tensors: list[torch.Tensor] | tuple = ()) -> None:
        tensors = [t.detach().contiguous().cpu() for t in tensors]
        header = {**header, "_tensors": [[str(t.dtype), list(t.shape)] for t in tensors]}
        raw = json.dumps(header).encode()
        parts = [_LEN.pack(len(raw)) + raw]
        parts += [memoryview(t.reshape(-1).view(torch.uint8).numpy()).tobytes() for t in tensors]
        self._send(b"".join(parts))

    def recv_msg(self, idle: bool = False) -> tuple[dict[str, Any], list[torch.Tensor]]:
        """``idle=True`` waits without a limit for the header (a member waiting for its next request)."""
        if idle:
            self.sock.settimeout(None)
        try:
            (n,) = _LEN.unpack(self._recv(_LEN.size))
        finally:
            self.sock.settimeout(self.timeout)
        header = json.loads(self._recv(n))
        tensors = [self.recv_tensor(tuple(shape), parse_dtype(dt)) for dt, shape in header.pop("_tensors")]
        return header, tensors

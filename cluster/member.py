"""A braid member served over the exchange channel: the plain class a member actor wraps.

The member holds its model and its KV caches (one per generation session, kept in LRU order). Its leader
sends a request (the member's inputs and which session cache to extend); the member runs its unmodified HF
forward, and at each fusion block the hook sends the block's hidden state to the leader and adds the update
it gets back, exactly as the in-process lockstep does with greenlets. Only the anchor sends logits back.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from braid.model_wrapper import ModelWrapper
from cluster.channel import ERROR, NO_UPDATE, RESULT, STATE, ChannelError, TensorChannel

log = logging.getLogger(__name__)
MAX_SESSIONS = 8


class MemberServer:
    """Serves one member to one leader at a time; a new connection replaces a broken one."""

    def __init__(self, member: ModelWrapper, host: str = "127.0.0.1", timeout: float = 60.0):
        self.member = member.freeze()
        self.timeout = timeout
        self.caches: OrderedDict[str, Any] = OrderedDict()
        self.listener = socket.create_server((host, 0))
        self.host, self.port = host, self.listener.getsockname()[1]
        self.requests = 0  # forwards served: lets tests check that no work bypassed the channel
        self._closed = False
        self._thread: threading.Thread | None = None

    def info(self) -> dict[str, Any]:
        m = self.member
        dtype = next(m.model.parameters()).dtype
        return {"hidden_size": m.hidden_size, "dtype": str(dtype), "num_parameters": m.num_parameters}

    def start(self) -> MemberServer:
        self._thread = threading.Thread(target=self._accept_loop, name="braid-member", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    # -- connection handling ------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return  # the listener was closed
            chan = TensorChannel(sock, self.timeout)
            try:
                self.serve(chan)
            except ChannelError as e:
                log.info("leader connection ended: %s", e)  # the leader will dial again
            finally:
                chan.close()

    def serve(self, chan: TensorChannel) -> None:
        """Answer one leader until it says goodbye. The first message says where the fusion points are."""
        setup, _ = chan.recv_msg(idle=True)
        points_at = {int(layer): points for layer, points in setup["points_at"].items()}
        while True:
            msg, tensors = chan.recv_msg(idle=True)
            if msg["op"] == "bye":
                return
            if msg["op"] == "forward":
                self.forward(chan, msg, tensors, points_at)
            elif msg["op"] == "drop":
                self.caches.pop(msg["session"], None)

    @torch.no_grad()
    def forward(
        self, chan: TensorChannel, msg: dict[str, Any], tensors: list[torch.Tensor], points_at: dict
    ) -> None:
        self.requests += 1
        inputs = dict(zip(msg["names"], tensors, strict=True))
        cache = self._cache(msg.get("session"), msg.get("past", 0))
        try:
            with self.member.inject({layer: self._exchange(chan, pts) for layer, pts in points_at.items()}):
                out = self.member.forward(
                    **inputs, past_key_values=cache, use_cache=cache is not None, output_hidden_states=False
                )
        except ChannelError:
            raise
        except Exception as e:  # the leader is waiting for a state: tell it why none will come
            chan.send_tag(ERROR)
            chan.send_msg({"error": f"{type(e).__name__}: {e}"})
            return
        chan.send_tag(RESULT)
        chan.send_msg({"ok": True}, [out.logits] if msg.get("logits") else [])

    def _cache(self, session: str | None, past: int) -> Any:
        if session is None:
            return None
        cache = self.caches.pop(session, None)
        if cache is None:
            cache = self.member.new_cache()
        ModelWrapper.crop_cache(cache, past)  # the leader may have rolled this member back (re-tokenized)
        self.caches[session] = cache
        while len(self.caches) > MAX_SESSIONS:
            self.caches.popitem(last=False)
        return cache

    @staticmethod
    def _exchange(chan: TensorChannel, points: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
        def edit(h: torch.Tensor) -> torch.Tensor:  # h: (B, T_m, D_m)
            for _ in points:
                chan.send_tensor(STATE, h)
                if chan.recv_tag() != NO_UPDATE:
                    h = h + chan.recv_tensor(tuple(h.shape), h.dtype).to(h.device)
            return h

        return edit

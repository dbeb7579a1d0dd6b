"""A braid member served over the exchange channel: the plain class a member actor wraps.

The member holds its model and its KV caches (one per generation session, kept in LRU order). Its leader
sends a request (the member's inputs and which session cache to extend); the member runs its unmodified HF
forward, and at each fusion block the hook sends the block's hidden state to the leader and adds the update
it gets back, exactly as the in-process lockstep does with greenlets. The anchor sends its logits back (and
its final hidden state for an output-level strategy); another member sharing the anchor's tokenizer sends
its logits or only their top-k. A member with its own tokenizer runs its character-level bridge here, where
its weights are, and sends the anchor-vocabulary top-k that the bridge gives.
"""

from __future__ import annotations

import contextlib
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
        self.bridge: Any = None  # the character-level bridge, once the leader asks for one
        self.bridge_sessions: OrderedDict[str, Any] = OrderedDict()
        self._closed = False
        self._thread: threading.Thread | None = None

    def info(self) -> dict[str, Any]:
        m = self.member
        dtype = next(m.parameters()).dtype
        return {"hidden_size": m.hidden_size, "dtype": str(dtype), "num_parameters": m.num_parameters,
                "reads_stepwise": m.reads_stepwise}  # fmt: skip

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
        if setup.get("bridge"):
            self._setup_bridge(setup["bridge"])
        while True:
            msg, tensors = chan.recv_msg(idle=True)
            if msg["op"] == "bye":
                return
            if msg["op"] == "forward":
                self.forward(chan, msg, tensors, points_at)
            elif msg["op"] == "drop":
                self.caches.pop(msg["session"], None)
                self.bridge_sessions.pop(msg["session"], None)
            elif msg["op"] in ("bridge_texts", "bridge_steps"):
                self.bridge_request(chan, msg)

    @torch.no_grad()
    def forward(
        self, chan: TensorChannel, msg: dict[str, Any], tensors: list[torch.Tensor], points_at: dict
    ) -> None:
        self.requests += 1
        inputs = dict(zip(msg["names"], tensors, strict=True))
        cache = self._cache(msg.get("session"), msg.get("past", 0))
        try:
            with contextlib.ExitStack() as stack:
                stack.enter_context(
                    self.member.inject({layer: self._exchange(chan, pts) for layer, pts in points_at.items()})
                )
                final = stack.enter_context(self.member.capture_final_hidden()) if msg.get("final") else None
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
        names, tensors = _results(out, final, msg)
        chan.send_msg({"ok": True, "results": names}, tensors)

    # -- the bridge ---------------------------------------------------------------------------------------
    def _setup_bridge(self, spec: dict[str, Any]) -> None:
        from braid.bridge import BridgeParams, CharBridge
        from braid.model_wrapper import load_tokenizer

        params = BridgeParams.model_validate(spec["params"])
        if self.bridge is None or self.bridge.params != params:
            self.bridge = CharBridge(self.member, load_tokenizer(spec["anchor"]), params)
            self.bridge_sessions.clear()

    @torch.no_grad()
    def bridge_request(self, chan: TensorChannel, msg: dict[str, Any]) -> None:
        """``bridge_texts``: anchor id rows -> per row (R, T, K) ids and probs; ``bridge_steps``: a generation
        session's next visible texts -> (R, N, K) ids and probs."""
        try:
            if msg["op"] == "bridge_texts":
                out = self.bridge.texts_dists(msg["rows"])
                tensors = [x for ids, probs in out for x in (ids.int(), probs)]
            else:
                session = self.bridge_sessions.pop(msg["session"], None) or self.bridge.session()
                self.bridge_sessions[msg["session"]] = session
                while len(self.bridge_sessions) > MAX_SESSIONS:
                    self.bridge_sessions.popitem(last=False)
                ids, probs = session.steps(msg["texts"])
                tensors = [ids.int(), probs]
        except Exception as e:  # the leader waits for an answer: tell it why there is none
            chan.send_tag(ERROR)
            chan.send_msg({"error": f"{type(e).__name__}: {e}"})
            return
        chan.send_tag(RESULT)
        chan.send_msg({"ok": True}, tensors)

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


def _results(out: Any, final: Any, msg: dict[str, Any]) -> tuple[list[str], list[torch.Tensor]]:
    """What the leader asked for: logits, the final hidden state, or the top-k of the distribution over
    the first ``vocab`` ids (the anchor's vocabulary)."""
    names, tensors = [], []
    if msg.get("logits"):
        names.append("logits")
        tensors.append(out.logits)
    if final is not None:
        names.append("final_hidden")
        tensors.append(final.value)
    if msg.get("top_k"):
        log_probs = torch.log_softmax(out.logits[..., : msg["vocab"]].float(), -1)
        values, ids = log_probs.topk(min(msg["top_k"], log_probs.shape[-1]), dim=-1)
        names += ["top_ids", "top_probs"]
        tensors += [ids.int(), values.exp()]
    return names, tensors

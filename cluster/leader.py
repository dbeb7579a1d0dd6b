"""The channel runner: a braid whose members are servers (``cluster.member``) reached over TCP channels.

``leader_braid`` builds a plain ``BraidedLLM`` whose members are stand-ins (``RemoteMember``: tokenizer and
shape facts, no weights) and whose ``ChannelRunner`` drives the member servers instead of greenlets.
Everything else (views, alignment, the fusion step, incremental sessions, sampling, streaming text) is the
local braid's own code, which is why ray placement gives the same logits and the same greedy text.

When a member is lost mid-request the runner closes every link (the survivors abandon their half-done
forward), asks ``replace_members`` for live endpoints, re-dials, and the braid replays the request from
its start; generation replays the prompt and the tokens already produced, so greedy output is unchanged.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import torch

from braid.braided import BraidedLLM
from braid.config import BraidConfig, MemberConfig, innermost_anchor
from braid.model_wrapper import Member, load_tokenizer
from braid.runner import BraidUnavailable, MemberLost, MemberRunner
from cluster.channel import ERROR, NO_UPDATE, RESULT, UPDATE, ChannelError, TensorChannel, parse_dtype

Endpoint = tuple[str, int]


class MemberFailed(RuntimeError):
    """The member raised while computing (bad input, out of memory): replaying would fail again."""


class RemoteCache:
    """The leader's view of a KV cache that lives in a member: its session id and length."""

    def __init__(self) -> None:
        self.session = uuid.uuid4().hex
        self.length = 0

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, max_length: int) -> None:  # DynamicCache semantics: negative removes that many
        self.length = max_length if max_length >= 0 else max(self.length + max_length, 0)


class RemoteMember(Member):
    """A member seen from the braid: tokenizer, config and sizes; the weights are in the member's server."""

    def __init__(self, spec: MemberConfig, info: dict[str, Any], device: str | torch.device = "cpu"):
        from transformers import AutoConfig

        super().__init__(spec.model_name, load_tokenizer(spec.model_name), spec.quantization)
        self._config = AutoConfig.from_pretrained(innermost_anchor(spec.model_name))  # a braid: its anchor's
        self.reads_stepwise = bool(info.get("reads_stepwise", False))
        self._device = torch.device(device)
        self.state_dtype = parse_dtype(info["dtype"])
        self._num_parameters = int(info["num_parameters"])

    @property
    def config(self):
        return self._config

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def num_parameters(self) -> int:
        return self._num_parameters

    def new_cache(self) -> RemoteCache:
        return RemoteCache()


class MemberLink:
    """The leader's end of one member's channel."""

    def __init__(self, index: int, endpoint: Endpoint, timeout: float):
        self.index, self.endpoint, self.timeout = index, endpoint, timeout
        self.chan: TensorChannel | None = None

    def connect(self, points_at: dict[int, list[int]], bridge: dict[str, Any] | None = None) -> None:
        self.chan = TensorChannel.connect(*self.endpoint, timeout=self.timeout)
        setup = {"op": "setup", "points_at": {str(k): v for k, v in points_at.items()}, "bridge": bridge}
        self.chan.send_msg(setup)

    def close(self) -> None:
        if self.chan is not None:
            self.chan.close()
            self.chan = None

    def part(self) -> None:
        """Say goodbye (the server then waits for the next connection) and close."""
        if self.chan is not None:
            with contextlib.suppress(ChannelError):
                self.chan.send_msg({"op": "bye"})
        self.close()

    def request(self, inputs: dict[str, Any], cache: RemoteCache | None, want: dict[str, Any]) -> None:
        """``want``: what to send back (``logits``, ``final`` hidden state, ``top_k`` over ``vocab`` ids)."""
        names = [k for k, v in inputs.items() if v is not None]
        header = {"op": "forward", "names": names, **want}
        if cache is not None:
            header |= {"session": cache.session, "past": cache.length}
        self.chan.send_msg(header, [inputs[k] for k in names])

    def recv_state(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        self._expect(b"S")
        return self.chan.recv_tensor(shape, dtype)

    def send_update(self, update: torch.Tensor | None) -> None:
        if update is None:
            self.chan.send_tag(NO_UPDATE)
        else:
            self.chan.send_tensor(UPDATE, update)

    def recv_result(self) -> dict[str, torch.Tensor]:
        self._expect(RESULT)
        header, tensors = self.chan.recv_msg()
        return dict(zip(header.get("results", []), tensors, strict=True))

    def ask(self, header: dict[str, Any]) -> list[torch.Tensor]:
        """One request-and-answer outside a forward (the bridge's)."""
        self.chan.send_msg(header)
        self._expect(RESULT)
        return self.chan.recv_msg()[1]

    def _expect(self, tag: bytes) -> None:
        got = self.chan.recv_tag()
        if got == ERROR:
            raise MemberFailed(f"member {self.index}: {self.chan.recv_msg()[0]['error']}")
        if got != tag:
            raise ChannelError(f"protocol error: expected {tag!r}, got {got!r}")


def leader_braid(
    config: BraidConfig,
    endpoints: list[Endpoint],
    infos: list[dict[str, Any]],
    device: str = "cpu",
    timeout: float = 60.0,
    recovery_timeout: float = 120.0,
    replace_members: Callable[[set[int], float], list[Endpoint]] | None = None,
) -> BraidedLLM:
    """A braid whose members are the servers at ``endpoints`` (``infos``: what each server's ``info()``
    said); the fusion modules and the generation loop run here, on ``device``."""
    proxies = [RemoteMember(s, i, device) for s, i in zip(config.model_configs, infos, strict=True)]
    runner = ChannelRunner(endpoints, timeout, recovery_timeout, replace_members)
    return BraidedLLM(config=config, models=proxies, runner=runner)


class ChannelRunner(MemberRunner):
    """Runs each member in its server: sends its inputs, then at every fusion point receives its state and
    sends back its update."""

    attempts = 3

    def __init__(
        self,
        endpoints: list[Endpoint],
        timeout: float = 60.0,
        recovery_timeout: float = 120.0,
        replace_members: Callable[[set[int], float], list[Endpoint]] | None = None,
    ):
        self.links = [MemberLink(m, e, timeout) for m, e in enumerate(endpoints)]
        self.timeout, self.recovery_timeout = timeout, recovery_timeout
        self.replace_members = replace_members or (lambda lost, deadline: [ln.endpoint for ln in self.links])
        self.recoveries = 0
        self.braid: BraidedLLM | None = None
        self.closed = False
        # an outer braid's edits on this braid's anchor, when this braid is its member (``braid.nested``)
        self.anchor_edits: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {}
        self.edit_blocks: frozenset[int] = frozenset()  # the blocks the anchor's link was set up with
        self.final_box: Any = None

    def attach(self, braid: BraidedLLM) -> None:
        if braid.readout is not None:  # members with their own tokenizer run their bridge where they are
            for m, bridge in braid.readout.bridges.items():
                braid.readout.bridges[m] = RemoteBridge(self, m, bridge.readings, bridge.params)
        self.braid = braid
        self._connect_all(time.monotonic() + self.timeout)

    # -- an outer braid reading this one (this braid is a member of another: ``braid.nested``) -----------
    @contextlib.contextmanager
    def inject(self, fns: dict[int, Callable[[torch.Tensor], torch.Tensor]]) -> Iterator[None]:
        """The outer braid's edits on the anchor's blocks, applied after this braid's fusion at the same
        block, as ``ModelWrapper.inject`` does in-process: the anchor's server sends its state at those blocks
        too (its link is set up again when the blocks change) and the edit runs here."""
        if frozenset(fns) != self.edit_blocks:
            self.edit_blocks = frozenset(fns)
            link = self.links[self.braid.config.anchor]
            link.part()
            self._connect(link, time.monotonic() + self.timeout)
        self.anchor_edits = fns
        try:
            yield
        finally:
            self.anchor_edits = {}

    @contextlib.contextmanager
    def capture_final_hidden(self) -> Iterator[Any]:
        """``ModelWrapper.capture_final_hidden`` for a remote anchor: its server sends the state back."""
        self.final_box = SimpleNamespace(value=None)
        try:
            yield self.final_box
        finally:
            self.final_box = None

    def _schedule(self, braid: BraidedLLM) -> list[tuple[str, int]]:
        """This braid's fusion points and the outer edits, in the anchor's block order; at one block the
        points come first (an inner braid's hooks run in front of the outer ones)."""
        blocks = {p: layer for layer, ps in braid.lockstep.points_at(braid.config.anchor).items() for p in ps}
        steps = [(blocks[p], 0, "point", p) for p in range(braid.lockstep.num_points)]
        steps += [(layer, 1, "edit", layer) for layer in self.anchor_edits]
        return [(kind, x) for _, _, kind, x in sorted(steps)]

    def _edit(self, braid: BraidedLLM, layer: int, shape: tuple[int, ...]) -> None:
        a = braid.config.anchor
        h = self.links[a].recv_state(shape, braid.models[a].state_dtype)
        edited = self.anchor_edits[layer](h)
        self.links[a].send_update(None if edited is h else edited - h)

    # -- the exchange -------------------------------------------------------------------------------------
    def run(self, braid, inputs, caches, fuse, output_hidden_states=False) -> list[Any]:
        if output_hidden_states:
            raise ValueError("output_hidden_states is only available with placement='local'")
        if self.closed:
            raise RuntimeError("this braid was closed (its members are gone); build a new one")
        running = [m for m, x in enumerate(inputs) if x is not None]
        shapes = {m: (*inputs[m]["input_ids"].shape, braid.models[m].hidden_size) for m in running}
        m = -1
        try:
            for m in running:
                cache = None if caches is None else caches[m]
                want = self._wanted(braid, m)
                if m == braid.config.anchor and self.final_box is not None:
                    want["final"] = True
                self.links[m].request(inputs[m], cache, want)
            for kind, p in self._schedule(braid):
                if kind == "edit":
                    self._edit(braid, p, shapes[braid.config.anchor])
                    continue
                states: list[torch.Tensor | None] = [None] * len(braid.models)
                for m in running:
                    states[m] = self.links[m].recv_state(shapes[m], braid.models[m].state_dtype)
                updates = fuse(p, states)  # (B, T_m, D_m) per running member
                for m in running:
                    self.links[m].send_update(updates[m])
            results: list[Any] = [None] * len(braid.models)
            for m in running:
                got = self.links[m].recv_result()
                top = (got["top_ids"].long(), got["top_probs"]) if "top_ids" in got else None
                results[m] = SimpleNamespace(
                    logits=got.get("logits"), final_hidden=got.get("final_hidden"), top=top
                )
        except ChannelError as e:
            raise MemberLost(m, str(e)) from e
        except MemberFailed:
            self._reconnect(time.monotonic() + self.recovery_timeout)  # the others are mid-forward
            raise
        for m in running:
            if caches is not None:
                caches[m].length += shapes[m][1]
        if self.final_box is not None:
            self.final_box.value = results[braid.config.anchor].final_hidden
        return results

    @staticmethod
    def _wanted(braid: BraidedLLM, m: int) -> dict[str, Any]:
        """What member m sends back: the anchor its logits (and final state for an output-level strategy);
        another member sharing the anchor's tokenizer, for an output-level strategy, its logits or their
        top-k; members read through the bridge and members of a hidden-state braid, nothing."""
        output = braid.config.output_params if braid.readout is not None else None
        if m == braid.config.anchor:
            return {"logits": True, "final": output is not None}
        if output is None or m in braid.readout.bridges:
            return {}
        if output.top_k is None:
            return {"logits": True}
        return {"top_k": output.top_k, "vocab": braid.anchor_model.vocab_size}

    # -- recovery -----------------------------------------------------------------------------------------
    def _reconnect(self, deadline: float) -> None:
        for link in self.links:
            link.close()
        self._connect_all(deadline)

    def _connect_all(self, deadline: float) -> None:
        for link in self.links:
            self._connect(link, deadline)

    def _connect(self, link: MemberLink, deadline: float) -> None:
        points = self.braid.lockstep.points_at(link.index)
        if link.index == self.braid.config.anchor:
            for layer in sorted(self.edit_blocks):  # an outer edit: one more state sent at its block
                points.setdefault(layer, []).append(-1)
        while True:
            try:
                link.connect(points, self._bridge_spec(link.index))
                return
            except ChannelError as e:
                if time.monotonic() > deadline:
                    msg = f"cannot reach member {link.index} at {link.endpoint}: {e}"
                    raise BraidUnavailable(msg) from e
                time.sleep(0.1)

    def _bridge_spec(self, m: int) -> dict[str, Any] | None:
        readout = self.braid.readout
        if readout is None or m not in readout.bridges:
            return None
        config = self.braid.config
        anchor = config.model_configs[config.anchor].model_name
        return {"anchor": anchor, "params": readout.bridges[m].params.model_dump()}

    def recover(self, lost: MemberLost) -> None:
        """Close every link, get live endpoints (replacing lost members), re-dial; or BraidUnavailable."""
        deadline = time.monotonic() + self.recovery_timeout
        for link in self.links:
            link.close()
        try:
            endpoints = self.replace_members({lost.member}, deadline)
        except Exception as e:
            raise BraidUnavailable(f"member {lost.member} could not be replaced: {e}") from e
        for link, endpoint in zip(self.links, endpoints, strict=True):
            link.endpoint = endpoint
        self._connect_all(deadline)
        self.recoveries += 1

    def close(self) -> None:
        self.closed = True
        for link in self.links:
            link.part()


class RemoteBridge:
    """``CharBridge``'s interface for a member in another actor: its bridge runs there, next to its weights,
    and only the anchor-vocabulary top-k of each position comes back."""

    def __init__(self, runner: ChannelRunner, member: int, readings: list[str], params: Any):
        self.runner, self.member, self.readings, self.params = runner, member, readings, params

    def texts_dists(self, rows: list[list[int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        tensors = self._ask({"op": "bridge_texts", "rows": rows})
        return [(tensors[i].long(), tensors[i + 1]) for i in range(0, len(tensors), 2)]

    def text_dists(self, anchor_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.texts_dists([anchor_ids])[0]

    def session(self) -> RemoteBridgeSession:
        return RemoteBridgeSession(self)

    def _ask(self, header: dict[str, Any]) -> list[torch.Tensor]:
        link = self.runner.links[self.member]
        try:
            return link.ask(header)
        except ChannelError as e:
            raise MemberLost(self.member, str(e)) from e


class RemoteBridgeSession:
    def __init__(self, bridge: RemoteBridge):
        self.bridge, self.id = bridge, uuid.uuid4().hex

    def steps(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, probs = self.bridge._ask({"op": "bridge_steps", "session": self.id, "texts": texts})
        return ids.long(), probs

    def step(self, visible: str) -> tuple[torch.Tensor, torch.Tensor]:
        ids, probs = self.steps([visible])
        return ids[:, 0], probs[:, 0]

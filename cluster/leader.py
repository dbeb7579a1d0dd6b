"""The braid's leader: fusion modules plus the generation loop, with every member reached over a channel.

``LeaderBraid`` is a ``BraidedLLM`` whose members are stand-ins (``RemoteMember``: tokenizer and shape
facts, no weights) and whose ``run_members`` drives the member servers instead of greenlets. Everything
else (views, alignment, the fusion step, incremental sessions, sampling, streaming text) is the local
braid's own code, which is why ray placement gives the same logits and the same greedy text.

When a member is lost mid-request the leader closes every link (the survivors abandon their half-done
forward), asks ``replace_members`` for live endpoints, re-dials and replays the request from its start;
generation replays the prompt and the tokens already produced, so greedy output is unchanged.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import torch

from braid.braided import BraidedLLM, FusionStep
from braid.config import BraidConfig, MemberConfig
from braid.generation import SamplingParams, check_prompt, continue_tokens, text_pieces
from braid.model_wrapper import ModelWrapper, load_tokenizer
from cluster.channel import ERROR, NO_UPDATE, RESULT, UPDATE, ChannelError, TensorChannel, parse_dtype

Endpoint = tuple[str, int]


class MemberLost(RuntimeError):
    def __init__(self, member: int, reason: str):
        super().__init__(f"member {member} was lost: {reason}")
        self.member = member


class MemberFailed(RuntimeError):
    """The member raised while computing (bad input, out of memory): replaying would fail again."""


class BraidUnavailable(RuntimeError):
    """A lost member could not be brought back within the recovery timeout."""


class RemoteCache:
    """The leader's view of a KV cache that lives in a member: its session id and length."""

    def __init__(self) -> None:
        self.session = uuid.uuid4().hex
        self.length = 0

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, max_length: int) -> None:  # DynamicCache semantics: negative removes that many
        self.length = max_length if max_length >= 0 else max(self.length + max_length, 0)


class RemoteMember(ModelWrapper):
    """A member seen from the leader: tokenizer, config and sizes; the weights are in the member actor."""

    def __init__(self, spec: MemberConfig, info: dict[str, Any], device: str | torch.device = "cpu"):
        torch.nn.Module.__init__(self)
        from transformers import AutoConfig

        self.model_name, self.quantization = spec.model_name, spec.quantization
        self.tokenizer = load_tokenizer(spec.model_name)
        self._config = AutoConfig.from_pretrained(spec.model_name)
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

    def freeze(self) -> RemoteMember:
        return self

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


class LeaderBraid(BraidedLLM):
    """A braid whose members run elsewhere; same forward, generate and save interface as ``BraidedLLM``."""

    def __init__(
        self,
        config: BraidConfig,
        endpoints: list[Endpoint],
        infos: list[dict[str, Any]],
        device: str = "cpu",
        timeout: float = 60.0,
        recovery_timeout: float = 120.0,
        replace_members: Callable[[set[int], float], list[Endpoint]] | None = None,
    ):
        proxies = [RemoteMember(s, i, device) for s, i in zip(config.model_configs, infos, strict=True)]
        super().__init__(config=config, models=proxies)
        self.links = [MemberLink(m, e, timeout) for m, e in enumerate(endpoints)]
        if self.readout is not None:  # members with their own tokenizer run their bridge where they are
            for m, bridge in self.readout.bridges.items():
                self.readout.bridges[m] = RemoteBridge(self, m, bridge.readings, bridge.params)
        self.recovery_timeout = recovery_timeout
        self.replace_members = replace_members or (lambda lost, deadline: [ln.endpoint for ln in self.links])
        self.recoveries = 0
        self._connect_all(time.monotonic() + timeout)

    # -- the exchange -------------------------------------------------------------------------------------
    def run_members(
        self, inputs, alignment, caches=None, fusion_caches=None, output_hidden_states=False, history=None
    ) -> list[Any]:
        if output_hidden_states:
            raise ValueError("output_hidden_states is only available with placement='local'")
        fuse = FusionStep(self.fusion_modules, alignment, fusion_caches, history)
        running = [m for m, x in enumerate(inputs) if x is not None]
        shapes = {m: (*inputs[m]["input_ids"].shape, self.models[m].hidden_size) for m in running}
        m = -1
        try:
            for m in running:
                cache = None if caches is None else caches[m]
                self.links[m].request(inputs[m], cache, self._wanted(m))
            for p in range(self.lockstep.num_points):
                states: list[torch.Tensor | None] = [None] * len(self.models)
                for m in running:
                    states[m] = self.links[m].recv_state(shapes[m], self.models[m].state_dtype)
                updates = fuse(p, states)  # (B, T_m, D_m) per running member
                for m in running:
                    self.links[m].send_update(updates[m])
            results: list[Any] = [None] * len(self.models)
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
        return results

    def _wanted(self, m: int) -> dict[str, Any]:
        """What member m sends back: the anchor its logits (and final state for an output-level strategy);
        another member sharing the anchor's tokenizer, for an output-level strategy, its logits or their
        top-k; members read through the bridge and members of a hidden-state braid, nothing."""
        output = self.config.output_params if self.readout is not None else None
        if m == self.config.anchor:
            return {"logits": True, "final": output is not None}
        if output is None or m in self.readout.bridges:
            return {}
        if output.top_k is None:
            return {"logits": True}
        return {"top_k": output.top_k, "vocab": self.anchor_model.vocab_size}

    # -- recovery -----------------------------------------------------------------------------------------
    def _reconnect(self, deadline: float) -> None:
        for link in self.links:
            link.close()
        self._connect_all(deadline)

    def _connect_all(self, deadline: float) -> None:
        for link in self.links:
            while True:
                try:
                    link.connect(self.lockstep.points_at(link.index), self._bridge_spec(link.index))
                    break
                except ChannelError as e:
                    if time.monotonic() > deadline:
                        msg = f"cannot reach member {link.index} at {link.endpoint}: {e}"
                        raise BraidUnavailable(msg) from e
                    time.sleep(0.1)

    def _bridge_spec(self, m: int) -> dict[str, Any] | None:
        bridges = self.readout.bridges if getattr(self, "readout", None) is not None else {}
        if m not in bridges:
            return None
        anchor = self.config.model_configs[self.config.anchor].model_name
        return {"anchor": anchor, "params": bridges[m].params.model_dump()}

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

    def with_recovery(self, fn: Callable[[], Any], attempts: int = 3) -> Any:
        for _ in range(attempts - 1):
            try:
                return fn()
            except MemberLost as e:
                self.recover(e)
        return fn()

    def forward(self, input_ids, attention_mask=None, labels=None, output_hidden_states=False):
        call = super().forward
        return self.with_recovery(lambda: call(input_ids, attention_mask, labels, output_hidden_states))

    # -- generation ---------------------------------------------------------------------------------------
    def tokens(self, input_ids: torch.Tensor, params: SamplingParams, attempts: int = 3) -> Iterator[int]:
        """``generate_tokens`` that survives lost members: a new session replays the prompt and the tokens
        produced so far (no re-sampling), then generation goes on."""
        generator = None if params.seed is None else torch.Generator().manual_seed(params.seed)
        produced: list[int] = []
        for failures in range(1, attempts + 1):
            try:
                yield from continue_tokens(self, input_ids, params, generator, produced)
                return
            except MemberLost as e:
                if failures == attempts:
                    raise BraidUnavailable(f"gave up after {failures} member failures: {e}") from e
                self.recover(e)

    def stream(self, prompt: str, params: SamplingParams) -> Iterator[str]:
        check_prompt(self.models, prompt, params.max_new_tokens)
        ids = self.anchor_model.encode(prompt)["input_ids"]
        return text_pieces(self.tokens(ids, params), self.tokenizer, params.stop)

    def generate(
        self, prompt: str, max_new_tokens: int = 200, temperature: float = 0.0, top_p: float = 1.0,
        top_k: int | None = None, stop: str | list[str] | None = None, stream: bool = False, seed: int | None = None,
    ):  # fmt: skip
        """``BraidedLLM.generate``'s signature, surviving lost members."""
        params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                                stop=stop, seed=seed)  # fmt: skip
        pieces = self.stream(prompt, params)
        return pieces if stream else "".join(pieces)

    def close(self) -> None:
        for link in self.links:
            if link.chan is not None:
                with contextlib.suppress(ChannelError):
                    link.chan.send_msg({"op": "bye"})
            link.close()


class RemoteBridge:
    """``CharBridge``'s interface for a member in another actor: its bridge runs there, next to its weights,
    and only the anchor-vocabulary top-k of each position comes back."""

    def __init__(self, leader: LeaderBraid, member: int, readings: list[str], params: Any):
        self.leader, self.member, self.readings, self.params = leader, member, readings, params

    def texts_dists(self, rows: list[list[int]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        tensors = self._ask({"op": "bridge_texts", "rows": rows})
        return [(tensors[i].long(), tensors[i + 1]) for i in range(0, len(tensors), 2)]

    def text_dists(self, anchor_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.texts_dists([anchor_ids])[0]

    def session(self) -> RemoteBridgeSession:
        return RemoteBridgeSession(self)

    def _ask(self, header: dict[str, Any]) -> list[torch.Tensor]:
        link = self.leader.links[self.member]
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

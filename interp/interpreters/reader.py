"""The activation reader: binned activations enter the LLM as soft tokens (LLaVA / nanoVLM style).

The reader sees the same z/l/m/h/v bins the paper encoding writes (so thresholds keep their
meaning), one-hot, through a small conv trunk and an MLP projector into the LLM's hidden size:

    bins [b, 8, 14, 14] ──one-hot──> [b, 40, 14, 14] ──trunk──> [b, 128, 7, 7]
        ├─> 49 patch tokens ──MLP──> [b, 49, H] + learned positions
        └─> mean‖max pool [b, 256] ──count hidden──> count head [b, 8 shapes, max_count + 1]
                 one shape token per type: MLP(hidden ‖ softmax(count logits of the type) ‖ one-hot type)
                                                   ──> [b, 8, H]

The 57 soft tokens sit between two text pieces of the prompt (`prefix_text`, then the turns).
Why a trunk and shape tokens (measured, README "The activation reader"): a projector per 2×2
patch sees one cell of a shape that spans 5–10 cells, and the LLM then has to count across 49
tokens; the trunk's receptive field covers a shape, and the shape tokens, one per shape type and
carrying the count head's belief for that type, hand the LLM each count where it needs it (with a
single pooled summary token the LLM still had to untangle eight counts from one vector: 0.88 exact
against the count head's own 0.96).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from interp.interpreters.probe import N_FILTERS, N_LEVELS, SIDE, bins_from_encodings
from interp.interpreters.prompt import ANSWER_SIGNIFIER, INPUT_SIGNIFIER, QUESTION_SIGNIFIER
from interp.interpreters.stopping import StopOnStrings
from interp.language import OUTPUT_SIGNIFIER, SHAPES

READER_FILE = "reader.safetensors"
READER_CONFIG = "reader_config.json"
READER_TASK = "Conv1 activations of an MNIST CNN as 49 patches and 8 shape counts:"
"""The text before the soft tokens: short, because every token costs CPU time in training."""
STOPS = ("\n", "###")
"""An answer is one line (descriptions and the trained questions alike)."""


SUMMARIES = {"shapes": len(SHAPES), "pooled": 1, "none": 0}
"""Summary kinds → how many soft tokens each adds after the patches."""


@dataclass(frozen=True)
class ReaderConfig:
    """The connector between the bins and the LLM; saved beside its weights."""

    hidden_size: int = 576
    """The LLM's hidden size (SmolLM2-135M: 576); set from the model when training."""
    trunk_channels: int = 64
    """Channels of the trunk's first three convs (1×1, 3×3, 3×3 at 14×14)."""
    token_channels: int = 128
    """Channels of the last conv (3×3 at 7×7): the width of each patch token before projection."""
    count_hidden: int = 256
    """Width of the count head's hidden layer, which also feeds the summary token."""
    max_count: int = 4
    """Largest count class per shape type (§3.1: 0–4 of each type)."""
    summary: str = "shapes"
    """What follows the 49 patch tokens: "shapes" (one token per shape type from the count head),
    "pooled" (one token from the count hidden layer; the first shipped reader) or "none"."""

    def __post_init__(self) -> None:
        if min(self.hidden_size, self.trunk_channels, self.token_channels, self.count_hidden, self.max_count) < 1:
            raise ValueError("every ReaderConfig width and max_count must be ≥ 1")
        if self.summary not in SUMMARIES:
            raise ValueError(f"summary must be one of {', '.join(SUMMARIES)}, got {self.summary!r}")

    @property
    def n_tokens(self) -> int:
        return (SIDE // 2) ** 2 + SUMMARIES[self.summary]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ReaderConfig":
        names = {f.name for f in fields(cls)}
        d = dict(d)
        if "summary_token" in d and "summary" not in d:  # readers saved before shape tokens
            d["summary"] = "pooled" if d["summary_token"] else "none"
        return cls(**{k: v for k, v in d.items() if k in names})


def one_hot_bins(bins: torch.Tensor) -> torch.Tensor:
    """int bins [b, 8, 14, 14] (0..4) → float [b, 40, 14, 14], filter-major (filter f, level l at 5f + l)."""
    if bins.ndim != 4 or tuple(bins.shape[1:]) != (N_FILTERS, SIDE, SIDE):
        raise ValueError(f"bins must be [b, 8, 14, 14], got {list(bins.shape)}")
    oh = nn.functional.one_hot(bins.long().clamp(0, N_LEVELS - 1), N_LEVELS)  # [b, 8, 14, 14, 5]
    return oh.permute(0, 1, 4, 2, 3).reshape(len(bins), N_FILTERS * N_LEVELS, SIDE, SIDE).float()


class Connector(nn.Module):
    """bins [b, 8, 14, 14] → (soft tokens [b, n_tokens, H], count logits [b, 8, max_count + 1])."""

    def __init__(self, cfg: ReaderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, t, h = cfg.trunk_channels, cfg.token_channels, cfg.hidden_size
        self.trunk = nn.Sequential(
            nn.Conv2d(N_FILTERS * N_LEVELS, c, 1), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),     # 7 × 7
            nn.Conv2d(c, t, 3, padding=1), nn.GELU(),
        )
        self.count_hidden = nn.Sequential(nn.Linear(2 * t, cfg.count_hidden), nn.GELU())
        self.count_out = nn.Linear(cfg.count_hidden, len(SHAPES) * (cfg.max_count + 1))
        self.patch_proj = nn.Sequential(nn.Linear(t, h), nn.GELU(), nn.Linear(h, h))
        self.positions = nn.Parameter(torch.randn((SIDE // 2) ** 2, h) * 0.02)
        width = cfg.count_hidden + (cfg.max_count + 1 + len(SHAPES) if cfg.summary == "shapes" else 0)
        self.summary_proj = nn.Sequential(nn.Linear(width, h), nn.GELU(), nn.Linear(h, h)) \
            if cfg.summary != "none" else None

    def features(self, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(patch features [b, 49, t], count hidden [b, count_hidden], count logits [b, 8, max_count + 1])."""
        x = self.trunk(one_hot_bins(bins.to(self.positions.device)))  # [b, t, 7, 7]
        patches = x.flatten(2).transpose(1, 2)
        hidden = self.count_hidden(torch.cat([patches.mean(1), patches.amax(1)], -1))
        logits = self.count_out(hidden).view(len(bins), len(SHAPES), self.cfg.max_count + 1)
        return patches, hidden, logits

    def forward(self, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches, hidden, logits = self.features(bins)
        tokens = self.patch_proj(patches) + self.positions
        if self.cfg.summary == "pooled":
            tokens = torch.cat([tokens, self.summary_proj(hidden)[:, None]], 1)
        elif self.cfg.summary == "shapes":
            n, b = len(SHAPES), len(bins)
            kind = torch.eye(n, device=hidden.device, dtype=hidden.dtype).expand(b, n, n)
            per_shape = torch.cat([hidden[:, None].expand(b, n, -1), logits.softmax(-1).to(hidden.dtype), kind], -1)
            tokens = torch.cat([tokens, self.summary_proj(per_shape)], 1)
        return tokens, logits


def count_loss(logits: torch.Tensor, counts: torch.Tensor, max_count: int) -> torch.Tensor:
    """Cross-entropy per shape type; counts above ``max_count`` are clipped."""
    target = counts.long().clamp(0, max_count).to(logits.device)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1))


class ReaderModel(nn.Module):
    """A causal LM (usually a PeftModel) fed soft tokens at a fixed place after ``prefix_ids``.

    Training rows: ``input_ids`` = prefix + n_tokens placeholders + the turns, right-padded; the
    placeholders' embeddings are replaced by the connector's tokens.
    """

    def __init__(self, llm: Any, connector: Connector, prefix_ids: Sequence[int], aux_weight: float = 0.0,
                 prefix_text: str = READER_TASK) -> None:
        super().__init__()
        self.llm, self.connector = llm, connector
        self.prefix_ids = list(prefix_ids)
        self.prefix_text = prefix_text
        self.aux_weight = aux_weight

    @property
    def n_tokens(self) -> int:
        return self.connector.cfg.n_tokens

    @property
    def soft_start(self) -> int:
        return len(self.prefix_ids)

    def embed(self, input_ids: torch.Tensor, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token embeddings with the soft tokens spliced in at ``soft_start``; also the count logits."""
        emb = self.llm.get_input_embeddings()(input_ids)
        soft, logits = self.connector(bins)
        s, e = self.soft_start, self.soft_start + self.n_tokens
        return torch.cat([emb[:, :s], soft.to(emb.dtype), emb[:, e:]], 1), logits

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, bins: torch.Tensor,
                labels: torch.Tensor | None = None, counts: torch.Tensor | None = None, **_: Any) -> dict:
        emb, logits = self.embed(input_ids, bins)
        out = self.llm(inputs_embeds=emb, attention_mask=attention_mask, labels=labels)
        loss = out.loss
        if loss is not None and counts is not None and self.aux_weight > 0:
            loss = loss + self.aux_weight * count_loss(logits, counts, self.connector.cfg.max_count)
        return {"loss": loss, "logits": out.logits, "count_logits": logits}

    def save(self, folder: Path) -> None:
        """LoRA adapter (peft files) + ``reader.safetensors`` + ``reader_config.json``."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if hasattr(self.llm, "save_pretrained"):
            self.llm.save_pretrained(str(folder), safe_serialization=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.connector.state_dict().items()},
                  str(folder / READER_FILE))
        (folder / READER_CONFIG).write_text(json.dumps(
            {"connector": self.connector.cfg.to_dict(), "prefix_text": self.prefix_text, "aux_weight": self.aux_weight},
            indent=2) + "\n")

    def load_trainable(self, folder: Path) -> None:
        """Restore the connector and the LoRA weights saved by `save` (resume from a checkpoint)."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        folder = Path(folder)
        self.connector.load_state_dict(load_file(str(folder / READER_FILE)))
        adapter = folder / "adapter_model.safetensors"
        if adapter.exists():
            set_peft_model_state_dict(self.llm, load_file(str(adapter)))


def prefix_token_ids(tokenizer: Any, task: str = READER_TASK) -> list[int]:
    """BOS (if the tokenizer has one) + the task + the input signifier: what precedes the soft tokens."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + tokenizer(f"{task}\n{INPUT_SIGNIFIER}", add_special_tokens=False)["input_ids"]


def split_prompt(prompt: str) -> tuple[str, str]:
    """A text prompt (`build_prompt` / a chat prompt) → (its encoding, the text after the encoding line).

    The reader replaces the task and encoding with its own prefix and soft tokens, and keeps the turns.
    """
    at = prompt.find(INPUT_SIGNIFIER)
    if at == -1:
        raise ValueError(f"the prompt has no '{INPUT_SIGNIFIER}' line: the reader needs encoded activations")
    rest = prompt[at + len(INPUT_SIGNIFIER):].lstrip(" ")
    end = rest.find("\n")
    return (rest, "") if end == -1 else (rest[:end], rest[end:])


def _stop_index(text: str, stops: Sequence[str] = STOPS) -> int:
    found = [text.find(s) for s in stops if s in text]
    return min(found) if found else -1


@dataclass
class ReaderInterpreter:
    """The reader behind the Interpreter interface: it takes encodings (any lossless encoder) like the
    text interpreter, decodes them back to bins and reads those as soft tokens."""

    model: ReaderModel
    tokenizer: Any
    name: str
    encoder: str = "paper"
    thresholds: Any = None
    info: dict = field(default_factory=dict)
    kind: str = "reader"

    def _bins(self, encodings: Sequence[str]) -> torch.Tensor:
        return torch.as_tensor(bins_from_encodings(list(encodings), self.encoder), dtype=torch.long)

    def _inputs(self, bins: torch.Tensor, suffixes: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded inputs_embeds and attention mask: prefix + soft tokens + each suffix."""
        tok, m = self.tokenizer, self.model
        ids = [m.prefix_ids + [0] * m.n_tokens + tok(s, add_special_tokens=False)["input_ids"] for s in suffixes]
        width = max(len(i) for i in ids)
        device = m.connector.positions.device
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        rows, mask = [], torch.zeros(len(ids), width, dtype=torch.long, device=device)
        for r, i in enumerate(ids):
            mask[r, width - len(i):] = 1
            rows.append(torch.tensor(i, device=device))
        # Embed unpadded rows (the soft tokens sit at a fixed offset), then left-pad the embeddings.
        embs = [m.embed(row[None], bins[r : r + 1])[0][0] for r, row in enumerate(rows)]
        pad_emb = m.llm.get_input_embeddings()(torch.tensor([pad], device=device))[0]
        out = torch.stack([torch.cat([pad_emb.expand(width - len(e), -1), e]) for e in embs])
        return out, mask

    @torch.no_grad()
    def _generate(self, bins: torch.Tensor, suffixes: Sequence[str], max_new_tokens: int, temperature: float = 0.0,
                  stop_event: threading.Event | None = None, streamer: Any = None) -> list[str]:
        from transformers import StoppingCriteriaList

        tok = self.tokenizer
        embeds, mask = self._inputs(bins, [s.rstrip(" ") for s in suffixes])
        criteria = StoppingCriteriaList([StopOnStrings(tok, 0, STOPS, stop_event)])
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        out = self.model.llm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                                      stopping_criteria=criteria, streamer=streamer,
                                      pad_token_id=tok.pad_token_id or tok.eos_token_id, **sampling)
        texts = tok.batch_decode(out, skip_special_tokens=True)
        return [t[: i if (i := _stop_index(t)) != -1 else len(t)].strip() for t in texts]

    def describe(self, encodings: Sequence[str], max_new_tokens: int = 48, batch_size: int = 50) -> list[str]:
        """One description per encoding, greedy."""
        out: list[str] = []
        for i in range(0, len(encodings), batch_size):
            chunk = list(encodings[i : i + batch_size])
            out += self._generate(self._bins(chunk), [f"\n{OUTPUT_SIGNIFIER}"] * len(chunk), max_new_tokens)
        return out

    def answer_questions(self, encodings: Sequence[str], questions: Sequence[str], max_new_tokens: int = 96) -> list[str]:
        """Greedy answers, one question per encoding, as a first chat turn (`build_question`)."""
        suffixes = [f"\n{QUESTION_SIGNIFIER} {q.strip()}\n{ANSWER_SIGNIFIER}" for q in questions]
        return self._generate(self._bins(encodings), suffixes, max_new_tokens)

    @torch.no_grad()
    def read_counts(self, encodings: Sequence[str]) -> np.ndarray:
        """int64 [n, 8]: the connector's own count head (what the shape tokens carry)."""
        _, _, logits = self.model.connector.features(self._bins(encodings))
        return logits.argmax(-1).cpu().numpy().astype(np.int64)

    def stream(self, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0,
               stop_event: threading.Event | None = None) -> Iterator[str]:
        """Yield the answer to a text prompt (a chat prompt or `build_prompt`) in pieces as generated."""
        from transformers import TextIteratorStreamer

        encoding, suffix = split_prompt(prompt)
        bins = self._bins([encoding])
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=False, skip_special_tokens=True)
        stop_event = stop_event or threading.Event()
        worker = threading.Thread(target=self._generate, daemon=True,
                                  args=(bins, [suffix], max_new_tokens, temperature, stop_event, streamer))
        worker.start()
        text, emitted = "", 0
        try:
            for piece in streamer:
                text += piece
                body = text.lstrip()
                cut = _stop_index(body)
                if cut != -1:
                    if cut > emitted:
                        yield body[emitted:cut]
                    return
                hold = len(body) - 2  # "##" may start a stop string
                if hold > emitted:
                    yield body[emitted:hold]
                    emitted = hold
            body = text.strip()
            if len(body) > emitted:
                yield body[emitted:]
        finally:
            stop_event.set()
            worker.join(timeout=60)


def load_reader(folder: Path, llm: Any, tokenizer: Any) -> ReaderModel:
    """A ReaderModel from a saved folder, around ``llm`` (the base model or a PeftModel already holding its adapter)."""
    from safetensors.torch import load_file

    meta = json.loads((Path(folder) / READER_CONFIG).read_text())
    cfg = ReaderConfig.from_dict(meta["connector"])
    connector = Connector(cfg)
    connector.load_state_dict(load_file(str(Path(folder) / READER_FILE)))
    device = llm.get_input_embeddings().weight.device
    task = meta.get("prefix_text", READER_TASK)  # the text it was trained with, whatever the code's default now
    return ReaderModel(llm, connector.to(device).eval(), prefix_token_ids(tokenizer, task), prefix_text=task).eval()

"""The activation reader: binned activations enter the LLM as soft tokens (LLaVA / nanoVLM style).

The reader sees the same z/l/m/h/v bins the paper encoding writes (so thresholds keep their
meaning), one-hot, through a small conv trunk and an MLP projector into the LLM's hidden size:

    bins [b, 8, 14, 14] ──one-hot──> [b, 40, 14, 14] ──trunk──> [b, 128, 7, 7]
        ├─> 49 patch tokens ──MLP──> [b, 49, H] + learned positions
        └─> mean‖max pool [b, 256] ──count hidden──> count head [b, 8 shapes, max_count + 1]
                 per shape type k ("named", the shipped reader's summary):
                   count token: softmax(count logits of k) @ the LLM's embeddings of "0".."4"
                                + MLP(hidden ‖ softmax ‖ one-hot k), its last layer zero-initialised
                   then the LLM's own embeddings of " <name of k>" (frozen): "2 vertical"

The 69 soft tokens (SmolLM2: 49 patches, 8 counts, 12 name tokens) sit between two text pieces of
the prompt (`prefix_text`, then the turns). Why a trunk and shape tokens (measured, README "The
activation reader"): a projector per 2×2 patch sees one cell of a shape that spans 5–10 cells, and
the LLM then has to count across 49 tokens; the trunk's receptive field covers a shape, and one count
token per shape type hands the LLM each count where it needs it (with a single pooled summary token
it had to untangle eight counts from one vector: 0.88 exact against the count head's own 0.96). The
names tell the LLM which count is which by content: without them it told the counts apart by
position only and wrote a neighbour's count ("1 vertical, 2 ellipses" for "2 verticals, 1 ellipse").
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

from interp.interpreters.probe import N_LEVELS, bins_from_encodings
from interp.interpreters.prompt import ANSWER_SIGNIFIER, INPUT_SIGNIFIER, QUESTION_SIGNIFIER
from interp.interpreters.questions import CURVES, LINES, make_question, parse_question
from interp.interpreters.stopping import StopOnStrings
from interp.language import OUTPUT_SIGNIFIER, SHAPES, counts_from_vector, format_description
from interp.target.layers import DEFAULT_LAYER, Layer, get_layer, layer_of_shape

READER_FILE = "reader.safetensors"
READER_CONFIG = "reader_config.json"
READER_TASK = "Conv1 activations of an MNIST CNN as 49 patches and 8 shape counts:"
"""The text before the soft tokens: short, because every token costs CPU time in training."""
STOPS = ("\n", "###")
"""An answer is one line (descriptions and the trained questions alike)."""


GROUPS: dict[str, tuple[int, ...]] = {
    "curves": tuple(SHAPES.index(s) for s in CURVES),
    "straight lines": tuple(SHAPES.index(s) for s in LINES),
    "shapes": tuple(range(len(SHAPES))),
}
"""The sums the grounded questions ask for (`interp.interpreters.questions`), as indices into SHAPES."""
SUMMARIES = {"named": len(SHAPES), "digits": len(SHAPES), "shapes": len(SHAPES),
             "shapes+groups": len(SHAPES) + len(GROUPS), "pooled": 1, "none": 0}
"""Summary kinds → how many count tokens each adds after the patches ("named" adds the names' tokens too)."""
READER_TASKS = {"shapes+groups": "Conv1 activations of an MNIST CNN as 49 patches and 11 counts:"}
"""The prefix text per summary kind where it is not READER_TASK (it names what the soft tokens hold)."""


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
    """What follows the patch tokens: "shapes" (one token per shape type from the count head),
    "shapes+groups" (those, then one token per group sum the questions ask for: curves, straight
    lines, all shapes; the count head also predicts the sums), "digits" (one token per shape type that
    starts as the LLM's own digit embeddings weighted by the count head's belief, plus a learned
    residual: the LLM reads each count nearly as the digit it writes), "named" (the digit tokens, each
    followed by the LLM's own embeddings of its shape's name, " vertical": the type is told by content,
    not only by position, which the digit reader confused between neighbours), "pooled" (one token
    from the count hidden layer; the first shipped reader) or "none"."""
    name_lengths: tuple[int, ...] = ()
    """"named" only: how many tokens the LLM's tokenizer makes of each " <shape>" (`shape_name_ids`)."""
    layer: str = DEFAULT_LAYER
    """The target CNN's layer whose bins the reader reads (`interp.target.layers`): conv1 [8, 14, 14] is
    pooled to 7 × 7 patch tokens by the trunk, conv2 [16, 7, 7] is read at 7 × 7 as it is."""

    def __post_init__(self) -> None:
        get_layer(self.layer)  # a clear error naming the registered layers
        if min(self.hidden_size, self.trunk_channels, self.token_channels, self.count_hidden, self.max_count) < 1:
            raise ValueError("every ReaderConfig width and max_count must be ≥ 1")
        if self.summary not in SUMMARIES:
            raise ValueError(f"summary must be one of {', '.join(SUMMARIES)}, got {self.summary!r}")
        object.__setattr__(self, "name_lengths", tuple(int(n) for n in self.name_lengths))  # JSON gives a list
        if self.summary == "named" and (len(self.name_lengths) != self.n_heads or min(self.name_lengths) < 1):
            raise ValueError(f'summary "named" needs name_lengths: ≥ 1 token for each of the {self.n_heads} '
                             f"shape names, got {self.name_lengths}")

    @property
    def spec(self) -> Layer:
        return get_layer(self.layer)

    @property
    def pool(self) -> int:
        """The trunk's max-pool: 2 on conv1's 14 × 14 maps, none on conv2's 7 × 7 (49 patch tokens either way)."""
        return 2 if self.spec.side >= 14 else 1

    @property
    def n_patches(self) -> int:
        return (self.spec.side // self.pool) ** 2

    @property
    def n_tokens(self) -> int:
        return self.n_patches + SUMMARIES[self.summary] + sum(self.name_lengths if self.summary == "named" else ())

    @property
    def n_heads(self) -> int:
        """Rows of the count head: one per shape type, plus one per group sum with "shapes+groups"."""
        return len(SHAPES) + (len(GROUPS) if self.summary == "shapes+groups" else 0)

    @property
    def per_type(self) -> bool:
        """One summary token per count head row (shape type or group sum)."""
        return self.summary in ("shapes", "shapes+groups", "digits", "named")

    @property
    def llm_embeddings(self) -> bool:
        """The count tokens start as the LLM's own digit embeddings ("digits", "named"; `Connector.set_llm_embeddings`)."""
        return self.summary in ("digits", "named")

    @property
    def task(self) -> str:
        """The prefix text a new reader of this config is trained with."""
        task = READER_TASKS.get(self.summary, READER_TASK)
        return task if self.layer == DEFAULT_LAYER else task.replace("Conv1", self.layer.capitalize(), 1)

    def targets(self, counts: torch.Tensor) -> torch.Tensor:
        """counts [b, 8] → the count head's targets [b, n_heads]: the counts, then the group sums."""
        counts = counts.long()
        if self.n_heads == counts.shape[1]:
            return counts
        sums = [counts[:, list(idx)].sum(1) for idx in GROUPS.values()]
        return torch.cat([counts, torch.stack(sums, 1)], 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ReaderConfig":
        names = {f.name for f in fields(cls)}
        d = dict(d)
        if "summary_token" in d and "summary" not in d:  # readers saved before shape tokens
            d["summary"] = "pooled" if d["summary_token"] else "none"
        return cls(**{k: v for k, v in d.items() if k in names})


def check_bins(bins: Any, layer: str | Layer = DEFAULT_LAYER) -> None:
    """ValueError naming both layers when ``bins`` [b, C, S, S] are not ``layer``'s maps."""
    spec = get_layer(layer)
    if bins.ndim != 4 or tuple(bins.shape[1:]) != spec.shape:
        try:
            theirs = f"{layer_of_shape(bins.shape).describe('b')} bins"
        except ValueError:
            theirs = f"bins of shape {list(bins.shape)}"
        raise ValueError(f"this reader reads {spec.describe('b')}; got {theirs}")


def one_hot_bins(bins: torch.Tensor, layer: str | Layer = DEFAULT_LAYER) -> torch.Tensor:
    """int bins [b, C, S, S] (0..4) of ``layer`` → float [b, 5C, S, S], filter-major (filter f, level l at 5f + l)."""
    check_bins(bins, layer)
    c, side = get_layer(layer).channels, get_layer(layer).side
    oh = nn.functional.one_hot(bins.long().clamp(0, N_LEVELS - 1), N_LEVELS)  # [b, C, S, S, 5]
    return oh.permute(0, 1, 4, 2, 3).reshape(len(bins), c * N_LEVELS, side, side).float()


class Connector(nn.Module):
    """bins [b, 8, 14, 14] → (soft tokens [b, n_tokens, H], count logits [b, 8, max_count + 1])."""

    def __init__(self, cfg: ReaderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, t, h = cfg.trunk_channels, cfg.token_channels, cfg.hidden_size
        self.trunk = nn.Sequential(
            nn.Conv2d(cfg.spec.channels * N_LEVELS, c, 1), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.MaxPool2d(cfg.pool),     # 7 × 7
            nn.Conv2d(c, t, 3, padding=1), nn.GELU(),
        )
        self.count_hidden = nn.Sequential(nn.Linear(2 * t, cfg.count_hidden), nn.GELU())
        self.count_out = nn.Linear(cfg.count_hidden, cfg.n_heads * (cfg.max_count + 1))
        self.patch_proj = nn.Sequential(nn.Linear(t, h), nn.GELU(), nn.Linear(h, h))
        self.positions = nn.Parameter(torch.randn(cfg.n_patches, h) * 0.02)
        width = cfg.count_hidden + (cfg.max_count + 1 + cfg.n_heads if cfg.per_type else 0)
        self.summary_proj = nn.Sequential(nn.Linear(width, h), nn.GELU(), nn.Linear(h, h)) \
            if cfg.summary != "none" else None
        if cfg.llm_embeddings:
            # The LLM's input embeddings of "0".."max_count" (and of the shape names), set by
            # `set_llm_embeddings`; saved with the weights so a reader loads without its tokenizer.
            # The residual starts at zero: the tokens start as digits.
            self.register_buffer("digit_embeddings", torch.zeros(cfg.max_count + 1, h))
            nn.init.zeros_(self.summary_proj[-1].weight)
            nn.init.zeros_(self.summary_proj[-1].bias)
        if cfg.summary == "named":
            self.register_buffer("name_embeddings", torch.zeros(sum(cfg.name_lengths), h))

    def set_llm_embeddings(self, embeddings: torch.Tensor, tokenizer: Any) -> None:
        """Copy the rows of the LLM's input ``embeddings`` for the digit tokens "0".."max_count" and, for a
        "named" reader, for the tokens of each " <shape>"."""
        ids = [tokenizer(str(k), add_special_tokens=False)["input_ids"] for k in range(self.cfg.max_count + 1)]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f"the tokenizer splits a digit 0..{self.cfg.max_count} into several tokens: {ids}")
        with torch.no_grad():
            self.digit_embeddings.copy_(embeddings[[i[0] for i in ids]].to(self.digit_embeddings))
            if self.cfg.summary == "named":
                names = shape_name_ids(tokenizer)
                if tuple(map(len, names)) != self.cfg.name_lengths:
                    raise ValueError(f"this tokenizer splits the shape names into {tuple(map(len, names))} tokens; "
                                     f"the reader was built for {self.cfg.name_lengths}")
                self.name_embeddings.copy_(embeddings[[i for row in names for i in row]].to(self.name_embeddings))

    def features(self, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(patch features [b, 49, t], count hidden [b, count_hidden], count logits [b, n_heads, max_count + 1])."""
        x = self.trunk(one_hot_bins(bins.to(self.positions.device), self.cfg.layer))  # [b, t, 7, 7]
        patches = x.flatten(2).transpose(1, 2)
        hidden = self.count_hidden(torch.cat([patches.mean(1), patches.amax(1)], -1))
        logits = self.count_out(hidden).view(len(bins), self.cfg.n_heads, self.cfg.max_count + 1)
        return patches, hidden, logits

    def forward(self, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches, hidden, logits = self.features(bins)
        tokens = self.patch_proj(patches) + self.positions
        if self.cfg.summary == "pooled":
            tokens = torch.cat([tokens, self.summary_proj(hidden)[:, None]], 1)
        elif self.cfg.per_type:
            n, b = self.cfg.n_heads, len(bins)
            kind = torch.eye(n, device=hidden.device, dtype=hidden.dtype).expand(b, n, n)
            belief = logits.softmax(-1).to(hidden.dtype)
            per_shape = self.summary_proj(torch.cat([hidden[:, None].expand(b, n, -1), belief, kind], -1))
            if self.cfg.llm_embeddings:
                per_shape = per_shape + belief @ self.digit_embeddings.to(belief.dtype)
            if self.cfg.summary == "named":  # count k, then the name of shape k: "2 vertical"
                names = self.name_embeddings.to(per_shape.dtype).split(list(self.cfg.name_lengths))
                per_shape = torch.cat([t for k, name in enumerate(names)
                                       for t in (per_shape[:, k : k + 1], name.expand(b, -1, -1))], 1)
            tokens = torch.cat([tokens, per_shape], 1)
        return tokens, logits


def shape_name_ids(tokenizer: Any) -> list[list[int]]:
    """The tokens of " <shape>" for each shape type, as the LLM reads the names in its descriptions."""
    return [tokenizer(f" {name}", add_special_tokens=False)["input_ids"] for name in SHAPES]


def count_loss(logits: torch.Tensor, counts: torch.Tensor, max_count: int) -> torch.Tensor:
    """Cross-entropy per count head row (``counts`` as `ReaderConfig.targets` gives them); counts above
    ``max_count`` are clipped."""
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
            cfg = self.connector.cfg
            loss = loss + self.aux_weight * count_loss(logits, cfg.targets(counts), cfg.max_count)
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
    bf16: bool = False
    """Run the LLM under bf16 autocast (as it was trained on a CPU with native bf16: see `load_interpreter`)."""

    def _autocast(self) -> Any:
        device = self.model.connector.positions.device.type
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.bf16)

    @property
    def layer(self) -> str:
        """The layer whose encodings it reads (evaluation and the pages encode images with it)."""
        return self.model.connector.cfg.layer

    def _bins(self, encodings: Sequence[str]) -> torch.Tensor:
        bins = bins_from_encodings(list(encodings), self.encoder)
        if len(bins):
            check_bins(bins, self.layer)
        return torch.as_tensor(bins, dtype=torch.long)

    def _embed_rows(self, bins: torch.Tensor, suffix_ids: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """One unpadded embedding row per image: prefix + soft tokens + its suffix ids (`ReaderModel.embed`
        on right-padded ids, so one connector call for the batch)."""
        m = self.model
        rows = [m.prefix_ids + [0] * m.n_tokens + list(ids) for ids in suffix_ids]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows], device=m.connector.positions.device)
        emb, _ = m.embed(ids, bins)
        return [emb[i, : len(r)] for i, r in enumerate(rows)]

    def _pad_embedding(self) -> torch.Tensor:
        tok, m = self.tokenizer, self.model
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return m.llm.get_input_embeddings()(torch.tensor([pad], device=m.connector.positions.device))[0]

    def _inputs(self, bins: torch.Tensor, suffix_ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded inputs_embeds and attention mask: prefix + soft tokens + each suffix."""
        embs = self._embed_rows(bins, suffix_ids)
        width = max(len(e) for e in embs)
        mask = torch.zeros(len(embs), width, dtype=torch.long, device=embs[0].device)
        for r, e in enumerate(embs):
            mask[r, width - len(e):] = 1
        pad_emb = self._pad_embedding()
        return torch.stack([torch.cat([pad_emb.expand(width - len(e), -1), e]) for e in embs]), mask

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def _finish(self, ids: Sequence[int]) -> str:
        text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        return text[: i if (i := _stop_index(text)) != -1 else len(text)].strip()

    @torch.no_grad()
    def _generate(self, bins: torch.Tensor, suffixes: Sequence[str], max_new_tokens: int, temperature: float = 0.0,
                  stop_event: threading.Event | None = None, streamer: Any = None,
                  drafts: Sequence[str | None] | None = None) -> list[str]:
        """Greedy (or sampled) answers after each suffix. With ``drafts`` (greedy only), each row's draft
        answer is checked in one forward pass first and only the rows it does not match are generated on
        (`_verify`): the text is the same as without drafts, in one pass instead of a pass per token."""
        suffix_ids = self._ids([s.rstrip(" ") for s in suffixes])
        if drafts is None or temperature > 0 or streamer is not None:
            return [self._finish(t) for t in self._generate_ids(bins, suffix_ids, max_new_tokens, temperature,
                                                                stop_event, streamer)]
        draft_ids = [self._ids([f" {d}\n"])[0] if d else [] for d in drafts]
        return [self._finish(ids) for ids in self._decode_with_drafts(bins, suffix_ids, draft_ids, max_new_tokens)]

    def _decode_with_drafts(self, bins: torch.Tensor, suffix_ids: Sequence[Sequence[int]],
                            draft_ids: Sequence[Sequence[int]], max_new_tokens: int) -> list[list[int]]:
        """The greedy new token ids per row: the draft checked in one pass (`_verify`), then token by
        token only for the rows where the draft went wrong before a stop string, on the verify pass's
        own KV cache (the rejected draft tokens masked out), so nothing is computed twice."""
        accepted, done, state = self._verify(bins, suffix_ids, draft_ids, max_new_tokens)
        todo = [r for r in range(len(suffix_ids)) if not done[r]]
        if todo:
            for r, new in zip(todo, self._continue(state, todo, accepted, max_new_tokens), strict=True):
                accepted[r] = new
        return [a[:max_new_tokens] for a in accepted]

    def _continue(self, state: tuple[Any, torch.Tensor], todo: Sequence[int], accepted: Sequence[Sequence[int]],
                  max_new_tokens: int) -> list[list[int]]:
        """Greedy decoding of rows ``todo`` from the verify pass's cache: each row's last accepted token is
        the LLM's own (not yet in the cache); the row stops at a stop string, EOS or ``max_new_tokens``."""
        cache, mask = state
        index = torch.tensor(todo, device=mask.device)
        cache.batch_select_indices(index)
        mask = mask[index]
        rows = [list(accepted[r]) for r in todo]
        nxt = torch.tensor([row[-1] for row in rows], device=mask.device)
        position = mask.sum(-1, keepdim=True)  # valid tokens so far: the next token's position
        live = [True] * len(rows)
        while any(live):
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            with self._autocast():
                logits = self.model.llm(input_ids=nxt[:, None], attention_mask=mask, position_ids=position,
                                        cache=cache, use_cache=True).logits
            nxt = logits[:, -1].argmax(-1)
            position = position + 1
            for i, token in enumerate(nxt.tolist()):
                if live[i]:
                    rows[i].append(token)
                    live[i] = not self._ended(rows[i], max_new_tokens)
        return rows

    def _ended(self, ids: Sequence[int], max_new_tokens: int) -> bool:
        """Whether an answer's new ids reach a stop string, EOS or ``max_new_tokens``."""
        eos = self.tokenizer.eos_token_id
        text = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        return _stop_index(text) != -1 or (eos is not None and eos in ids) or len(ids) >= max_new_tokens

    def _generate_ids(self, bins: torch.Tensor, suffix_ids: Sequence[Sequence[int]], max_new_tokens: int,
                      temperature: float, stop_event: threading.Event | None, streamer: Any) -> list[list[int]]:
        """The new token ids per row (transformers `generate`, stopped at a stop string)."""
        from transformers import StoppingCriteriaList

        tok = self.tokenizer
        embeds, mask = self._inputs(bins, suffix_ids)
        criteria = StoppingCriteriaList([StopOnStrings(tok, 0, STOPS, stop_event)])
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        with self._autocast():
            out = self.model.llm.generate(inputs_embeds=embeds, attention_mask=mask,
                                          max_new_tokens=max(1, max_new_tokens), stopping_criteria=criteria,
                                          streamer=streamer, pad_token_id=tok.pad_token_id or tok.eos_token_id,
                                          **sampling)
        return [row.tolist() for row in out]

    def _verify(self, bins: torch.Tensor, suffix_ids: Sequence[Sequence[int]], draft_ids: Sequence[Sequence[int]],
                max_new_tokens: int) -> tuple[list[list[int]], list[bool], tuple[Any, torch.Tensor]]:
        """Speculative decoding with a draft per row (Leviathan et al. 2023, greedy case): one causal
        forward over prompt + draft gives the LLM's greedy token at every draft position; the draft is
        kept up to its first token the LLM would not have chosen, plus the LLM's own token there.
        Returns (the LLM's greedy tokens so far, whether each row has reached a stop string, the pass's KV
        cache and attention mask with each row's rejected draft tokens masked, for `_continue`)."""
        draft_ids = [list(d)[:max_new_tokens] for d in draft_ids]
        embeds, mask = self._inputs(bins, [list(s) + d for s, d in zip(suffix_ids, draft_ids, strict=True)])
        # Left-padded as generate pads, with the same positions; logits only where a draft token is chosen.
        keep = max(len(d) for d in draft_ids) + 1
        with self._autocast():
            out = self.model.llm(inputs_embeds=embeds, attention_mask=mask, use_cache=True,
                                 position_ids=(mask.cumsum(-1) - 1).clamp(min=0), logits_to_keep=keep)
        logits, width = out.logits, mask.shape[1]
        accepted, done = [], []
        for r, d in enumerate(draft_ids):
            greedy = logits[r, keep - len(d) - 1 :].argmax(-1).tolist()  # from the token before the draft
            k = 0
            while k < len(d) and d[k] == greedy[k]:
                k += 1
            ids = d[:k] + [greedy[k]]  # the LLM's own token after what it kept (after the whole draft if k = len(d))
            accepted.append(ids)
            done.append(self._ended(ids, max_new_tokens))
            mask[r, width - len(d) + k:] = 0  # draft tokens after the first rejected one (none if all kept)
        return accepted, done, (out.cache, mask)

    def drafts(self, bins: torch.Tensor, questions: Sequence[str | None]) -> list[str | None]:
        """Each row's draft answer from the connector's own count head (a description for None, else the
        answer to a grounded question; None where the question is not one). Drafts only speed decoding
        up: `_verify` keeps what the LLM itself would say."""
        out: list[str | None] = []
        for vec, q in zip(self._head_counts(bins), questions, strict=True):
            counts = counts_from_vector(vec)
            if q is None:
                out.append(format_description(counts))
            elif (parsed := parse_question(q)) is not None:
                out.append(make_question(parsed.kind, counts, parsed.shape).answer)
            else:
                out.append(None)
        return out

    def describe(self, encodings: Sequence[str], max_new_tokens: int = 48, batch_size: int = 50) -> list[str]:
        """One description per encoding, greedy."""
        out: list[str] = []
        for i in range(0, len(encodings), batch_size):
            chunk = list(encodings[i : i + batch_size])
            bins = self._bins(chunk)
            out += self._generate(bins, [f"\n{OUTPUT_SIGNIFIER}"] * len(chunk), max_new_tokens,
                                  drafts=self.drafts(bins, [None] * len(chunk)))
        return out

    def answer_questions(self, encodings: Sequence[str], questions: Sequence[str], max_new_tokens: int = 96,
                         descriptions: Sequence[str] | None = None) -> list[str]:
        """Greedy answers, one question per encoding: a first chat turn (`build_question`), or the second
        after the reader's own ``descriptions`` (the Chat page's describe-first turn)."""
        before = [f"\n{OUTPUT_SIGNIFIER} {d.strip()}" for d in descriptions] if descriptions is not None \
            else [""] * len(questions)
        suffixes = [f"{b}\n{QUESTION_SIGNIFIER} {q.strip()}\n{ANSWER_SIGNIFIER}"
                    for b, q in zip(before, questions, strict=True)]
        bins = self._bins(encodings)
        return self._generate(bins, suffixes, max_new_tokens, drafts=self.drafts(bins, list(questions)))

    @torch.no_grad()
    def read_counts(self, encodings: Sequence[str]) -> np.ndarray:
        """int64 [n, 8]: the connector's own count head (what the shape tokens carry)."""
        return self._head_counts(self._bins(encodings))

    def _head_counts(self, bins: torch.Tensor) -> np.ndarray:
        """int64 [n, 8]: the count head's shape-type rows (not its group sums), argmax."""
        _, _, logits = self.model.connector.features(bins)
        return logits[:, : len(SHAPES)].argmax(-1).cpu().numpy().astype(np.int64)

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

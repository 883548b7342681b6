"""A tiny GPT over the task's word vocabulary, with cached sampling and response log-probs."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bench.study.task import BOS, PAD, TOKEN_ID, VOCAB, Problem


@dataclass(frozen=True)
class GPTConfig:
    vocab: int = len(VOCAB)
    d_model: int = 64
    layers: int = 4
    heads: int = 4
    context: int = 88


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model),
            nn.GELU(),
            nn.Linear(4 * cfg.d_model, cfg.d_model),
        )

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        # With a cache, the new positions are the last ones and may see everything before.
        att = F.scaled_dot_product_attention(q, k, v, is_causal=cache is None and t > 1)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        x = x + self.mlp(self.ln2(x))
        return x, (k, v)


class TinyGPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos = nn.Embedding(cfg.context, cfg.d_model)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.layers)])
        self.ln = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        self.apply(_init)

    def forward(
        self,
        ids: torch.Tensor,
        caches: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
        start: int = 0,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        t = ids.shape[1]
        x = self.tok(ids) + self.pos(torch.arange(start, start + t))
        new = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if caches is None else caches[i])
            new.append(kv)
        return self.head(self.ln(x)), new

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, std=0.02)


def prompt_ids(problems: list[Problem]) -> torch.Tensor:
    """(B, P): BOS then the prompt words (every prompt has the same length)."""
    return torch.tensor(
        [[TOKEN_ID[BOS], *(TOKEN_ID[w] for w in p.prompt_tokens)] for p in problems]
    )


@torch.no_grad()
def sample(
    model: TinyGPT,
    problems: list[Problem],
    max_new: int,
    temperature: float,
    generator: torch.Generator | None = None,
) -> list[list[str]]:
    """One response per problem, up to and including "E" (or `max_new` words).

    temperature 0 is greedy decoding. The pad and BOS tokens are never sampled.
    """
    model.eval()
    ids = prompt_ids(problems)
    logits, caches = model(ids)
    pos = ids.shape[1]
    end = TOKEN_ID["E"]
    banned = torch.tensor([TOKEN_ID[PAD], TOKEN_ID[BOS]])
    out = torch.full((len(problems), max_new), TOKEN_ID[PAD])
    done = torch.zeros(len(problems), dtype=torch.bool)
    for i in range(max_new):
        last = logits[:, -1, :].clone()
        last[:, banned] = -math.inf
        if temperature == 0:
            nxt = last.argmax(dim=-1)
        else:
            probs = torch.softmax(last / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, TOKEN_ID[PAD]), nxt)
        out[:, i] = nxt
        done |= nxt == end
        if bool(done.all()) or pos >= model.cfg.context:
            break
        logits, caches = model(nxt[:, None], caches, start=pos)
        pos += 1
    responses = []
    for row in out.tolist():
        words = []
        for tid in row:
            if tid == TOKEN_ID[PAD]:
                break
            words.append(VOCAB[tid])
            if tid == end:
                break
        responses.append(words)
    return responses


def batch_ids(
    problems: list[Problem], responses: list[list[str]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, P+R), response mask (B, P+R-1) over the predicted positions)."""
    prompts = prompt_ids(problems)
    width = max(1, max(len(r) for r in responses))
    resp = torch.full((len(responses), width), TOKEN_ID[PAD])
    mask = torch.zeros((len(responses), width))
    for i, r in enumerate(responses):
        if r:
            resp[i, : len(r)] = torch.tensor([TOKEN_ID[w] for w in r])
            mask[i, : len(r)] = 1.0
    ids = torch.cat([prompts, resp], dim=1)
    # Position j of the logits predicts token j + 1: response tokens are predicted from P-1 on.
    full_mask = torch.cat([torch.zeros((len(responses), prompts.shape[1] - 1)), mask], dim=1)
    return ids, full_mask


def token_logprobs(model: TinyGPT, ids: torch.Tensor) -> torch.Tensor:
    """(B, T-1) log-probabilities of each next token."""
    logits, _ = model(ids[:, :-1])
    return torch.log_softmax(logits, dim=-1).gather(2, ids[:, 1:, None]).squeeze(2)


def save_policy(model: TinyGPT, path: str) -> None:
    torch.save({"config": asdict(model.cfg), "state": model.state_dict()}, path)


def load_policy(path: str) -> TinyGPT:
    blob = torch.load(path, weights_only=True)
    model = TinyGPT(GPTConfig(**blob["config"]))
    model.load_state_dict(blob["state"])
    return model

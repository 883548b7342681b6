"""A small Dockerfile reader for the image tests: instructions, stages, ARG/ENV expansion.

No Docker engine runs here, so the tests read the Dockerfile the way the builder does: line
continuations joined, comments dropped, global ARGs expanded in FROM, per-stage ARG/ENV
scopes, and the `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` forms the builder expands.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-case, e.g. "RUN"
    args: str  # the rest of the logical line, continuations joined
    line: int  # 1-based line where the instruction starts

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form argument (ENTRYPOINT ["a", "b"]), else None."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"line {self.line}: {self.keyword} is not a JSON array of strings")
        return value


@dataclass
class Stage:
    base: str  # FROM argument before expansion
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)


def expand(text: str, scope: dict[str, str]) -> str:
    """Expand builder variables; unknown variables expand to the empty string, as in Docker."""

    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        value = scope.get(name, "")
        op = m.group("op")
        if op == "-":
            return value or m.group("word")
        if op == "+":
            return m.group("word") if value else ""
        return value

    return _VAR.sub(repl, text)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comment lines inside a continuation are dropped by the builder
        if not buf:
            start = number
        if raw.rstrip().endswith("\\"):
            buf.append(raw.rstrip()[:-1])
            continue
        buf.append(raw)
        lines.append((start, " ".join(part.strip() for part in buf)))
        buf = []
    if buf:
        raise ValueError(f"line {start}: continuation runs past the end of the file")
    return lines


def _parse_kv(args: str) -> dict[str, str]:
    """ARG/ENV arguments: `K=V K2="V 2"` pairs, or the legacy `K V` form of ENV."""
    tokens = shlex.split(args, posix=True)
    if len(tokens) >= 2 and "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    pairs: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        pairs[key] = value if sep else None  # type: ignore[assignment]
    return pairs


class Dockerfile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.global_args: dict[str, str] = {}
        self.stages: list[Stage] = []
        for line, logical in _logical_lines(path.read_text()):
            keyword, _, args = logical.strip().partition(" ")
            ins = Instruction(keyword.upper(), args.strip(), line)
            if ins.keyword == "FROM":
                words = ins.args.split()
                words = [w for w in words if not w.startswith("--platform")]
                name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
                self.stages.append(Stage(base=words[0], name=name))
            elif not self.stages:
                if ins.keyword != "ARG":
                    raise ValueError(f"line {line}: only ARG may precede the first FROM")
                for key, value in _parse_kv(ins.args).items():
                    self.global_args[key] = value or ""
            else:
                self.stages[-1].instructions.append(ins)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"{self.path} has no stage named {name!r}")

    def chain(self, build_args: dict[str, str] | None = None) -> list[Stage]:
        """Stages of the final image, base first, with FROM expanded from the global ARGs."""
        scope = {**self.global_args, **(build_args or {})}
        chain: list[Stage] = []
        stage: Stage | None = self.stages[-1]
        while stage is not None:
            chain.append(stage)
            base = expand(stage.base, scope)
            stage = next((s for s in self.stages if s.name == base), None)
        return list(reversed(chain))

    def external_bases(self, build_args: dict[str, str] | None = None) -> list[str]:
        """Expanded FROM images that are not stages of this Dockerfile."""
        scope = {**self.global_args, **(build_args or {})}
        names = {s.name for s in self.stages}
        return [expand(s.base, scope) for s in self.stages if expand(s.base, scope) not in names]

    def image_config(self, build_args: dict[str, str] | None = None) -> dict[str, object]:
        """The final image's ENV, USER, ENTRYPOINT, CMD and HEALTHCHECK, as the builder sets them."""
        supplied = build_args or {}
        env: dict[str, str] = {}
        config: dict[str, object] = {"env": env}
        for stage in self.chain(supplied):
            # ARG scope restarts at every FROM; ENV is inherited from the base stage.
            args: dict[str, str] = {}
            for ins in stage.instructions:
                scope = {**args, **env}
                if ins.keyword == "ARG":
                    for key, default in _parse_kv(ins.args).items():
                        if key in supplied:
                            args[key] = supplied[key]
                        elif default is not None:
                            args[key] = expand(default, scope)
                        else:
                            args[key] = self.global_args.get(key, "")
                elif ins.keyword == "ENV":
                    for key, value in _parse_kv(ins.args).items():
                        env[key] = expand(value or "", {**args, **env})
                elif ins.keyword == "USER":
                    config["user"] = expand(ins.args, scope)
                elif ins.keyword in ("ENTRYPOINT", "CMD", "HEALTHCHECK", "WORKDIR"):
                    config[ins.keyword.lower()] = ins
        return config

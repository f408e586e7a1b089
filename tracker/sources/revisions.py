"""Revision names -> (stage, step, tokens), by a grammar kept as data (``data/revisions.json``).

Public suites name their checkpoints in a dozen ways (``step1000``, ``stage1-step1000-
tokens4B``, ``step-1000``, ``ckpt_012``, ``CrystalCoder_phase2_checkpoint_500``, ...).
Each pattern of the grammar is a regex with named groups ``step`` (required), ``stage``,
``tokens`` and ``tokens_b`` (billions); a user's ``--revision-pattern`` comes first. A
listing (:meth:`RevisionGrammar.listing`) parses every name and then:

- names that match nothing are kept in ``unmatched`` (the walk lists them, never drops
  them silently); revisions of a ``parallel`` pattern (alternative continuations, such
  as OLMo 2's stage-2 ingredients) are set aside unless the user's pattern selects them;
- where a stage's steps restart (its first step is below the previous stage's last),
  its steps (and the tokens its names give) are made cumulative by adding the previous
  stage's last, so ``step`` orders the whole run; the name stays the revision, and a
  restarted stage's step 0 (the previous stage's end, named anew) is set aside;
- two revisions that land on one step are refused, naming both: which one holds that
  step's weights cannot be told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from massdyn.data import read_json
from massdyn.tracker.sources.base import CheckpointError


@dataclass(frozen=True)
class Revision:
    """One checkpoint's name and what it says.

    Attributes:
        name: The branch, tag or folder name.
        step: Cumulative step (the name's step plus earlier stages' where steps restart).
        stage: Training stage or phase ("" when the suite has none).
        tokens: Cumulative training tokens when the name gives them, else None.
        named_step: The step as the name gives it.
    """

    name: str
    step: int
    stage: str = ""
    tokens: int | None = None
    named_step: int | None = None


@dataclass
class Listing:
    """A series' revisions: step -> name, what each says, and what was not taken."""

    steps: dict[int, str] = field(default_factory=dict)
    revisions: dict[int, Revision] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    set_aside: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Pattern:
    name: str
    regex: re.Pattern
    parallel: bool = False
    local: bool = False


def compile_pattern(text: str) -> re.Pattern:
    """A ``--revision-pattern``: a regex with a ``step`` group (``stage``, ``tokens`` optional).

    Raises:
        ValueError: an invalid regex, or one without the ``step`` group.
    """
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ValueError(f"--revision-pattern {text!r} is not a valid regex: {exc}") from None
    if "step" not in pattern.groupindex:
        raise ValueError(
            f"--revision-pattern {text!r} has no (?P<step>...) group: name the group that "
            r"holds the step, e.g. '^ckpt-(?P<step>\d+)$'"
        )
    return pattern


class RevisionGrammar:
    """The shipped patterns, after an optional user pattern.

    Args:
        extra: A ``--revision-pattern`` regex, tried first (its matches are never set aside).
        local: Whether the names are local folders (the local-only patterns apply too).
    """

    def __init__(self, extra: str | None = None, local: bool = False):
        data = read_json("revisions.json")["patterns"]
        self.patterns = [
            _Pattern(p["name"], re.compile(p["regex"]), p.get("parallel", False))
            for p in data
            if local or not p.get("local", False)
        ]
        if extra:
            self.patterns.insert(0, _Pattern("--revision-pattern", compile_pattern(extra)))

    def parse(self, name: str) -> tuple[Revision, bool] | None:
        """The revision a name gives (its step as named) and whether it is set aside."""
        for p in self.patterns:
            m = p.regex.fullmatch(name)
            if not m:
                continue
            groups = m.groupdict()
            tokens = None
            if groups.get("tokens"):
                tokens = int(groups["tokens"])
            elif groups.get("tokens_b"):
                tokens = int(groups["tokens_b"]) * 10**9
            step = int(groups["step"])
            stage = groups.get("stage") or ""
            return Revision(name, step, stage, tokens, step), p.parallel
        return None

    def listing(self, names, where: str) -> Listing:
        """Parse ``names`` into a :class:`Listing` (see the module docstring).

        Raises:
            CheckpointError: when two revisions land on one step, naming both.
        """
        out = Listing()
        parsed = []
        for name in sorted(names):
            got = self.parse(name)
            if got is None:
                out.unmatched.append(name)
            elif got[1]:
                out.set_aside.append(name)
            else:
                parsed.append(got[0])
        by_stage: dict[str, list[Revision]] = {}
        for r in parsed:
            by_stage.setdefault(r.stage, []).append(r)
        # Unstaged names (OLMo 2's early "step150-tokens1B") belong to the first stage.
        order = sorted((s for s in by_stage if s), key=_stage_key)
        if "" in by_stage:
            if order:
                by_stage[order[0]] += by_stage.pop("")
            else:
                order = [""]
        # The previous stage's last revision: named step, cumulative step and tokens.
        offset, token_offset, previous = 0, 0, None
        for stage in order:
            revs = sorted(by_stage[stage], key=lambda r: r.step)
            restarts = previous is not None and revs[0].step < previous[0]
            if restarts:
                offset = previous[1]
                # Tokens in a restarted stage's names count from its start too.
                token_offset = previous[2]
            for r in revs:
                if restarts and r.step == 0:  # the previous stage's end, named anew
                    out.set_aside.append(r.name)
                    continue
                cumulative = r.step + offset
                if cumulative in out.steps:
                    raise CheckpointError(
                        f"{where} holds two revisions for step {cumulative}: "
                        f"{out.steps[cumulative]} and {r.name}; keep one (move the other out "
                        "of the series, or select one with --revision-pattern)"
                    )
                tokens = None
                if r.tokens is not None and token_offset is not None:
                    tokens = r.tokens + token_offset
                out.steps[cumulative] = r.name
                out.revisions[cumulative] = Revision(r.name, cumulative, r.stage, tokens, r.step)
            last = out.revisions.get(revs[-1].step + offset)
            previous = (revs[-1].step, revs[-1].step + offset, last.tokens if last else None)
        return out


def _stage_key(stage: str):
    digits = re.match(r"\d+", stage)
    return (int(digits.group()) if digits else 0, stage)

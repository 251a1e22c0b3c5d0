"""The audit's verdict: a level (Low, Moderate, High background reliance) and one sentence, a
pure function of two instance hit@1 rates.

* ``mixed_rand`` hit@1: the share of images whose own original is still retrieved first when
  the object is put on a random background photo (high = the object carries the identity);
* ``only_bg`` hit@1: the share retrieved first from their background alone, object inpainted
  away (high = the background carries the identity).

Levels (:data:`THRESHOLDS`): **Low** when mixed_rand >= 0.9 *and* only_bg <= 0.1; **High** when
mixed_rand < 0.5 *or* only_bg >= 0.3; else **Moderate**. The sentence states only the numbers
that decided the level, each phrased so that a larger number means more reliance or less (never
both in one sentence), beside its chance level, 1 / gallery size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEVELS = ("Low", "Moderate", "High")


@dataclass(frozen=True)
class Thresholds:
    """The verdict's edges, as shares of images (0-1)."""

    low_mixed_rand_at_least: float = 0.9  # Low needs this many to keep their original...
    low_only_bg_at_most: float = 0.1  # ...and at most this many found from the background
    high_mixed_rand_below: float = 0.5  # High when fewer keep their original...
    high_only_bg_at_least: float = 0.3  # ...or at least this many are found from the background


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Verdict:
    """A model's background reliance: ``level`` (one of :data:`LEVELS`) and ``sentence``."""

    level: str
    sentence: str

    def __str__(self) -> str:
        return self.sentence


def percent(share: float) -> str:
    """A share as a percentage with the digits it needs: 0.94 -> '94%', 1/600 -> '0.17%'."""
    if share >= 0.1 or share == 0:
        return f"{share:.0%}"
    return f"{100 * share:.2g}%"


def verdict(
    mixed_rand_hit_at_1: float,
    only_bg_hit_at_1: float,
    chance: float,
    thresholds: Thresholds = THRESHOLDS,
) -> Verdict:
    """The level and its sentence from the two hit@1 rates (0-1) and the chance level of a hit
    (1 / gallery size); the thresholds are :class:`Thresholds`."""
    kept, found, t = mixed_rand_hit_at_1, only_bg_hit_at_1, thresholds
    lost_text = f"{percent(1 - kept)} of images lose their own original when the background changes"
    kept_text = (
        f"only {percent(kept)} of images retrieve their own original first when the background "
        "changes"
    )
    found_text = f"{percent(found)} are retrieved first from their background alone"
    if kept >= t.low_mixed_rand_at_least and found <= t.low_only_bg_at_most:
        level, reasons = "Low", [lost_text, f"only {found_text}"]
    elif kept < t.high_mixed_rand_below or found >= t.high_only_bg_at_least:
        level = "High"
        reasons = [kept_text] if kept < t.high_mixed_rand_below else []
        reasons += [found_text] if found >= t.high_only_bg_at_least else []
    else:  # what keeps it from Low
        level = "Moderate"
        reasons = [lost_text] if kept < t.low_mixed_rand_at_least else []
        reasons += [found_text] if found > t.low_only_bg_at_most else []
    if reasons[0] is found_text:  # it opens the sentence: say whose share it is
        reasons[0] = found_text.replace(" are retrieved", " of images are retrieved", 1)
    return Verdict(
        level,
        f"{level} background reliance: {' and '.join(reasons)} (chance {percent(chance)}).",
    )


def model_verdict(model: dict[str, Any], chance: float, label_metrics: bool) -> Verdict:
    """:func:`verdict` of one model's audit.json entry, its sentence followed by the MAP@R drop
    on random backgrounds (with labels) and the BG-gap."""
    conditions = model["conditions"]
    result = verdict(
        conditions["mixed_rand"]["instance"]["hit_at_1"],
        conditions["only_bg"]["instance"]["hit_at_1"],
        chance,
    )
    extra = []
    if label_metrics:
        before = conditions["original"]["symmetric"]["map_at_r"]
        after = conditions["mixed_rand"]["symmetric"]["map_at_r"]
        extra.append(f"MAP@R {before:.3f} -> {after:.3f} on random backgrounds")
    if model.get("bg_gap") is not None:
        extra.append(f"BG-gap {model['bg_gap']:+.3f}")
    if not extra:
        return result
    return Verdict(result.level, result.sentence[:-1] + "; " + "; ".join(extra) + ".")

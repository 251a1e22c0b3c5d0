"""The audit's verdict: a level (Low, Moderate, High background reliance, or Insufficient) and
one sentence, a pure function of two instance hit@1 rates and their 95% intervals.

* ``mixed_rand`` hit@1: the share of images whose own original is still retrieved first when
  the object is put on a random background photo (high = the object carries the identity);
* ``only_bg`` hit@1: the share retrieved first from their background alone, object inpainted
  away (high = the background carries the identity).

Levels (:data:`THRESHOLDS`): **Low** when mixed_rand >= 0.9 *and* only_bg <= 0.1; **High** when
mixed_rand < 0.5 *or* only_bg >= 0.3; else **Moderate**. The sentence states only the numbers
that decided the level, each phrased so that a larger number means more reliance or less (never
both in one sentence), beside its chance level, 1 / gallery size.

With intervals, the level is the one the whole interval box lies in; a box that spans two levels
gives **Insufficient** ("Not enough images to tell ..."). So does an audit of fewer than
:data:`MIN_VERDICT_IMAGES` images: there one image moves a rate by more than 10 points and a
random ranking alone finds more than the Low level allows from the background, so no interval
of so few images (a bootstrap of all-equal values has width 0) can be trusted to separate levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LEVELS = ("Low", "Moderate", "High")
INSUFFICIENT = "Insufficient"  # the level when the data cannot tell two levels apart
MIN_VERDICT_IMAGES = 10  # below: no level at all (1 image = more than 10 points of a rate)
Interval = tuple[float, float]


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


def level_of(kept: float, found: float, thresholds: Thresholds = THRESHOLDS) -> str:
    """The level of point values: mixed_rand hit@1 ``kept``, only_bg hit@1 ``found``."""
    t = thresholds
    if kept >= t.low_mixed_rand_at_least and found <= t.low_only_bg_at_most:
        return "Low"
    if kept < t.high_mixed_rand_below or found >= t.high_only_bg_at_least:
        return "High"
    return "Moderate"


def _span(value: float, interval: Interval | None) -> str:
    """A share and, when given, its interval: '94% (95% CI 88-98%)'."""
    if interval is None:
        return percent(value)
    return f"{percent(value)} (95% CI {percent(interval[0])[:-1]}-{percent(interval[1])})"


def verdict(
    mixed_rand_hit_at_1: float,
    only_bg_hit_at_1: float,
    chance: float,
    thresholds: Thresholds = THRESHOLDS,
    mixed_rand_ci: Interval | None = None,
    only_bg_ci: Interval | None = None,
    images: int | None = None,
) -> Verdict:
    """The level and its sentence from the two hit@1 rates (0-1), their 95% intervals (None: the
    point value alone), the chance level of a hit (1 / gallery size) and the images audited
    (None: not checked); the thresholds are :class:`Thresholds`."""
    kept, found, t = mixed_rand_hit_at_1, only_bg_hit_at_1, thresholds
    kept_lo, kept_hi = mixed_rand_ci or (kept, kept)
    found_lo, found_hi = only_bg_ci or (found, found)
    # the level falls as kept rises and rises with found: the box's two corners bound it
    best, worst = level_of(kept_hi, found_lo, t), level_of(kept_lo, found_hi, t)
    kept_s, found_s = _span(kept, mixed_rand_ci), _span(found, only_bg_ci)
    lost_s = _span(1 - kept, None if mixed_rand_ci is None else (1 - kept_hi, 1 - kept_lo))
    lost_text = f"{lost_s} of images lose their own original when the background changes"
    kept_text = (
        f"only {kept_s} of images retrieve their own original first when the background changes"
    )
    found_text = f"{found_s} are retrieved first from their background alone"
    chance_text = f"(chance {percent(chance)})"
    if images is not None and images < MIN_VERDICT_IMAGES:
        return Verdict(
            INSUFFICIENT,
            f"Not enough images to tell the level of background reliance: {images} audited, "
            f"at least {MIN_VERDICT_IMAGES} needed {chance_text}.",
        )
    if best != worst:
        return Verdict(
            INSUFFICIENT,
            f"Not enough images to tell {best} from {worst} background reliance: {kept_s} of "
            f"images retrieve their own original first when the background changes and "
            f"{found_s} are retrieved first from their background alone {chance_text}.",
        )
    level = best
    if level == "Low":
        reasons = [lost_text, f"only {found_text}"]
    elif level == "High":  # the reasons that hold over the whole interval (one at least)
        reasons = [kept_text] if kept_hi < t.high_mixed_rand_below else []
        reasons += [found_text] if found_lo >= t.high_only_bg_at_least else []
    else:  # what keeps it from Low, over the whole interval
        reasons = [lost_text] if kept_hi < t.low_mixed_rand_at_least else []
        reasons += [found_text] if found_lo > t.low_only_bg_at_most else []
    if reasons[0] is found_text:  # it opens the sentence: say whose share it is
        reasons[0] = found_text.replace(" are retrieved", " of images are retrieved", 1)
    return Verdict(level, f"{level} background reliance: {' and '.join(reasons)} {chance_text}.")


def model_verdict(model: dict[str, Any], chance: float, label_metrics: bool) -> Verdict:
    """:func:`verdict` of one model's audit.json entry, its sentence followed by the MAP@R drop
    on random backgrounds (with labels) and the BG-gap."""
    conditions = model["conditions"]
    kept, found = conditions["mixed_rand"]["instance"], conditions["only_bg"]["instance"]
    ci = "hit_at_1_ci"
    result = verdict(
        kept["hit_at_1"],
        found["hit_at_1"],
        chance,
        mixed_rand_ci=tuple(kept[ci]) if ci in kept else None,
        only_bg_ci=tuple(found[ci]) if ci in found else None,
        images=conditions["original"].get("images"),
    )
    extra = []
    if result.level == INSUFFICIENT:  # MAP@R and BG-gap of so few images would read as facts
        return result
    if label_metrics:
        before = conditions["original"]["symmetric"]["map_at_r"]
        after = conditions["mixed_rand"]["symmetric"]["map_at_r"]
        extra.append(f"MAP@R {before:.3f} -> {after:.3f} on random backgrounds")
    if model.get("bg_gap") is not None:
        extra.append(f"BG-gap {model['bg_gap']:+.3f}")
    if not extra:
        return result
    return Verdict(result.level, result.sentence[:-1] + "; " + "; ".join(extra) + ".")

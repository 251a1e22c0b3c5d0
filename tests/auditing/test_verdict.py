"""The verdict: its levels at each threshold's edge, and sentences that read one way."""

import pytest

from bgbias.auditing.verdict import THRESHOLDS, model_verdict, percent, verdict

CHANCE = 1 / 600


@pytest.mark.parametrize(
    "mixed_rand, only_bg, level",
    [
        # Low: mixed_rand >= 0.9 and only_bg <= 0.1 (both edges included)
        (0.9, 0.1, "Low"),
        (1.0, 0.0, "Low"),
        (0.9 - 1e-9, 0.1, "Moderate"),
        (0.9, 0.1 + 1e-9, "Moderate"),
        # High: mixed_rand < 0.5 (0.5 itself is not High) or only_bg >= 0.3 (0.3 is High)
        (0.5 - 1e-9, 0.0, "High"),
        (0.5, 0.2, "Moderate"),
        (0.5, 0.3 - 1e-9, "Moderate"),
        (0.95, 0.3, "High"),
        (0.0, 1.0, "High"),
    ],
)
def test_levels_at_the_threshold_edges(mixed_rand, only_bg, level):
    assert verdict(mixed_rand, only_bg, CHANCE).level == level


def test_thresholds_are_the_documented_ones():
    assert (
        THRESHOLDS.low_mixed_rand_at_least,
        THRESHOLDS.low_only_bg_at_most,
        THRESHOLDS.high_mixed_rand_below,
        THRESHOLDS.high_only_bg_at_least,
    ) == (0.9, 0.1, 0.5, 0.3)


def test_sentences_state_the_deciding_numbers_beside_chance():
    high = verdict(0.16, 0.01, CHANCE).sentence
    assert high == (
        "High background reliance: only 16% of images retrieve their own original first when "
        "the background changes (chance 0.17%)."
    )
    # the example: 94% kept but 35% found from the background: High, and the sentence
    # names only what makes it High, so it cannot read as praise
    found = verdict(0.94, 0.35, 1 / 20).sentence
    assert found == (
        "High background reliance: 35% of images are retrieved first from their background "
        "alone (chance 5%)."
    )
    assert "94%" not in found and "still" not in found
    both = verdict(0.2, 0.4, CHANCE).sentence
    assert "only 20% of images retrieve" in both and " and 40% are retrieved first" in both
    low = verdict(0.95, 0.02, CHANCE).sentence
    assert low == (
        "Low background reliance: 5% of images lose their own original when the background "
        "changes and only 2% are retrieved first from their background alone (chance 0.17%)."
    )
    moderate = verdict(0.8, 0.05, CHANCE).sentence
    assert moderate.startswith("Moderate background reliance: 20% of images lose their own")
    assert "background alone" not in moderate  # only_bg is not what keeps it from Low
    assert verdict(0.95, 0.2, CHANCE).sentence == (
        "Moderate background reliance: 20% of images are retrieved first from their background "
        "alone (chance 0.17%)."
    )


def test_percent_keeps_the_digits_small_shares_need():
    assert [percent(x) for x in (0.94, 0.1, 0.05, 1 / 600, 0.0)] == [
        "94%",
        "10%",
        "5%",
        "0.17%",
        "0%",
    ]


def test_model_verdict_adds_the_map_drop_and_bg_gap():
    model = {
        "conditions": {
            "original": {"symmetric": {"map_at_r": 0.84}},
            "mixed_rand": {"instance": {"hit_at_1": 0.164}, "symmetric": {"map_at_r": 0.371}},
            "only_bg": {"instance": {"hit_at_1": 0.072}},
        },
        "bg_gap": 0.483,
    }
    found = model_verdict(model, CHANCE, label_metrics=True)
    assert found.level == "High"
    assert found.sentence.endswith(
        "(chance 0.17%); MAP@R 0.840 -> 0.371 on random backgrounds; BG-gap +0.483."
    )
    assert str(found) == found.sentence
    plain = model_verdict(model | {"bg_gap": None}, CHANCE, label_metrics=False)
    assert plain.sentence.endswith("(chance 0.17%).")

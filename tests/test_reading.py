"""Plain-language reading: the words under the result, for each label."""

from __future__ import annotations

import pytest

from auscult.analyzer import AnalysisResult
from auscult.reading import DISCLAIMER, percent_pair, reading


def result(label="normal", probability=0.2, probs=(0.1, 0.2, 0.3), **kw) -> AnalysisResult:
    values = dict(
        label=label, probability=probability, threshold=0.5, reliable=label != "unsure",
        reason="", duration_s=20.0, sample_rate=8000, channels=1, quality=0.8,
        heart_rate_bpm=72.0, window_probabilities=tuple(probs),
        window_starts_s=tuple(2.0 * i for i in range(len(probs))), window_s=4.0, padded=False,
        warnings=(), model_version="test",
    )  # fmt: skip
    values.update(kw)
    return AnalysisResult(**values)


def test_abnormal_counts_windows_and_suggests_referral():
    r = reading(result("abnormal", 0.8, (0.9, 0.8, 0.7, 0.9, 0.2, 0.6, 0.9, 0.3, 0.9)))
    assert r.headline == "Abnormal"
    assert "Abnormal pattern in 7 of 9 windows" in r.summary
    assert "echocardiography" in r.next_step
    assert not r.borderline


def test_normal_says_no_murmur_like_pattern():
    r = reading(result())
    assert r.headline == "Normal"
    assert "none of 3 windows" in r.summary
    assert "follow up as usual" in r.next_step


def test_a_phone_that_missed_the_low_band_is_told_to_listen_again_with_a_stethoscope():
    warned = result(
        warnings=(
            "little sound below 80 Hz was recorded (as with a phone's "
            "microphone), so the heart-cycle reading left that band out",
        )
    )
    assert any("stethoscope" in tip for tip in reading(warned).tips)
    assert not any("stethoscope" in tip for tip in reading(result()).tips)


def test_unsure_says_too_poor_and_how_to_record_again():
    r = reading(result("unsure", 0.7, quality=0.1))
    assert r.headline == "Unsure"
    assert r.subtitle == "too poor to judge"
    assert r.next_step.startswith("Record again")
    assert any("firmly" in tip for tip in r.tips)
    assert any("Quiet room" in tip for tip in r.tips)


def test_unsure_names_what_spoiled_the_recording():
    problem = "72% of the sound lies above the heart-sound range — speech, rubbing or room noise"
    r = reading(result("unsure", 0.7, quality=0.0, quality_problem=problem))
    assert r.summary.startswith("72% of the sound lies above the heart-sound range")


def test_borderline_is_unsure_names_the_band_and_asks_for_another_recording():
    r = reading(
        result("unsure", 0.52, (0.52, 0.51, 0.53), borderline=True, band=(0.44, 0.57)),
    )
    assert r.borderline
    assert r.headline == "Unsure"
    assert r.subtitle == "borderline — too close to call"
    assert "borderline band 44%–57%" in r.summary
    assert "leans abnormal" in r.summary
    assert "another site" in r.next_step
    assert not any("Quiet room" in tip for tip in r.tips)  # the recording itself was fine


def test_a_call_outside_the_band_is_not_borderline():
    r = reading(result("abnormal", 0.58, (0.52, 0.61, 0.6), band=(0.44, 0.57)))
    assert not r.borderline
    assert r.headline == "Abnormal"


@pytest.mark.parametrize(
    ("warning", "tip"), [("3% of the samples are clipped (too loud)", "too loud")]
)
def test_warnings_turn_into_tips(warning, tip):
    assert any(tip in t for t in reading(result(warnings=(warning,))).tips)


def test_short_recording_asks_for_a_longer_one():
    assert any("15–30 s" in t for t in reading(result(duration_s=3.5, padded=True)).tips)


def test_percent_pair_adds_a_decimal_only_when_needed():
    assert percent_pair(0.2, 0.65) == ("20%", "65%")
    assert percent_pair(0.649, 0.6529) == ("64.9%", "65.3%")


def test_disclaimer_says_decision_support():
    assert DISCLAIMER.startswith("Decision support, not a diagnosis")


def test_labels_say_what_the_model_can_say_not_a_lesion():
    abnormal = reading(result(label="abnormal", probability=0.6, probs=(0.6, 0.7, 0.5)))
    normal = reading(result(label="normal", probability=0.05, probs=(0.01, 0.02, 0.03)))
    assert abnormal.subtitle == "abnormal heart sound — needs review"
    assert "murmur" not in abnormal.subtitle + normal.subtitle

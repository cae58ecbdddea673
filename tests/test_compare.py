"""Paired comparisons: the exact McNemar test and its interval, on known tables and on real trained models."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from workbench.core.compare import NOT_SIGNIFICANT, across_seeds, format_p, paired, paired_correct, spread


def _pairs(both_right: int, ref_only: int, cand_only: int, both_wrong: int) -> tuple[np.ndarray, np.ndarray]:
    ref = np.r_[np.ones(both_right), np.ones(ref_only), np.zeros(cand_only), np.zeros(both_wrong)].astype(bool)
    cand = np.r_[np.ones(both_right), np.zeros(ref_only), np.ones(cand_only), np.zeros(both_wrong)].astype(bool)
    return ref, cand


def test_counts_difference_and_exact_p_value():
    c = paired_correct(*_pairs(9600, 40, 25, 335))
    assert (c.n, c.both_right, c.reference_only, c.candidate_only, c.both_wrong) == (10000, 9600, 40, 25, 335)
    assert c.discordant == 65
    assert c.difference == pytest.approx((25 - 40) / 10000)
    assert c.reference_accuracy == pytest.approx(0.964) and c.candidate_accuracy == pytest.approx(0.9625)
    assert c.p_value == pytest.approx(binomtest(25, 65, 0.5).pvalue)  # the exact McNemar test
    assert c.ci_low < c.difference < c.ci_high and c.ci_low < 0 < c.ci_high
    assert not c.significant and c.verdict == NOT_SIGNIFICANT
    assert "no significant difference" in c.summary() and "65 of 10,000 images disagree" in c.summary()


def test_a_large_one_sided_difference_is_significant():
    c = paired_correct(*_pairs(6500, 3000, 50, 450))
    assert c.significant and c.p_value < 1e-100
    assert c.verdict == "significantly worse" and c.ci_high < 0
    assert c.ci_low < c.difference < c.ci_high
    row = c.row()
    assert row["delta_pts"] == pytest.approx(-29.5) and row["significant"] is True


def test_a_borderline_case_follows_the_exact_test():
    """14 discordant pairs, 11 against 3: the Wald interval excludes 0, the exact test does not reject."""
    c = paired_correct(*_pairs(960, 11, 3, 26))
    assert c.p_value == pytest.approx(binomtest(3, 14, 0.5).pvalue) and c.p_value > 0.05
    assert c.ci_high < 0 and c.borderline and not c.significant
    assert c.verdict == "no significant difference (borderline)"


def test_models_that_never_disagree():
    ref, _ = _pairs(90, 0, 0, 10)
    c = paired_correct(ref, ref)
    assert (c.p_value, c.ci_low, c.ci_high, c.difference, c.verdict) == (1.0, 0.0, 0.0, 0.0, NOT_SIGNIFICANT)


def test_predictions_and_eval_results_are_paired_on_the_labels():
    labels = np.array([0, 1, 2, 3, 4, 5])
    a = np.array([0, 1, 2, 3, 0, 0])  # right on the first four
    b = np.array([0, 1, 0, 0, 4, 5])  # right on 0, 1, 4, 5

    class Result:
        predictions = b

    c = paired(a, Result(), labels)
    assert (c.both_right, c.reference_only, c.candidate_only, c.both_wrong) == (2, 2, 2, 0)


def test_bad_arguments_name_the_parameter():
    with pytest.raises(ValueError, match="candidate has 3 predictions for 4 labels"):
        paired([0, 1, 2, 3], [0, 1, 2], [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"alpha=1\.5 is out of range; allowed: a number in \(0, 1\)"):
        paired_correct([1, 0], [1, 1], alpha=1.5)
    with pytest.raises(ValueError, match="reference_correct is empty"):
        paired_correct([], [])
    with pytest.raises(ValueError, match="candidate_correct has values other than 0/1"):
        paired_correct([1, 0], [1, 2])
    with pytest.raises(ValueError, match="values is empty"):
        spread([])
    with pytest.raises(ValueError, match="comparisons"):
        across_seeds([])


def test_spread_and_seed_verdicts():
    s = spread([0.97, 0.98, 0.99])
    assert (s.mean, s.min, s.max, s.n) == (pytest.approx(0.98), 0.97, 0.99, 3)
    assert s.std == pytest.approx(0.01)
    assert s.text(100) == "98.00 ± 1.00 (97.00–99.00)" and spread([0.5]).text(100) == "50.00"
    assert math.isnan(spread([0.5]).std)
    worse = paired_correct(*_pairs(6500, 3000, 50, 450))
    noise = paired_correct(*_pairs(9600, 40, 25, 335))
    both = across_seeds([worse, worse])
    assert both["significant"] and both["significant_seeds"] == "2/2" and both["verdict"] == "significantly worse"
    mixed = across_seeds([worse, noise])
    assert not mixed["significant"] and mixed["significant_seeds"] == "1/2"
    assert mixed["p_value"] == noise.p_value and mixed["ci_high_pts"] == round(100 * noise.ci_high, 2)
    assert mixed["verdict"] == "no significant difference across seeds (significant in 1/2 seeds)"
    better = paired_correct(*_pairs(6500, 50, 3000, 450))
    assert across_seeds([worse, better])["verdict"] == (
        "no significant difference across seeds (significant in 2/2 seeds, in both directions)")


def test_format_p():
    assert [format_p(p) for p in (1e-9, 0.0123, 0.5, 1.0, float("nan"))] == [
        "p < 0.001", "p = 0.012", "p = 0.50", "p = 1", "–"]


# --- real trained models, real LiteRT -----------------------------------------------------------

@pytest.fixture(scope="module")
def full_test(mnist):
    return mnist.test_images, mnist.test_labels


def test_two_seeds_of_one_model_are_not_significantly_different(mnist, train_config, float_tflite, full_test):
    """The same LeNet trained with seed 0 and seed 1: a few tenths of a point apart, and within noise."""
    from dataclasses import replace

    from workbench import convert, evaluate
    from workbench.core.train import trained_lenet

    other = convert(trained_lenet(mnist, replace(train_config, seed=1)), "float32")
    images, labels = full_test
    a, b = evaluate(float_tflite, images, labels), evaluate(other, images, labels)
    assert a.predictions.tolist() != b.predictions.tolist()  # two different models ...
    c = paired(a, b, labels)
    assert c.discordant > 50, c.summary()  # ... that disagree on many images
    assert not c.significant and c.verdict == NOT_SIGNIFICANT, c.summary()
    assert c.ci_low < 0 < c.ci_high, c.summary()


def test_wrong_mean_std_is_significantly_worse(qat_uint8, full_test):
    """The same QAT model read with the right input stats (0, 255) and with wrong ones (127.5, 127.5)."""
    from workbench import convert, evaluate

    images, labels = full_test
    right = evaluate(convert(qat_uint8, "legacy-uint8", mean=0, std=255), images, labels)
    wrong = evaluate(convert(qat_uint8, "legacy-uint8", mean=127.5, std=127.5), images, labels)
    c = paired(right, wrong, labels)
    assert c.significant and c.verdict == "significantly worse", c.summary()
    assert c.p_value < 1e-6 and c.ci_high < -0.05, c.summary()
    assert c.difference == pytest.approx(wrong.accuracy - right.accuracy)


def test_comparison_columns_are_one_vocabulary_for_every_row():
    from workbench.core.compare import comparison_columns

    labels = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    test = paired(labels, np.array([0, 1, 0, 0, 1, 1, 1, 0]), labels)
    tested = comparison_columns(test)
    assert tested == test.row() and list(tested) == ["delta_pts", "ci_low_pts", "ci_high_pts", "p_value",
                                                     "significant", "discordant", "verdict"]
    reference, skipped = comparison_columns(), comparison_columns(verdict="not compared: 1 vs 2 epochs", delta_pts=-1.5)
    for row in (reference, skipped):
        assert list(row) == list(tested) and row["significant"] is None and np.isnan(row["p_value"])
    assert (reference["delta_pts"], reference["verdict"]) == (0.0, "reference")
    assert (skipped["delta_pts"], skipped["verdict"]) == (-1.5, "not compared: 1 vs 2 epochs")
    assert "discordant" not in comparison_columns(test, discordant=False)
    seeds = comparison_columns([test, test], seeds=True)
    assert list(comparison_columns(seeds=True)) == list(seeds) == ["delta_pts", "delta_std_pts", "ci_low_pts",
                                                                   "ci_high_pts", "p_value", "significant",
                                                                   "significant_seeds", "discordant", "verdict"]
    assert seeds["significant_seeds"] == "0/2" and seeds["delta_pts"] == tested["delta_pts"]

"""The figures of "Is it really gone?": they draw exactly the numbers they are given, in the book's style."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from unlearnlib.display import plot_gaps, plot_reactivation, plot_roc, style  # noqa: E402


def test_reactivation_curves_in_percent_with_the_references_styled_apart():
    ax = plot_reactivation({"agme-bdk": [0.0, 0.4, 0.8], "clean": [0.0, 0.1, 0.2], "backdoored": [1.0, 1.0, 1.0]},
                           [0, 4, 8])
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["agme-bdk"].get_ydata()) == [0.0, 40.0, 80.0]
    assert lines["clean model"].get_linestyle() == ":" and lines["backdoored model"].get_linestyle() == "--"
    assert style.check_figure(ax.figure) == []
    plt.close(ax.figure)


def test_gaps_show_only_cells_where_the_backdoor_was_removed_with_the_median():
    df = pd.DataFrame({"defense": ["agme", "agme", "agme", "baerase", "none"],
                       "planted": [True, True, False, True, True],
                       "breaks_asr": [False, False, False, True, False],
                       "reactivation_gap": [0.1, 0.3, 0.9, 0.5, 0.7]})
    ax = plot_gaps(df)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["agme"]  # baerase did not remove it; none is no defense
    dots, median = ax.get_lines()[0], ax.get_lines()[1]
    assert sorted(dots.get_xdata()) == [10.0, 30.0] and list(median.get_xdata()) == [20.0, 20.0]
    plt.close(ax.figure)


def test_roc_curve_with_its_auc_and_the_rules_point():
    ax = plot_roc({"target search": {"fpr": np.array([0, 0, 1]), "tpr": np.array([0, 0.5, 1]), "auc": 0.75}},
                  {"target search": (0.1, 0.6)})
    assert ax.get_legend().get_texts()[0].get_text() == "target search (AUC 0.75)"
    point = [ln for ln in ax.get_lines() if ln.get_marker() == "o"][0]
    assert (point.get_xdata()[0], point.get_ydata()[0]) == (10.0, 60.0)
    assert style.check_figure(ax.figure) == []
    plt.close(ax.figure)

"""Layer 8, display: the one plotting style (:mod:`.style`), the figures of every chapter, the tables and markdown
of the grids, text for a terminal, and the live controls of a running kernel. It imports every layer below it
and computes nothing a chapter reports: what it draws comes from :mod:`unlearnlib.experiment` and
:mod:`unlearnlib.evaluation`. Chapters import from here and from :mod:`unlearnlib`.

>>> from unlearnlib.display import metrics_table, plot_before_after
"""

from . import style, tables
from .attacks import compare_flow_fields, difference_gallery, plot_flow_field, plot_poison_sweep, plot_position_asr
from .bench import (
    plot_asr_vs_seconds,
    plot_asr_vs_unseen,
    plot_der,
    plot_grid_heatmaps,
    plot_robustness,
    plot_scaling,
    plot_success_heatmap,
    save_plots,
    save_robustness_plot,
)
from .editing import (
    edit_widget,
    plot_edit_picture,
    plot_neural_cleanse,
    plot_per_class,
    plot_sample_efficiency,
    target_margins,
)
from .gone import (
    clean_table,
    detection_table,
    gated_table,
    plot_gaps,
    plot_reactivation,
    plot_roc,
    reactivation_table,
)
from .images import (
    METRICS,
    glue_percents,
    imshow,
    metrics_table,
    plot_before_after,
    prediction_grid,
    show_images,
    trigger_gallery,
)
from .markdown import (
    clean_markdown,
    grid_markdown,
    layout_markdown,
    reactivation_markdown,
    robustness_markdown,
    scaling_markdown,
)
from .recovery import plot_search_scores, plot_trigger_gallery, plot_unlearning_curves
from .style import table
from .text import format_record
from .widgets import live, playground, trigger_explorer

__all__ = [
    "METRICS", "clean_markdown", "clean_table", "compare_flow_fields", "detection_table", "difference_gallery",
    "edit_widget", "format_record", "gated_table", "glue_percents", "grid_markdown", "imshow", "layout_markdown",
    "live", "metrics_table", "playground", "plot_asr_vs_seconds", "plot_asr_vs_unseen", "plot_before_after", "plot_der",
    "plot_edit_picture", "plot_flow_field", "plot_gaps", "plot_grid_heatmaps", "plot_neural_cleanse",
    "plot_per_class", "plot_poison_sweep", "plot_position_asr", "plot_reactivation", "plot_robustness", "plot_roc",
    "plot_sample_efficiency", "plot_scaling", "plot_search_scores", "plot_success_heatmap", "plot_trigger_gallery",
    "plot_unlearning_curves", "prediction_grid", "reactivation_markdown", "reactivation_table", "robustness_markdown",
    "save_plots", "save_robustness_plot", "scaling_markdown", "show_images", "style", "table", "tables",
    "target_margins", "trigger_explorer", "trigger_gallery"
]

r"""The files, plots and pages of a run, a sweep and a study: what `clarena report` shows.

The numbers come from `clarena.metrics` (the math); this package only writes them out.
Importing it does not import matplotlib: each module that draws imports it itself.

- `clarena.reports.writers`: the results files of a run, written atomically: `metrics.json`,
  `accuracy_matrix.csv`, `compatibility.csv` and the PNG plots (`CLResults.write` calls it).
- `clarena.reports.plots`: the PNG plots of one run (accuracy matrix, average accuracy, flips),
  drawn on matplotlib's Agg canvas.
- `clarena.reports.html`: the shared pieces of a self-contained HTML page and the page of a run.
- `clarena.reports.sweep` and `clarena.reports.sweep_plots`: the page, `sweep.csv` and the plots
  of a $\lambda_c$ sweep (accuracy against BTC and BEC, error overlap, incompatible points per
  class).
- `clarena.reports.study`: the study table (method × scenario, mean ± standard error over
  seeds) as CSV, Markdown and an HTML page.
"""

__all__ = ["html", "plots", "study", "sweep", "sweep_plots", "writers"]

"""Reports: evaluation, report files, HTML, plots and attention heat maps."""

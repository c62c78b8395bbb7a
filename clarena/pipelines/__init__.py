"""Pipelines: the task loop behind `clarena train`, evaluation of saved runs, and reports."""

"""Tests of utils.experiments, one file per module (a package, so their names cannot clash)."""

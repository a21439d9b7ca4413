"""Shared code for *Attention, Step by Step*.

One module per concept; each chapter imports what it teaches from here and shows its source
with :func:`utils.source.show_source`, so the book and the tests run the same code.
"""

__version__ = "0.1.0"

"""Shared code for *Attention, Step by Step*, in three layers.

* **Models**, the code the course teaches: ``rnn``, ``attention``, ``transformer``,
  ``gpt``, ``bert``, ``igpt`` (and ``vit`` as its chapter lands). They never plot.
* **Foundation**, what every chapter uses: ``checks`` (argument checks), ``env`` (seeds,
  threads, devices), ``data`` (data sets and batch streams), ``train`` (the training
  loop, losses, parameter counts), ``claims`` (the text's claims, checked; computed
  verdicts), ``timing`` (speeds compared in turns), ``sampling``, ``tokenizers``,
  ``plot``, ``widgets``, ``source``.
* **Experiments**, each chapter's tasks and drawings: ``utils.experiments``.

Each chapter imports what it teaches from here and shows its source with
:func:`utils.source.show_source`, so the book and the tests run the same code.
"""

__version__ = "0.1.0"

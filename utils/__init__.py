"""Shared code for *Attention, Step by Step*, in three layers.

* **Models**, the code the course teaches: ``rnn``, ``char_rnn``, ``rnn_seq2seq``,
  ``attention``, ``transformer``, ``gpt``, ``bert``, ``igpt``, ``cnn``, ``vit``,
  ``llama``, ``quantize``. They never plot.
* **Foundation**, what every chapter uses: ``checks`` (argument checks), ``convert``
  (copying a reference model's weights), ``env`` (seeds, threads, devices),
  ``threads`` (OpenMP's spin, from the machine's load), ``data`` (data sets and batch
  streams), ``train`` (the training loop, losses, accuracy,
  parameter counts), ``claims`` (the text's claims, checked; computed verdicts),
  ``timing`` (speeds compared in turns), ``sampling``, ``beam_search``,
  ``tokenizers``, ``pooling``, ``plot`` (with the course palette), ``widgets``,
  ``source``.
* **Experiments**, each chapter's tasks and drawings: ``utils.experiments``.

One vocabulary throughout (CONTRIBUTING.md lists it): configs name ``vocab_size``,
``block_size``, ``d_model``, ``num_heads``, ``num_layers``, ``dim_feedforward``,
``dropout``; models give ``features(...)`` before their head, attention weights when
called with ``need_weights=True``; randomness comes in as ``seed``; converters are
``from_hf`` and ``from_torch``.

Each chapter imports what it teaches from here and shows its source with
:func:`utils.source.show_source`, so the book and the tests run the same code.
"""

__version__ = "0.1.0"

from utils.threads import choose_openmp_spin

choose_openmp_spin()  # before torch loads: every chapter imports utils first

"""Each chapter's tasks, experiments and drawings (the models live one level up).

One module per experiment, named after it:

* ``receptive_field`` (chapter 0): what a conv stack and one attention layer see,
  measured by gradients;
* ``gradient_flow`` (chapters 1, 2): how far back the gradient reaches in an RNN or
  LSTM;
* ``signal_recall`` (chapter 2): remember a token across a lag, RNN against LSTM;
* ``bottleneck`` (chapter 3): the RNN encoder-decoder with and without attention,
  by source length, and its alignment;
* ``softmax_scaling`` (chapter 4): why the scores are divided by √d_k;
* ``neighbour_heads`` (chapter 5): heads that specialise, on a task that needs two;
* ``number_words`` (chapters 3, 6): English number words to digits;
* ``positional_encoding`` (chapter 6): the sinusoidal encoding and its dot products;
* ``residual_stream`` (chapter 6): a stack with and without residual connections;
* ``bigram`` (chapter 7): the next-token baseline a language model must beat;
* ``temperature`` (chapter 7): one prompt sampled at a temperature and a top-k;
* ``verse_books`` (chapter 7): which book a verse is from, fine-tuned or probed;
* ``linear_probe`` (chapters 7, 9): a logistic regression on frozen features;
* ``masked_lm`` (chapter 8): BERT's corruption, masked-LM batches, BERT against GPT,
  and the real all-MiniLM-L6-v2;
* ``encoder_finetune`` (chapter 8): the real MiniLM fine-tuned end to end, against a
  linear probe;
* ``pixel_gpt`` (chapter 9): MNIST digits as pixel tokens, the baselines a pixel model
  must beat, completions and linear probes;
* ``vit_digits`` (chapter 10): MNIST for the ViT and its CNN baseline;
* ``llm`` (chapter 11): SmolLM2-135M-Instruct in the course's code, chat, key/value
  heads, RoPE past the trained length, and weights in fewer bits;
* ``data_parallel`` (chapter 12): what each process of data parallelism keeps.
"""

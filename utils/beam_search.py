"""Beam search: keep the `beam_size` most likely partial outputs at every step.

Greedy decoding keeps one (beam_size=1). A wider beam can recover when the most likely
first token leads to a less likely whole sequence. Used in chapter 3, and it works with
any model that exposes one decoding step as ``step(tokens, state)``.
"""

import torch

from utils.checks import check_int


def beam_search(step, state, *, bos_id: int, eos_id: int, beam_size: int, max_len: int):
    """The most likely sequences under `step`, best first, as (ids, log-probability).

    ``step(tokens, state)`` maps token ids (K,) and a state (a tuple of tensors whose
    first dimension is K) to log-probabilities (K, V) and the next state. `state` is
    one sequence's state (first dimension 1). The ids exclude BOS and include the end
    token when one was produced. A sequence's score is the sum of its tokens'
    log-probabilities, so the search stops as soon as the best finished sequence
    scores at least the best unfinished one: adding tokens can only lower a score.
    """
    check_int("beam_size", beam_size)
    check_int("max_len", max_len)
    if any(len(s) != 1 for s in state):
        raise ValueError("state must hold one sequence (first dimension 1)")
    tokens = torch.tensor([bos_id])  # (K,) the last token of each live sequence
    sequences = [[]]  # the live sequences, BOS excluded
    scores = torch.zeros(1)  # (K,) their log-probabilities
    finished = []
    for _ in range(max_len):
        log_probs, state = step(tokens, state)  # (K, V)
        V = log_probs.shape[-1]
        total = (scores[:, None] + log_probs).flatten()  # (K * V,) every extension
        best = total.topk(min(beam_size, len(total))).indices
        keep = []
        for i in best.tolist():
            beam, token = divmod(i, V)
            sequence = sequences[beam] + [token]
            if token == eos_id:
                finished.append((sequence, total[i].item()))
            else:
                keep.append((beam, token, sequence, total[i]))
        if not keep:
            break
        beams = torch.tensor([k[0] for k in keep])
        state = tuple(s[beams] for s in state)  # each live sequence's own state
        tokens = torch.tensor([k[1] for k in keep])
        sequences = [k[2] for k in keep]
        scores = torch.stack([k[3] for k in keep])
        if finished and max(f[1] for f in finished) >= scores.max().item():
            break
    else:  # max_len reached: the unfinished sequences compete as they are
        finished += [(s, score.item()) for s, score in zip(sequences, scores)]
    return sorted(finished, key=lambda f: -f[1])

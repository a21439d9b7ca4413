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


def beam_search_batch(
    step, state, *, bos_id: int, eos_id: int, beam_size: int, max_len: int
) -> list[tuple[list[int], float]]:
    """`beam_search` for B sequences at once: each row's best (ids, log-probability).

    The same search as `beam_search`, row by row (the tests compare the two), with
    every row's `beam_size` beams in one call of ``step``. `state` holds B sequences
    (first dimension B). A beam that ended, or that the row does not need, stays in its
    slot with score -inf, and a row stops when `beam_search` would.
    """
    check_int("beam_size", beam_size)
    check_int("max_len", max_len)
    B, K, device = len(state[0]), beam_size, state[0].device
    if any(len(s) != B for s in state):
        raise ValueError("every tensor in state must have the same first dimension")
    state = tuple(s.repeat_interleave(K, dim=0) for s in state)  # (B * K, ...)
    tokens = torch.full((B * K,), bos_id, device=device)  # each slot's last token
    sequences = torch.zeros(B, K, 0, dtype=torch.long, device=device)  # BOS excluded
    scores = torch.full((B, K), -torch.inf, device=device)  # -inf: an empty slot
    scores[:, 0] = 0.0  # each row starts with one live sequence
    best = [([], -torch.inf)] * B  # each row's best finished sequence
    best_score = torch.full((B,), -torch.inf, device=device)
    rows = torch.arange(B, device=device)[:, None]  # (B, 1)
    for t in range(max_len):
        log_probs, state = step(tokens, state)  # (B * K, V)
        V = log_probs.shape[-1]
        total = scores[..., None] + log_probs.view(B, K, V)  # (B, K, V)
        top, index = total.flatten(1).topk(K)  # (B, K) best first
        beam, token = index // V, index % V
        sequences = torch.cat([sequences[rows, beam], token[..., None]], dim=-1)
        ended = (token == eos_id) & (top > -torch.inf)  # (B, K)
        first_end, slot = torch.where(ended, top, -torch.inf).max(dim=1)  # (B,)
        for b in (first_end > best_score).nonzero().flatten().tolist():
            best[b] = (sequences[b, slot[b]].tolist(), first_end[b].item())
        best_score = torch.maximum(best_score, first_end)
        scores = torch.where(ended, -torch.inf, top)  # (B, K) the live sequences
        state = tuple(  # each live sequence's own state
            s.view(B, K, *s.shape[1:])[rows, beam].flatten(0, 1) for s in state
        )
        tokens = token.flatten()
        live_best = scores.max(dim=1).values  # (B,) -inf: the row has stopped
        if t < max_len - 1:
            stop = best_score >= live_best  # adding tokens can only lower a score
            scores[stop] = -torch.inf
        elif (live_best > best_score).any():  # max_len: unfinished sequences compete
            slot = scores.argmax(dim=1)
            for b in (live_best > best_score).nonzero().flatten().tolist():
                best[b] = (sequences[b, slot[b]].tolist(), live_best[b].item())
        if (scores == -torch.inf).all():
            break
    return best

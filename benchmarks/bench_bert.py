"""Chapter 8: the from-scratch BERT's forward and backward pass against
transformers.BertModel (eager attention), with padding in the batch.
"""

import torch
import transformers

from utils.bert import Bert

from .timing import best_of, forward_backward, ratio_result


class _Reference(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, ids, mask):
        return self.m(ids, attention_mask=mask).last_hidden_state


def bench_bert_forward_backward():
    """B=8, T=128, d=256, H=4, 4 layers, intermediate 1024, dropout 0, a quarter of
    each row padded: ours / transformers.BertModel (attn_implementation="eager")."""
    B, T = 8, 128
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=1000,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=T,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="eager",
    )
    reference = transformers.BertModel(config, add_pooling_layer=False)
    ours = Bert.from_hf(reference)
    ids = torch.randint(1000, (B, T))
    mask = torch.ones(B, T, dtype=torch.long)
    mask[:, 3 * T // 4 :] = 0
    reference_s = best_of(forward_backward(_Reference(reference), ids, mask), repeat=5)
    ours_s = best_of(forward_backward(ours, ids, mask), repeat=5)
    return [
        ratio_result(
            "ch8 BERT fwd+bwd vs transformers eager (B8 T128 d256 4 layers)",
            ours_s,
            reference_s,
            limit=1.2,
        )
    ]

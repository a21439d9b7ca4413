"""Chapter 10: the from-scratch ViT's forward and backward pass against
transformers.ViTForImageClassification (eager attention), at the chapter's size."""

import torch
import transformers

from utils.vit import ViT

from .timing import best_of, forward_backward, ratio_result


class _Reference(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, images):
        return self.m(pixel_values=images).logits


def bench_vit_forward_backward():
    """B=64 grey 28×28 digits, 7×7 patches (17 tokens), d=32, H=4, 3 layers, MLP 64:
    ours / transformers.ViTForImageClassification (attn_implementation="eager")."""
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        image_size=28,
        patch_size=7,
        num_channels=1,
        num_labels=10,
        num_hidden_layers=3,
        num_attention_heads=4,
        hidden_size=32,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="eager",
    )
    reference = transformers.ViTForImageClassification(config)
    ours = ViT.from_hf(reference)
    images = torch.rand(64, 1, 28, 28)
    reference_s = best_of(forward_backward(_Reference(reference), images), repeat=10)
    ours_s = best_of(forward_backward(ours, images), repeat=10)
    return [
        ratio_result(
            "ch10 ViT fwd+bwd vs transformers eager (B64, 17 tokens, d32, 3 layers)",
            ours_s,
            reference_s,
            limit=1.2,
        )
    ]

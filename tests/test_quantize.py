"""utils.quantize (chapter 11): Q4_1 blocks decoded by hand against the gguf package's
decoder and the file itself, and the block format at other bit widths against gguf's
own quantiser."""

import gguf
import numpy as np
import pytest
import torch
from gguf.quants import dequantize, quantize

from utils.quantize import Q4_1_BYTES, bits_per_weight, decode_q4_1, quantize_blocks

Q4_1 = gguf.GGMLQuantizationType.Q4_1


def _block(scale: float, minimum: float, low: int, high: int) -> torch.Tensor:
    """20 bytes: d, m as float16, then 16 bytes whose nibbles are `low` and `high`."""
    head = np.array([scale, minimum], dtype=np.float16).view(np.uint8)
    codes = np.full(16, low | (high << 4), dtype=np.uint8)
    return torch.from_numpy(np.concatenate([head, codes]))


def test_a_block_holds_weight_j_in_the_low_and_weight_j_plus_16_in_the_high_bits():
    weights = decode_q4_1(_block(0.5, -1.0, low=1, high=14))
    assert torch.equal(weights[:16], torch.full((16,), -0.5))  # 1 * 0.5 - 1
    assert torch.equal(weights[16:], torch.full((16,), 6.0))  # 14 * 0.5 - 1


def test_decoding_equals_the_gguf_package_on_random_blocks():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 128)).astype(np.float32) * rng.uniform(0.01, 3, (6, 1))
    raw = quantize(w, Q4_1)  # (6, 4 blocks * 20 bytes)
    expected = dequantize(raw, Q4_1)
    for row in range(6):
        for b in range(4):
            block = torch.from_numpy(raw[row, b * Q4_1_BYTES : (b + 1) * Q4_1_BYTES])
            mine = decode_q4_1(block).numpy()
            assert np.array_equal(mine, expected[row, b * 32 : (b + 1) * 32])


def test_decoding_equals_the_weights_in_smollm2s_file():
    from utils.experiments.llm import smollm2_path

    reader = gguf.GGUFReader(smollm2_path())
    tensor = next(t for t in reader.tensors if t.name == "blk.3.ffn_down.weight")
    assert tensor.tensor_type == Q4_1
    data = np.array(tensor.data)  # (rows, blocks * 20) bytes
    expected = dequantize(data, Q4_1)
    for row, block in ((0, 0), (17, 5), (575, 47)):
        raw = torch.from_numpy(data[row, block * 20 : (block + 1) * 20])
        decoded = decode_q4_1(raw).numpy()
        assert np.array_equal(decoded, expected[row, block * 32 : (block + 1) * 32])


@pytest.mark.parametrize("seed", range(3))
def test_four_bit_blocks_equal_gguf_q4_1(seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(5, 96)).astype(np.float32)
    expected = dequantize(quantize(w, Q4_1), Q4_1)
    assert np.array_equal(quantize_blocks(torch.from_numpy(w), 4).numpy(), expected)


def test_weights_already_on_the_grid_come_back_unchanged():
    rng = np.random.default_rng(1)
    w = dequantize(quantize(rng.normal(size=(4, 64)).astype(np.float32), Q4_1), Q4_1)
    w = torch.from_numpy(w)
    assert torch.equal(quantize_blocks(w, 4), w)


def test_more_bits_mean_smaller_errors_within_half_a_step():
    torch.manual_seed(0)
    w = torch.randn(64, 256)
    errors = []
    for bits in (2, 3, 4, 8):
        decoded = quantize_blocks(w, bits)
        blocks = w.view(-1, 32)
        step = (blocks.max(1).values - blocks.min(1).values) / (2**bits - 1)
        gap = (decoded - w).view(-1, 32).abs()
        assert torch.all(gap <= step[:, None] / 2 + 2e-3 * blocks.abs().amax(1, True))
        assert len((decoded.view(-1, 32)[0]).unique()) <= 2**bits
        errors.append((decoded - w).abs().mean().item())
    assert errors == sorted(errors, reverse=True)


def test_a_constant_block_and_other_block_sizes():
    w = torch.full((1, 32), 0.3)
    assert torch.equal(quantize_blocks(w, 4), torch.full((1, 32), 0.3).half().float())
    torch.manual_seed(0)
    w = torch.randn(2, 128)
    coarse, fine = quantize_blocks(w, 4, block_size=128), quantize_blocks(w, 4, 16)
    assert (coarse - w).abs().mean() > (fine - w).abs().mean()
    assert bits_per_weight(4) == 5.0 and bits_per_weight(8, 64) == 8.5


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: decode_q4_1(torch.zeros(18, dtype=torch.uint8)), "block"),
        (lambda: decode_q4_1(torch.zeros(20)), "uint8"),
        (lambda: quantize_blocks(torch.randn(3, 30), 4), "multiple of block_size"),
        (lambda: quantize_blocks(torch.randn(3, 32), 0), "bits"),
        (lambda: quantize_blocks(torch.randn(3, 32), 17), "bits"),
        (lambda: quantize_blocks(torch.ones(3, 32, dtype=torch.long), 4), "floating"),
    ],
)
def test_bad_input_is_refused_by_name(call, words):
    with pytest.raises(ValueError, match=words):
        call()

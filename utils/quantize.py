"""Weights in 4-bit blocks: GGUF's Q4_1 format, decoded by hand, and the same block
format at other bit widths.

Used in chapter 11. A Q4_1 block stores 32 weights in 20 bytes: a scale d and a
minimum m as 16-bit floats, then 32 codes q of 4 bits, two to a byte. Weight j is
q_j · d + m. Byte j holds the codes of weights j (low 4 bits) and j + 16 (high 4
bits), as in llama.cpp's ``block_q4_1``.
"""

import torch

from utils.checks import check_int, check_tensor

BLOCK = 32  # weights per block
Q4_1_BYTES = 2 + 2 + BLOCK // 2  # scale, minimum, 32 codes of 4 bits


def decode_q4_1(block: torch.Tensor) -> torch.Tensor:
    """The 32 weights of one Q4_1 block, given as its 20 bytes (uint8)."""
    check_tensor("block", block, (Q4_1_BYTES,), dtype=torch.uint8)
    scale, minimum = block[:4].view(torch.float16).float()  # d and m, two bytes each
    codes = block[4:].int()  # (16,) two 4-bit codes per byte
    q = torch.cat([codes & 0x0F, codes >> 4])  # (32,): weights 0-15, then 16-31
    return q.float() * scale + minimum  # (32,)


def quantize_blocks(w: torch.Tensor, bits: int, block_size: int = BLOCK):
    """`w` stored in Q4_1's block format with `bits`-bit codes, and decoded again.

    Each run of `block_size` weights along the last dimension gets its own minimum m
    and scale d = (max - m) / (2^bits - 1). Each weight gets the code q of the nearest
    of the 2^bits levels m + q·d, and is decoded with m and d rounded to 16-bit floats,
    as in the file. With ``bits=4`` and 32 weights this is llama.cpp's Q4_1 (the tests
    find it equal to the gguf package's quantiser).
    """
    check_tensor("w", w, floating=True)
    check_int("bits", bits)
    check_int("block_size", block_size)
    if bits > 16 or w.ndim == 0 or w.shape[-1] % block_size:
        raise ValueError(
            f"bits must be 1-16 and w's last dimension a multiple of block_size="
            f"{block_size}, got bits={bits} and shape {tuple(w.shape)}"
        )
    blocks = w.reshape(-1, block_size).float()  # (n_blocks, block_size)
    low = blocks.min(dim=1, keepdim=True).values  # (n_blocks, 1)
    scale = (blocks.max(dim=1, keepdim=True).values - low) / (2**bits - 1)
    steps = torch.where(scale > 0, (blocks - low) / scale, torch.zeros_like(blocks))
    q = (steps + 0.5).floor().clamp(0, 2**bits - 1)  # (n_blocks, block_size) codes
    half = torch.float16  # the file keeps d and m in 16 bits
    decoded = q * scale.to(half).float() + low.to(half).float()
    return decoded.reshape(w.shape).to(w.dtype)


def bits_per_weight(bits: int, block_size: int = BLOCK) -> float:
    """Storage per weight: the codes plus the block's 16-bit scale and minimum."""
    return check_int("bits", bits) + 32 / check_int("block_size", block_size)

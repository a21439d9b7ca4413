"""utils.convert: every converter copies its source's dtype and train/eval mode, leaves
the global random state alone, and refuses what does not fit with a clear error."""

import pytest
import torch
import torch.nn as nn
import transformers

from utils import convert
from utils.attention import MultiHeadAttention
from utils.bert import Bert, BertForMaskedLM
from utils.gpt import GPT
from utils.rnn import LSTM, RNN
from utils.transformer import Transformer
from utils.vit import ViT

BERT = dict(vocab_size=10, max_position_embeddings=8, hidden_size=8,
            num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
# (our class, a source of the kind it copies, our converter)
CONVERTERS = {
    "Bert": lambda: (transformers.BertModel(transformers.BertConfig(**BERT)),
                     Bert.from_hf),
    "BertForMaskedLM": lambda: (
        transformers.BertForMaskedLM(transformers.BertConfig(**BERT)),
        BertForMaskedLM.from_hf),
    "ViT": lambda: (transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=8, patch_size=4, num_channels=1, hidden_size=8, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=16, num_labels=3)), ViT.from_hf),
    "GPT": lambda: (transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2)), GPT.from_hf),
    "RNN": lambda: (nn.RNN(3, 4, dropout=0.0), RNN.from_torch),
    "LSTM": lambda: (nn.LSTM(3, 4, batch_first=True), LSTM.from_torch),
    "MultiHeadAttention": lambda: (
        nn.MultiheadAttention(8, 2, dropout=0.1, batch_first=True),
        MultiHeadAttention.from_torch),
    "Transformer": lambda: (nn.Transformer(
        8, 2, 1, 1, 16, dropout=0.1, batch_first=True), Transformer.from_torch),
}


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", CONVERTERS)
def test_a_converted_model_is_in_its_sources_mode_and_the_rng_is_untouched(
    name, mode
):
    source, converter = CONVERTERS[name]()
    source.train(mode == "train")
    before = torch.get_rng_state()
    ours = converter(source)
    assert torch.equal(torch.get_rng_state(), before), "the global RNG moved"
    assert {m.training for m in ours.modules()} == {mode == "train"}


@pytest.mark.parametrize("name", CONVERTERS)
def test_a_converted_model_keeps_its_sources_dtype(name):
    source, converter = CONVERTERS[name]()
    ours = converter(source.double())
    assert {p.dtype for p in ours.parameters()} == {torch.float64}


def test_build_like_puts_the_model_on_the_sources_device():
    # the meta device stands in for a GPU: a tensor there has a device and no data
    like = torch.empty(3, dtype=torch.float64, device="meta")
    ours = convert.build_like(lambda: nn.Linear(2, 3), like, training=False)
    assert {(p.device.type, p.dtype) for p in ours.parameters()} == {
        ("meta", torch.float64)
    }
    assert not ours.training


def test_an_eval_model_copied_from_an_eval_source_gives_its_output():
    # dropout 0.1 on both: a copy left in training mode would differ
    source = nn.MultiheadAttention(8, 2, dropout=0.1, batch_first=True).eval()
    x = torch.randn(2, 5, 8)
    ours = MultiHeadAttention.from_torch(source)
    torch.testing.assert_close(ours(x, x, x)[0], source(x, x, x)[0])


def test_copy_weights_names_a_missing_tensor_and_a_wrong_shape():
    ours = nn.Linear(2, 3)
    with pytest.raises(ValueError, match=r"the source has no tensor 'w' \(ours: weight"):
        convert.copy_weights(ours, {}, lambda name: "w")
    theirs = {"weight": torch.zeros(2, 3), "bias": torch.zeros(3)}
    with pytest.raises(ValueError, match=r"weight has shape \(2, 3\), our weight has"):
        convert.copy_weights(ours, theirs, lambda name: name)
    convert.copy_weights(ours, theirs, lambda name: name, transpose=("weight",))
    assert (ours.weight == 0).all()


def test_from_files_takes_a_bert_folder_or_an_mlm_folder_and_refuses_others(tmp_path):
    torch.manual_seed(0)
    mlm = transformers.BertForMaskedLM(transformers.BertConfig(**BERT)).eval()
    mlm.save_pretrained(tmp_path / "mlm")
    encoder = Bert.from_files(tmp_path / "mlm")
    ids = torch.randint(10, (2, 6))
    assert not encoder.training
    torch.testing.assert_close(encoder(ids), Bert.from_hf(mlm.bert.eval())(ids))
    roberta = transformers.RobertaModel(transformers.RobertaConfig(
        **{**BERT, "vocab_size": 12, "max_position_embeddings": 12}))
    roberta.save_pretrained(tmp_path / "roberta")
    with pytest.raises(ValueError, match="got model_type='roberta'"):
        Bert.from_files(tmp_path / "roberta")

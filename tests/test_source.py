"""utils.source: show_source renders the code the chapters teach."""

import pytest

from utils import env, source, train
from utils.experiments.softmax_scaling import softmax_statistics
from utils.rnn import RNN


def test_show_source_is_a_python_block_naming_the_object():
    text = source.show_source(env.set_seed).data
    assert text.startswith("```python\n# utils.env.set_seed\n")
    assert "def set_seed" in text and text.endswith("```")


def test_show_source_of_a_class_a_method_and_a_module():
    assert "class TrainConfig" in source.show_source(train.TrainConfig).data
    assert "def train(" in source.show_source(train).data
    assert source.show_source(train).data.startswith("```python\n# utils.train\n")
    method = source.show_source(RNN.forward).data
    assert (
        method.startswith("```python\n# utils.rnn.RNN.forward\n")
        and "def forward" in method
    )
    bound = source.show_source(RNN(2, 3).forward).data  # a bound method too
    assert "def forward" in bound


def test_show_source_of_a_decorated_function_shows_its_own_code():
    text = source.show_source(softmax_statistics).data  # wrapped by functools.lru_cache
    assert text.startswith(
        "```python\n# utils.experiments.softmax_scaling.softmax_statistics\n"
    )
    assert "def softmax_statistics(" in text


@pytest.mark.parametrize("obj, name", [(3, "int"), ("text", "str"), (None, "NoneType")])
def test_show_source_rejects_non_code(obj, name):
    with pytest.raises(ValueError, match=name):
        source.show_source(obj)

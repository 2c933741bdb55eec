"""One list of the CRMN's LSTM quantities, read by the model, the analyses and the figures."""

from __future__ import annotations

import pytest

from crmn_viz.analysis import GATE_QUANTITIES, LSTM_QUANTITIES
from crmn_viz.figures.memory import LSTM_QUANTITY_LABELS, QUANTITY_COLOURS
from crmn_viz.memory_quantities import (
    GATE_NAMES,
    MEMORY_QUANTITIES,
    MEMORY_QUANTITY_LABELS,
    MEMORY_QUANTITY_NAMES,
    memory_quantity,
)
from tests.conftest import tiny_model


def test_the_quantities_are_the_papers_eqs_2_to_7_in_page_order() -> None:
    assert MEMORY_QUANTITY_NAMES == (
        "input_gate",
        "forget_gate",
        "output_gate",
        "cell_candidate",
        "cell",
        "hidden",
    )
    assert [q.symbol for q in MEMORY_QUANTITIES.values()] == ["i", "f", "o", "s", "c", "h"]
    assert sorted(q.equation for q in MEMORY_QUANTITIES.values()) == [2, 3, 4, 5, 6, 7]
    assert all(q.label.endswith(f" {q.symbol}") for q in MEMORY_QUANTITIES.values())
    assert MEMORY_QUANTITY_LABELS["forget_gate"] == "forget gate f"
    assert GATE_NAMES == ("input_gate", "forget_gate", "output_gate")
    assert memory_quantity("lstm.cell").trace_name == "lstm.cell"
    with pytest.raises(ValueError, match="choose from"):
        memory_quantity("forgot_gate")


def test_model_analyses_and_figures_read_the_one_list() -> None:
    crmn = tiny_model("crmn")
    assert crmn.memory_quantities == MEMORY_QUANTITY_NAMES
    assert [name for name in crmn.trace_names() if name.startswith("lstm.")] == [
        "lstm.input",
        *(q.trace_name for q in MEMORY_QUANTITIES.values()),
    ]
    assert LSTM_QUANTITIES == MEMORY_QUANTITY_NAMES
    assert tuple(name for name in MEMORY_QUANTITY_NAMES if name != "hidden") == GATE_QUANTITIES
    assert dict(LSTM_QUANTITY_LABELS) == dict(MEMORY_QUANTITY_LABELS)
    assert tuple(QUANTITY_COLOURS) == MEMORY_QUANTITY_NAMES, "one colour per quantity, in order"

"""Every algorithm's help reaches QGIS's dialog as flowing text, all of it."""
from __future__ import annotations

import os

from tests.conftest import REPO


def test_help_has_no_line_breaks_for_the_dialog_to_turn_into_paragraphs(patchwork_provider):
    from patchwork.plugin.algorithms.common import PatchworkAlgorithm

    algorithms = [a for a in patchwork_provider.algorithms() if isinstance(a, PatchworkAlgorithm)]  # (not the model)
    assert len(algorithms) >= 6
    for algorithm in algorithms:
        text = algorithm.shortHelpString()
        source = open(os.path.join(REPO, "resources", "help", f"{algorithm.name()}.html"), encoding="utf-8").read()
        assert "\n" not in text, algorithm.name()
        assert text.split() == source.split(), algorithm.name()  # every word kept, in order

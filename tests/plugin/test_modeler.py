"""patchwork:samplechips as a child of a graphical-modeler model."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from patchwork.core import read_index


def test_model_with_samplechips_runs(patchwork_provider, tmp_path, naip_path):
    model = QgsProcessingModelAlgorithm("chips model", "tests")
    raster = QgsProcessingParameterRasterLayer("raster", "Raster")
    model.addModelParameter(raster, QgsProcessingModelParameter("raster"))
    child = QgsProcessingModelChildAlgorithm("patchwork:samplechips")
    child.setChildId("sample")
    child.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("raster")])
    for name, value in {"SAMPLER": 2, "CHIP_SIZE": 64, "MIN_DISTANCE": 80.0, "COUNT": 10, "SEED": 3,
                        "BOUNDARY": 0, "MAX_NODATA": 0.0}.items():
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    for name in ("OUTPUT", "OUTPUT_DIR"):
        output = QgsProcessingModelOutput(name.lower())
        output.setChildOutputName(name)
        output.setChildId("sample")
        child.setModelOutputs({**child.modelOutputs(), name.lower(): output})
    model.addChildAlgorithm(child)
    model.updateDestinationParameters()
    destinations = {p.name(): p for p in model.destinationParameterDefinitions()}
    assert isinstance(destinations["sample:output"], QgsProcessingParameterVectorDestination)
    assert isinstance(destinations["sample:output_dir"], QgsProcessingParameterFolderDestination)

    results, ok = model.run({"raster": naip_path, "sample:output": str(tmp_path / "i.gpkg"),
                             "sample:output_dir": str(tmp_path / "chips")}, QgsProcessingContext(),
                            QgsProcessingFeedback())
    assert ok
    assert len(read_index(results["sample:output"])) == 10

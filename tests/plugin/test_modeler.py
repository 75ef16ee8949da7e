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


def test_model_with_label_polygons_and_their_field_as_inputs(patchwork_provider, tmp_path, naip_path):
    """Vector labels from the modeler: a polygon layer input and a field input (child of it) feed samplechips."""
    from osgeo import gdal
    from qgis.core import QgsProcessingParameterField, QgsProcessingParameterVectorLayer

    from tests.core.test_vector_labels import polygons_in_wgs84
    from tests.plugin.test_samplechips_algorithm import run

    gpkg = polygons_in_wgs84(naip_path, str(tmp_path / "labels.gpkg"))
    model = QgsProcessingModelAlgorithm("labelled chips", "tests")
    for parameter in (QgsProcessingParameterRasterLayer("raster", "Raster"),
                      QgsProcessingParameterVectorLayer("polygons", "Label polygons"),
                      QgsProcessingParameterField("field", "Class field", parentLayerParameterName="polygons")):
        model.addModelParameter(parameter, QgsProcessingModelParameter(parameter.name()))
    child = QgsProcessingModelChildAlgorithm("patchwork:samplechips")
    child.setChildId("sample")
    for name, source in (("INPUT", "raster"), ("LABELS", "polygons"), ("LABEL_FIELD", "field")):
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromModelParameter(source)])
    for name, value in {"SAMPLER": 0, "STEP": 200, "CHIP_SIZE": 64}.items():
        child.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    output = QgsProcessingModelOutput("index")
    output.setChildOutputName("OUTPUT")
    output.setChildId("sample")
    child.setModelOutputs({"index": output})
    model.addChildAlgorithm(child)
    model.updateDestinationParameters()
    results, ok = model.run({"raster": naip_path, "polygons": gpkg, "field": "landcover",
                             "sample:index": str(tmp_path / "i.gpkg")}, QgsProcessingContext(),
                            QgsProcessingFeedback())
    assert ok
    direct = run({"INPUT": naip_path, "LABELS": gpkg, "LABEL_FIELD": "landcover", "SAMPLER": 0, "STEP": 200,
                  "CHIP_SIZE": 64, "OUTPUT_DIR": str(tmp_path / "direct"), "OUTPUT": str(tmp_path / "d.gpkg")})
    modelled, reference = read_index(results["sample:index"]), read_index(direct["OUTPUT"])
    assert len(modelled) == len(reference) == 30  # 5 rows x 6 columns, the last of each shifted in
    for a, b in zip(modelled, reference):
        assert (gdal.Open(a["label_path"]).ReadAsArray() == gdal.Open(b["label_path"]).ReadAsArray()).all()

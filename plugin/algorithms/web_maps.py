"""Web map layers (WMS/WMTS and other layers QGIS draws) as an inference algorithm's input: QGIS renders the area
asked for (EXTENT, else the MASK's box) at RESOLUTION to a GeoTIFF beside the output, and the core reads that file.
(XYZ tile layers are read by the core itself: `core.io.web`.)"""
from __future__ import annotations

import os

from qgis.core import QgsProcessingException, QgsRectangle

from ...core.engine.model_input import MAX_RESAMPLED_PIXELS


class RendersWebMaps:
    """Mixed into a PatchworkAlgorithm with INPUT, OUTPUT, EXTENT and RESOLUTION (and MASK, when it has one)."""

    MASK = "MASK"  # (an algorithm without a MASK parameter reads it as not given)
    render: dict | None = None

    def _needs_rendering(self, parameters, context) -> bool:
        """A WMS/WMTS (or other non-file, non-XYZ) layer: QGIS renders the area to a GeoTIFF for the run."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None or layer.providerType() == "gdal":
            return False
        return not (layer.providerType() == "wms" and "type=xyz" in layer.source())

    def checkParameterValues(self, parameters, context):  # noqa: N802 - QGIS API name
        if not self._needs_rendering(parameters, context):
            return super().checkParameterValues(parameters, context)
        if not parameters.get(self.EXTENT) and not parameters.get(self.MASK):  # the rest is checked on the render
            return False, self.tr("EXTENT: a web map layer covers the world: give an EXTENT{} to read.").format(
                self.tr(" or a MASK") if self.parameterDefinition(self.MASK) else "")
        if parameters.get(self.RESOLUTION) in (None, ""):
            return False, self.tr("RESOLUTION: QGIS renders a web map layer at a pixel size: give RESOLUTION (in "
                                  "the layer's units).")
        try:
            self._render_plan(parameters, context, self.parameterAsRasterLayer(parameters, self.INPUT, context),
                              copy_provider=False)
        except QgsProcessingException as exc:
            return False, str(exc)
        return True, ""

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API name
        """A web map layer: what to render, and the MASK's polygons, are read here on the main thread; the
        rendering itself and the core's parameters (from the rendered file) wait for processAlgorithm."""
        self.render = None
        if not self._needs_rendering(parameters, context):
            return super().prepareAlgorithm(parameters, context, feedback)
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self.render = self._render_plan(parameters, context, layer)
        self.render["output"] = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        self.render["mask"] = self.mask_polygons(parameters, self.MASK, layer.crs(), context)
        return True

    def _render_plan(self, parameters, context, layer, copy_provider: bool = True) -> dict:
        """The area of a web map layer to render, on the grid of RESOLUTION, and a copy of its data provider
        (which, unlike the layer, may be used on the worker thread)."""
        import math

        if parameters.get(self.EXTENT):
            extent = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
        else:
            from qgis.core import QgsCoordinateTransform

            source = self.parameterAsSource(parameters, self.MASK, context)
            extent = QgsCoordinateTransform(source.sourceCrs(), layer.crs(), context.transformContext()) \
                .transformBoundingBox(source.sourceExtent())
        size = self.parameterAsDouble(parameters, self.RESOLUTION, context)
        if not math.isfinite(size) or size <= 0:
            raise QgsProcessingException(self.tr("RESOLUTION: the pixel size to render '{}' at must be a positive "
                                                 "number, not {:g}.").format(layer.name(), size))
        cols, rows = (math.ceil(side / size - 1e-6) for side in (extent.width(), extent.height()))
        if cols * rows > MAX_RESAMPLED_PIXELS:
            raise QgsProcessingException(self.tr(
                "RESOLUTION: {:g} per pixel makes {:,} x {:,} px to render from '{}', more than the {:.0e} px "
                "Patchwork reads; choose a coarser RESOLUTION or a smaller EXTENT.").format(
                size, cols, rows, layer.name(), MAX_RESAMPLED_PIXELS))
        extent = QgsRectangle(extent.xMinimum(), extent.yMaximum() - rows * size, extent.xMinimum() + cols * size,
                              extent.yMaximum())
        provider = layer.dataProvider().clone() if copy_provider else None
        return {"provider": provider, "name": layer.name(), "crs": layer.crs(), "size": size,
                "cols": cols, "rows": rows, "extent": extent, "transform_context": context.transformContext()}

    def _rendered(self, plan: dict, feedback) -> str:
        """The planned area of a web map layer rendered by QGIS to a GeoTIFF beside the run's output (removed after
        the run)."""
        from qgis.core import QgsRasterFileWriter, QgsRasterPipe

        from ...core.io.partials import owned_name

        path = owned_name(os.path.splitext(plan["output"])[0] + ".rendered.tif")
        feedback.pushInfo(self.tr("Rendering '{}' at {:g} per pixel ({} x {} px) for the run").format(
            plan["name"], plan["size"], plan["cols"], plan["rows"]))
        pipe = QgsRasterPipe()
        pipe.set(plan["provider"])
        writer = QgsRasterFileWriter(path)
        writer.setOutputFormat("GTiff")
        error = writer.writeRaster(pipe, plan["cols"], plan["rows"], plan["extent"], plan["crs"],
                                   plan["transform_context"])
        if error != 0 or not os.path.exists(path):
            if os.path.exists(path):
                os.remove(path)
            raise QgsProcessingException(self.tr("INPUT: QGIS could not render '{}' (error {}).").format(
                plan["name"], error))
        return path

    def run_on_the_layer(self, parameters, context, feedback):
        """The core's run on the input layer (or on its rendering, removed afterwards): its result and its call."""
        rendered = None
        if self.render is None:
            call = self.call
        else:  # the core reads the rendered file: a file path, no project layer, so read here
            rendered = self._rendered(self.render, feedback)
            call = self.read_parameters({**parameters, self.INPUT: rendered, self.EXTENT: None, self.RESOLUTION: None,
                                         self.MASK: None, self.OUTPUT: self.render["output"]}, context, feedback)
            if "mask" in call.kwargs:
                call.kwargs.update(mask=self.render["mask"])
        try:
            return self.run_call(call, feedback), call
        finally:
            if rendered:
                from ...core.io.partials import remove_file

                remove_file(rendered)  # and the .aux.xml GDAL writes beside it while the run reads it

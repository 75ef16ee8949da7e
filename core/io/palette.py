"""Class palettes for class maps: a GDAL colour table with category names, and a QGIS .qml style.

The colour table makes any GIS show the classes in colour; the .qml beside the raster (QGIS loads
`<name>.qml` as the layer's default style) adds the class names to the legend.
"""
from __future__ import annotations

import os
from xml.sax.saxutils import quoteattr

from osgeo import gdal

from .gdal_errors import checked
from .partials import replace_file, temporary_sibling

# Distinct, colour-blind-friendly colours (Okabe–Ito, then Tableau) for classes without their own.
DEFAULT_COLOURS = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
]


CLASS_ITEM = "CLASS_"  # band metadata CLASS_<value>=<name>: class names inside the GeoTIFF


def class_colours(count: int, colours: list[str] | None = None) -> list[str]:
    """`count` colours: the given ones when they fit, else distinct defaults."""
    if colours and len(colours) == count:
        return list(colours)
    return [DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)] for i in range(count)]


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def apply_colour_table(band: gdal.Band, values: list[int], names: list[str], colours: list[str]) -> None:
    """Colour table and category names on a class band (values must be ≥ 0)."""
    table = gdal.ColorTable()
    categories = [""] * (max(values) + 1)
    for value, name, colour in zip(values, names, colours):
        table.SetColorEntry(int(value), (*_rgb(colour), 255))
        categories[int(value)] = name
    checked(band.SetRasterColorTable, table)
    checked(band.SetRasterColorInterpretation, gdal.GCI_PaletteIndex)
    checked(band.SetCategoryNames, categories)  # GDAL keeps these in the .aux.xml side-car: GeoTIFF has no tag
    for value, name in zip(values, names):  # … so they are also band metadata, kept in the file itself
        checked(band.SetMetadataItem, f"{CLASS_ITEM}{int(value)}", name)


def read_classes(band: gdal.Band) -> dict[int, tuple[str, str | None]]:
    """{class value: (name, "#rrggbb" colour or None)} of a class band, as `apply_colour_table` writes them.

    Names come from the category names (the .aux.xml side-car, or formats that hold them), else from the
    band's CLASS_<value> metadata (in the GeoTIFF itself: a class map copied without its side-car keeps them).
    """
    table = band.GetColorTable()  # (GDAL 3.6's GTiff reads the .aux.xml side-car only after this)
    colours = {}
    for i in range(table.GetCount() if table else 0):
        r, g, b = table.GetColorEntry(i)[:3]
        colours[i] = f"#{r:02x}{g:02x}{b:02x}"
    names = {i: name for i, name in enumerate(band.GetCategoryNames() or []) if name}
    if not names:
        for key, name in (band.GetMetadata() or {}).items():
            if key.startswith(CLASS_ITEM) and key[len(CLASS_ITEM):].isdigit() and name:
                names[int(key[len(CLASS_ITEM):])] = name
    return {value: (name, colours.get(value)) for value, name in sorted(names.items())}


def legend(band: gdal.Band) -> tuple[dict[int, str], dict[int, str]]:
    """A class band's names and colours by class value (`read_classes`, split; classes without a colour left out)."""
    classes = read_classes(band)
    return {v: n for v, (n, _c) in classes.items()}, {v: c for v, (_n, c) in classes.items() if c}


def paletted_qml(values: list[int], names: list[str], colours: list[str]) -> str:
    """A QGIS .qml style showing the classes with their colours and names."""
    entries = "\n".join(
        f'        <paletteEntry value="{int(v)}" color="{c}" alpha="255" label={quoteattr(n)}/>'
        for v, n, c in zip(values, names, colours)
    )
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
      <colorPalette>
{entries}
      </colorPalette>
      <colorramp type="randomcolors" name="[source]"/>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" colorizeOn="0" grayscaleMode="0" colorizeRed="255" colorizeGreen="128"
                   colorizeBlue="128" colorizeStrength="100"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def categorized_qml(values: list[int], names: list[str], colours: list[str], field: str = "class",
                    outline_only: bool = False) -> str:
    """A QGIS .qml style drawing polygons in the colour of their class (`field`), with the class names.

    `outline_only`: boxes drawn as their outline (detections over imagery), not filled.
    """
    categories = "\n".join(
        f'      <category symbol="{i}" value="{int(v)}" label={quoteattr(n)} render="true"/>'
        for i, (v, n) in enumerate(zip(values, names)))
    symbols = "\n".join(f"""      <symbol name="{i}" type="fill" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <prop k="color" v="{','.join(map(str, _rgb(c)))},255"/>
          <prop k="outline_color" v="{','.join(map(str, _rgb(c)))},255"/>
          <prop k="outline_width" v="0.6"/>
          <prop k="outline_style" v="{'solid' if outline_only else 'no'}"/>
          <prop k="style" v="{'no' if outline_only else 'solid'}"/>
        </layer>
      </symbol>""" for i, c in enumerate(colours))
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology">
  <renderer-v2 type="categorizedSymbol" attr={quoteattr(field)} enableorderby="0" forceraster="0" symbollevels="0">
    <categories>
{categories}
    </categories>
    <symbols>
{symbols}
    </symbols>
  </renderer-v2>
  <blendMode>0</blendMode>
</qgis>
"""


UNCERTAINTY_RAMP = ((0.0, "#000004"), (0.25, "#51127c"), (0.5, "#b73779"), (0.75, "#fc8961"), (1.0, "#fcfdbf"))


def uncertainty_qml() -> str:
    """A QGIS .qml style for an uncertainty map in [0, 1].

    Dark where the map is sure, bright where it is not (magma), with the values named in the legend.
    """
    items = "\n".join(f'          <item value="{v}" color="{c}" alpha="255" label="{v:g}"/>'
                       for v, c in UNCERTAINTY_RAMP)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="AllStyleCategories">
  <pipe>
    <rasterrenderer type="singlebandpseudocolor" band="1" opacity="1" alphaBand="-1" classificationMin="0"
                    classificationMax="1" nodataColor="">
      <rasterTransparency/>
      <minMaxOrigin>
        <limits>None</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="0"
                         maximumValue="1">
{items}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <rasterresampler maxOversampling="2"/>
  </pipe>
  <blendMode>0</blendMode>
</qgis>
"""


def qml_path(raster_path: str) -> str:
    """Where QGIS looks for a raster's default style: beside it, as <name>.qml."""
    return os.path.splitext(raster_path)[0] + ".qml"


def write_qml(raster_path: str, values: list[int], names: list[str], colours: list[str]) -> str:
    """Write `<raster>.qml` (atomically) and return its path."""
    return _write_style(raster_path, paletted_qml(values, names, colours))


def write_uncertainty_qml(raster_path: str) -> str:
    """Write an uncertainty map's `<raster>.qml` (atomically) and return its path."""
    return _write_style(raster_path, uncertainty_qml())


def _write_style(raster_path: str, qml: str) -> str:
    path = qml_path(raster_path)
    tmp = temporary_sibling(path)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(qml)
    replace_file(tmp, path)
    return path


def labelling_points_qml(values: list[int], names: list[str], colours: list[str], field: str,
                         read_only: list[str], hidden: list[str], polygons: bool = False) -> str:
    """A QGIS .qml style for points (or, with `polygons`, squares) to label.

    Each is drawn in the colour of its `field` class (hollow magenta while it is empty), `field` is edited as
    a drop-down of the class names (a value map), the `read_only` fields are locked in the form, and the `hidden`
    ones left out of the attribute table (labels given blind to the map are the better practice).
    """

    def marker(i: int, fill: str, outline: str) -> str:
        if polygons:  # an outline in the class's colour: the imagery inside stays visible
            return f"""      <symbol name="{i}" type="fill" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleFill" enabled="1" locked="0" pass="0">
          <prop k="color" v="0,0,0,0"/>
          <prop k="style" v="no"/>
          <prop k="outline_color" v="{outline if fill.endswith(',0') else fill}"/>
          <prop k="outline_style" v="solid"/>
          <prop k="outline_width" v="0.8"/>
        </layer>
      </symbol>"""
        return f"""      <symbol name="{i}" type="marker" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleMarker" enabled="1" locked="0" pass="0">
          <prop k="color" v="{fill}"/>
          <prop k="name" v="circle"/>
          <prop k="outline_color" v="{outline}"/>
          <prop k="outline_width" v="0.6"/>
          <prop k="size" v="3.2"/>
        </layer>
      </symbol>"""
    categories = [f'      <category symbol="{i}" value="{int(v)}" label={quoteattr(n)} render="true"/>'
                  for i, (v, n) in enumerate(zip(values, names))]
    categories.append(f'      <category symbol="{len(values)}" value="" label="not labelled yet" render="true"/>')
    symbols = [marker(i, f"{','.join(map(str, _rgb(c)))},255", "35,35,35,255") for i, c in enumerate(colours)]
    symbols.append(marker(len(values), "255,255,255,0", "255,0,255,255"))  # hollow magenta: still to do
    options = "\n".join(f'              <Option type="Map"><Option name={quoteattr(n)} type="QString" '
                        f'value="{int(v)}"/></Option>' for v, n in zip(values, names))
    locked = "\n".join(f'    <field name={quoteattr(name)} editable="0"/>' for name in read_only)
    columns = "\n".join(f'      <column type="field" name={quoteattr(name)} hidden="{int(name in hidden)}" width="-1"/>'
                        for name in [*read_only, field])
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22" styleCategories="Symbology|Fields|Forms|AttributeTable">
  <renderer-v2 type="categorizedSymbol" attr={quoteattr(field)} enableorderby="0" forceraster="0" symbollevels="0">
    <categories>
{chr(10).join(categories)}
    </categories>
    <symbols>
{chr(10).join(symbols)}
    </symbols>
  </renderer-v2>
  <fieldConfiguration>
    <field name={quoteattr(field)} configurationFlags="None">
      <editWidget type="ValueMap">
        <config>
          <Option type="Map">
            <Option name="map" type="List">
{options}
            </Option>
          </Option>
        </config>
      </editWidget>
    </field>
  </fieldConfiguration>
  <editable>
{locked}
  </editable>
  <attributetableconfig actionWidgetStyle="dropDown" sortExpression="&quot;sample_id&quot;" sortOrder="0">
    <columns>
{columns}
      <column type="actions" hidden="1" width="-1"/>
    </columns>
  </attributetableconfig>
  <blendMode>0</blendMode>
</qgis>
"""


def labelling_style(names: dict[int, str], colours: dict[int, str], field: str, read_only: list[str],
                    hidden: list[str], polygons: bool = False) -> str:
    """`labelling_points_qml` for classes given as {value: name} and {value: colour} (defaults for the others)."""
    values = sorted(names)
    palette = class_colours(len(values))
    return labelling_points_qml(values, [names[v] for v in values],
                                [colours.get(v, palette[i]) for i, v in enumerate(values)], field, read_only, hidden,
                                polygons)

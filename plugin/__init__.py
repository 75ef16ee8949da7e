"""QGIS glue: the plugin class, the Processing provider and one module per algorithm."""

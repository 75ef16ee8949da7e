"""Reading and writing: rasters, vectors, labels, web layers, outputs written all or none."""

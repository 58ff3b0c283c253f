"""The only package that opens raster and vector files, and the home of atomic outputs.

Rasters: grids and CRSs (``grid``), input checks (``checks``), reading and aligning
(``raster``), writing GeoTIFFs (``geotiff``). Vectors: ``vector``. Outputs: ``files`` (atomic
files and folders), ``npy`` (dataset arrays), ``failures`` / ``gdal_errors`` (write failures),
``leftovers`` / ``tempnames`` (temporaries of killed runs).

GDAL's block cache defaults to 5 % of the machine's RAM (about 1.2 GB here), and streamed reads
and writes fill it, so without a limit a process's peak memory grows with the raster size until
that cap. The engine caps it at :data:`GDAL_CACHE_MB` unless the user set ``GDAL_CACHEMAX``.
GDAL reads the variable when its cache is first used; in a process where GDAL already ran
(QGIS's own Python) the setting has no effect there, only in the engine's child processes.
Note: ``rasterio.Env(GDAL_CACHEMAX=N)`` with an integer means N *bytes*; the environment
variable below, a number under 100000, means megabytes.
"""

import os

GDAL_CACHE_MB = 128

os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHE_MB))

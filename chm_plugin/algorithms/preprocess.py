"""Preprocess: build a training dataset from a DSM and reference heights (CHM or DTM)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from chm_plugin.algorithms.base import (
    EngineAlgorithm,
    apply_options,
    optional_number,
    thresholds_list,
)
from chm_plugin.backends import EngineRequest
from chm_plugin.inputs import raster_path

REFERENCE_KINDS = ["CHM (canopy height model)", "DTM (terrain model; CHM = DSM - DTM)"]
DEFAULT_THRESHOLDS = "2,5,10,15,20"


def site_name(layer, fallback: str) -> str:
    text = "".join(c if c.isalnum() or c in "-_" else "_" for c in (layer.name() if layer else ""))
    return text.strip("_") or fallback


class PreprocessAlgorithm(EngineAlgorithm):
    NAME = "preprocess"
    DISPLAY = "Build training dataset"
    GROUP = "Deep learning"
    GROUP_ID = "deeplearning"
    HELP = (
        "Builds a training dataset for the Train algorithm: cuts the DSM into tiles, normalises "
        "them, labels canopy gaps at each height threshold from the reference heights (a CHM, or "
        "a DTM giving CHM = DSM - DTM; gap where CHM <= threshold, 8-connected, area limits "
        "inclusive) and splits the tiles spatially into train, validation and test. The output "
        "folder holds manifest.json and one folder of NumPy arrays per split. All rasters must "
        "use a projected CRS in metres."
    )
    DSM, REFERENCE, REFERENCE_KIND, SITE_NAME = "DSM", "REFERENCE", "REFERENCE_KIND", "SITE_NAME"
    EXTRA_DSMS, EXTRA_REFERENCES = "EXTRA_DSMS", "EXTRA_REFERENCES"
    THRESHOLDS, TILE_SIZE, OVERLAP = "THRESHOLDS", "TILE_SIZE", "OVERLAP"
    MIN_GAP_AREA, MAX_GAP_AREA = "MIN_GAP_AREA", "MAX_GAP_AREA"
    VAL_FRACTION, TEST_FRACTION, BLOCK_TILES = "VAL_FRACTION", "TEST_FRACTION", "BLOCK_TILES"
    MAX_NODATA, SEED, OPTIONS, OUTPUT = "MAX_NODATA", "SEED", "OPTIONS", "OUTPUT"

    def init_parameters(self) -> None:
        num = QgsProcessingParameterNumber
        self.add(
            QgsProcessingParameterRasterLayer(self.DSM, self.tr("DSM")),
            "Digital surface model (GeoTIFF or any raster layer, metres, projected CRS): the "
            "model's input.",
        )
        self.add(
            QgsProcessingParameterRasterLayer(self.REFERENCE, self.tr("Reference heights")),
            "Reference heights on the DSM's area: a CHM or a DTM (see 'Reference is a'). Gap "
            "labels come from it.",
        )
        self.add(
            QgsProcessingParameterEnum(
                self.REFERENCE_KIND, self.tr("Reference is a"), REFERENCE_KINDS, defaultValue=0
            ),
            "Whether the reference raster is a canopy height model or a terrain model.",
        )
        self.add(
            QgsProcessingParameterString(
                self.THRESHOLDS, self.tr("Gap height thresholds (m)"), DEFAULT_THRESHOLDS
            ),
            "Comma-separated height thresholds in metres; a pixel is gap at threshold t "
            "where CHM <= t.",
        )
        self.add(
            num(self.TILE_SIZE, self.tr("Tile size (pixels)"), num.Integer, 256, False, 16),
            "Tile edge in pixels (a multiple of 2^depth of the model, e.g. 256).",
        )
        self.add(
            num(self.MIN_GAP_AREA, self.tr("Smallest gap (m²)"), num.Double, None, True, 0),
            "Gaps smaller than this are not labelled (empty = no limit).",
            advanced=True,
        )
        self.add(
            num(self.MAX_GAP_AREA, self.tr("Largest gap (m²)"), num.Double, None, True, 0),
            "Gaps larger than this are not labelled (empty = no limit).",
            advanced=True,
        )
        self.add(
            num(self.OVERLAP, self.tr("Tile overlap (pixels)"), num.Integer, 0, False, 0),
            "Overlap between neighbouring tiles in pixels.",
            advanced=True,
        )
        self.add(
            num(self.VAL_FRACTION, self.tr("Validation share"), num.Double, 0.15, False, 0, 1),
            "Share of tiles for validation (spatial blocks).",
            advanced=True,
        )
        self.add(
            num(self.TEST_FRACTION, self.tr("Test share"), num.Double, 0.15, False, 0, 1),
            "Share of tiles for testing (spatial blocks).",
            advanced=True,
        )
        self.add(
            num(self.BLOCK_TILES, self.tr("Split block (tiles)"), num.Integer, 2, False, 1),
            "Edge of the spatial split blocks in tiles (neighbouring tiles stay in one split).",
            advanced=True,
        )
        self.add(
            num(
                self.MAX_NODATA,
                self.tr("Largest nodata share per tile"),
                num.Double,
                0.5,
                False,
                0,
                1,
            ),
            "Tiles with more nodata than this are dropped.",
            advanced=True,
        )
        self.add(
            num(self.SEED, self.tr("Random seed"), num.Integer, 0, False),
            "Seed of the split (same seed, same split).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterString(self.SITE_NAME, self.tr("Site name"), "", optional=True),
            "Name of the site in the dataset (default: the DSM layer's name).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterMultipleLayers(
                self.EXTRA_DSMS,
                self.tr("More sites: DSMs"),
                QgsProcessing.TypeRaster,
                optional=True,
            ),
            "DSMs of further sites, paired in order with 'More sites: reference heights' "
            "(same kind as the main reference).",
            advanced=True,
        )
        self.add(
            QgsProcessingParameterMultipleLayers(
                self.EXTRA_REFERENCES,
                self.tr("More sites: reference heights"),
                QgsProcessing.TypeRaster,
                optional=True,
            ),
            "Reference rasters (CHM or DTM) of the further sites, in the order of their DSMs.",
            advanced=True,
        )
        self.add_options()
        self.add(
            QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Dataset folder")),
            "Folder to write the dataset to (replaced if it exists).",
        )
        self.add_output_help(
            QgsProcessingOutputFile("MANIFEST", self.tr("Manifest")),
            "manifest.json of the dataset.",
        )
        for split in ("TRAIN", "VAL", "TEST"):
            self.add_output_help(
                QgsProcessingOutputNumber(f"{split}_TILES", self.tr(f"{split.title()} tiles")),
                f"Number of tiles in the {split.lower()} split.",
            )

    def build_request(self, parameters, context, feedback):
        kind = (
            "chm" if self.parameterAsEnum(parameters, self.REFERENCE_KIND, context) == 0 else "dtm"
        )
        dsm_layer = self.parameterAsRasterLayer(parameters, self.DSM, context)
        ref_layer = self.parameterAsRasterLayer(parameters, self.REFERENCE, context)
        pairs = [(dsm_layer, ref_layer)]
        extra_dsms = self.parameterAsLayerList(parameters, self.EXTRA_DSMS, context)
        extra_refs = self.parameterAsLayerList(parameters, self.EXTRA_REFERENCES, context)
        if len(extra_dsms) != len(extra_refs):
            raise QgsProcessingException(
                f"'More sites' needs one reference raster per DSM; got {len(extra_dsms)} DSMs and "
                f"{len(extra_refs)} reference rasters."
            )
        pairs += list(zip(extra_dsms, extra_refs, strict=True))
        sites, inputs, names = [], [], set()
        for i, (dsm, ref) in enumerate(pairs):
            name = site_name(dsm, f"site{i + 1}")
            if i == 0:
                name = self.parameterAsString(parameters, self.SITE_NAME, context).strip() or name
            while name in names:
                name += f"_{i + 1}"
            names.add(name)
            dsm_path = raster_path(dsm, f"DSM of site {name}", context, feedback)
            ref_path = raster_path(
                ref, f"reference {kind.upper()} of site {name}", context, feedback
            )
            sites.append({"name": name, "dsm": dsm_path, kind: ref_path})
            inputs += [dsm_path, ref_path]
        output = self.parameterAsString(parameters, self.OUTPUT, context)
        params = {
            "output": output,
            "sites": sites,
            "thresholds": thresholds_list(
                self.parameterAsString(parameters, self.THRESHOLDS, context)
            ),
            "tile_size": self.parameterAsInt(parameters, self.TILE_SIZE, context),
            "overlap": self.parameterAsInt(parameters, self.OVERLAP, context),
            "min_gap_area_m2": optional_number(self, parameters, self.MIN_GAP_AREA, context),
            "max_gap_area_m2": optional_number(self, parameters, self.MAX_GAP_AREA, context),
            "max_nodata_fraction": self.parameterAsDouble(parameters, self.MAX_NODATA, context),
            "seed": self.parameterAsInt(parameters, self.SEED, context),
            "split": {
                "val_fraction": self.parameterAsDouble(parameters, self.VAL_FRACTION, context),
                "test_fraction": self.parameterAsDouble(parameters, self.TEST_FRACTION, context),
                "block_tiles": self.parameterAsInt(parameters, self.BLOCK_TILES, context),
            },
        }
        apply_options(params, self.parameterAsString(parameters, self.OPTIONS, context))
        return EngineRequest("preprocess", params, inputs=inputs, outputs=[output])

    def outputs(self, result, parameters, context, feedback):
        counts = result.get("counts") or {}
        return {
            "OUTPUT": result.get("output"),
            "MANIFEST": result.get("manifest"),
            "TRAIN_TILES": counts.get("train", 0),
            "VAL_TILES": counts.get("val", 0),
            "TEST_TILES": counts.get("test", 0),
        }

"""Preprocess: build a training dataset from a DSM and reference heights (CHM or DTM)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from chm_plugin.algorithms.base import EngineAlgorithm
from chm_plugin.algorithms.params import EngineParam as P
from chm_plugin.inputs import raster_path

REFERENCE_KINDS = ["chm", "dtm"]
REFERENCE_KIND_HELP = (
    "chm = the reference raster is a canopy height model; dtm = it is a terrain model and the "
    "reference heights are DSM - DTM."
)
SPLIT_HELP = "Share of tiles for {} (dealt by spatial blocks, so neighbours stay together)."
TILING = (
    P(
        "THRESHOLDS",
        "thresholds",
        "Gap height thresholds (m)",
        help="Comma-separated height thresholds in metres; a pixel is gap at threshold t where "
        "the reference height is <= t.",
    ),
    P(
        "TILE_SIZE",
        "tile_size",
        "Tile size (pixels)",
        help="Tile edge in pixels (a multiple of 2^depth of the model to train, e.g. 256).",
    ),
    P(
        "MIN_GAP_AREA",
        "min_gap_area_m2",
        "Smallest gap (m²)",
        True,
        "Gaps smaller than this are not labelled (empty = no limit).",
    ),
    P(
        "MAX_GAP_AREA",
        "max_gap_area_m2",
        "Largest gap (m²)",
        True,
        "Gaps larger than this are not labelled (empty = no limit).",
    ),
    P("OVERLAP", "overlap", "Tile overlap (pixels)", True),
    P(
        "VAL_FRACTION",
        "split.val_fraction",
        "Validation share",
        True,
        SPLIT_HELP.format("validation"),
    ),
    P("TEST_FRACTION", "split.test_fraction", "Test share", True, SPLIT_HELP.format("testing")),
    P(
        "BLOCK_TILES",
        "split.block_tiles",
        "Split block (tiles)",
        True,
        "Edge of the spatial split blocks in tiles.",
    ),
    P("MAX_NODATA", "max_nodata_fraction", "Largest nodata share per tile", True),
    P("SEED", "seed", "Random seed", True),
)


def site_name(layer: QgsMapLayer | None, fallback: str) -> str:
    """The layer's name as a site name (letters, digits, '-' and '_'), else ``fallback``."""
    text = "".join(c if c.isalnum() or c in "-_" else "_" for c in (layer.name() if layer else ""))
    return text.strip("_") or fallback


def add_reference(alg: EngineAlgorithm, help_text: str) -> None:
    """REFERENCE, REFERENCE_KIND and the two band parameters (preprocess and evaluate)."""
    alg.add(
        QgsProcessingParameterRasterLayer(alg.REFERENCE, alg.tr("Reference heights")),
        help_text,
    )
    alg.add(
        QgsProcessingParameterEnum(
            alg.REFERENCE_KIND,
            alg.tr("Reference is a"),
            REFERENCE_KINDS,
            False,
            "chm",
            False,
            True,
        ),
        REFERENCE_KIND_HELP,
    )
    for name, parent, what in (
        ("DSM_BAND", alg.DSM, "DSM"),
        ("REFERENCE_BAND", alg.REFERENCE, "reference raster"),
    ):
        alg.add(
            QgsProcessingParameterBand(
                name, alg.tr(f"{what[0].upper() + what[1:]} band"), None, parent, optional=True
            ),
            f"Band of the {what} to use (empty: it must have one band). A chosen band is copied "
            "to a temporary GeoTIFF.",
            advanced=True,
        )


def band_of(
    alg: EngineAlgorithm, parameters: dict[str, Any], name: str, context: QgsProcessingContext
) -> int | None:
    """The band number chosen in the band parameter ``name``, or None when it is empty."""
    value = parameters.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return alg.parameterAsInt(parameters, name, context)


class PreprocessAlgorithm(EngineAlgorithm):
    NAME = "preprocess"
    COMMAND = "preprocess"
    DISPLAY = "Build training dataset"
    GROUP, GROUP_ID = "Deep learning", "deeplearning"
    ANCHOR = "build-training-dataset-preprocess"
    ICON = "preprocess"
    TAGS = ("canopy", "gap", "forest", "dsm", "chm", "dtm", "training", "dataset", "tiles")
    SHORT = "Tiles, gap labels and a spatial split from DSMs and reference heights, for training."
    HELP = (
        "Cuts the DSM into tiles, normalises them, labels canopy gaps at each height threshold "
        "from the reference heights (a CHM, or a DTM giving CHM = DSM - DTM; gap where the "
        "height is <= the threshold, 8-connected, area limits inclusive) and deals the tiles "
        "to train, validation and test by spatial blocks.\n"
        "The dataset folder holds manifest.json and one folder of NumPy arrays per split; "
        "'Train gap model' takes it. All rasters need a projected CRS in metres. More sites "
        "(Advanced) add DSMs with their reference rasters of the same kind."
    )
    DSM, REFERENCE, REFERENCE_KIND, SITE_NAME = "DSM", "REFERENCE", "REFERENCE_KIND", "SITE_NAME"
    EXTRA_DSMS, EXTRA_REFERENCES, OUTPUT = "EXTRA_DSMS", "EXTRA_REFERENCES", "OUTPUT"

    def init_parameters(self) -> None:
        self.add(
            QgsProcessingParameterRasterLayer(self.DSM, self.tr("DSM")),
            "Digital surface model (metres, projected CRS): the model's input. Layers that are "
            "not GeoTIFF files are exported to a temporary GeoTIFF first.",
            key="sites[].dsm",
        )
        add_reference(
            self,
            "Reference heights on the DSM's area: a CHM or a DTM (see "
            "'Reference is a'). Gap labels come from it.",
        )
        self._key_names["sites[].chm"] = self._key_names["sites[].dtm"] = (
            "'Reference heights' (REFERENCE)"
        )
        for spec in TILING:
            self.add_engine(spec)
        self.add(
            QgsProcessingParameterString(self.SITE_NAME, self.tr("Site name"), "", optional=True),
            "Name of the site in the dataset (default: the DSM layer's name).",
            advanced=True,
            key="sites[].name",
        )
        for name, label, text in (
            (
                self.EXTRA_DSMS,
                "More sites: DSMs",
                "DSMs of further sites, paired in order with 'More sites: reference heights'.",
            ),
            (
                self.EXTRA_REFERENCES,
                "More sites: reference heights",
                "Reference rasters of the further sites (same kind as the main reference), in the "
                "order of their DSMs.",
            ),
        ):
            self.add(
                QgsProcessingParameterMultipleLayers(
                    name, self.tr(label), QgsProcessing.TypeRaster, optional=True
                ),
                text,
                advanced=True,
            )
        self.add_options()
        self.add(
            QgsProcessingParameterFolderDestination(self.OUTPUT, self.tr("Dataset folder")),
            "Folder to write the dataset to (a dataset already there is replaced).",
            key="output",
        )
        self.addOutput(QgsProcessingOutputFile("MANIFEST", self.tr("Manifest")))
        for split in ("TRAIN", "VAL", "TEST"):
            self.addOutput(
                QgsProcessingOutputNumber(f"{split}_TILES", self.tr(f"{split.title()} tiles"))
            )

    def site_pairs(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> list[tuple[QgsMapLayer, QgsMapLayer]]:
        """(DSM, reference) layers of the first site and of every 'More sites' pair."""
        pairs = [
            (
                self.parameterAsRasterLayer(parameters, self.DSM, context),
                self.parameterAsRasterLayer(parameters, self.REFERENCE, context),
            )
        ]
        extra_dsms = self.parameterAsLayerList(parameters, self.EXTRA_DSMS, context)
        extra_refs = self.parameterAsLayerList(parameters, self.EXTRA_REFERENCES, context)
        if len(extra_dsms) != len(extra_refs):
            raise QgsProcessingException(
                f"'More sites' needs one reference raster per DSM; got {len(extra_dsms)} DSMs and "
                f"{len(extra_refs)} reference rasters."
            )
        return pairs + list(zip(extra_dsms, extra_refs, strict=True))

    def build_request(self, parameters, context, feedback):
        kind = self.parameterAsEnumString(parameters, self.REFERENCE_KIND, context)
        bands = [band_of(self, parameters, n, context) for n in ("DSM_BAND", "REFERENCE_BAND")]
        sites, inputs, names = [], [], set()
        for i, (dsm, ref) in enumerate(self.site_pairs(parameters, context)):
            name = site_name(dsm, f"site{i + 1}")
            if i == 0:
                name = self.parameterAsString(parameters, self.SITE_NAME, context).strip() or name
            while name in names:
                name += f"_{i + 1}"
            names.add(name)
            dsm_path = raster_path(dsm, f"DSM of site {name}", context, feedback, band=bands[0])
            ref_path = raster_path(
                ref, f"reference {kind.upper()} of site {name}", context, feedback, band=bands[1]
            )
            sites.append({"name": name, "dsm": dsm_path, kind: ref_path})
            inputs += [dsm_path, ref_path]
        output = self.parameterAsString(parameters, self.OUTPUT, context)
        params = {**self.engine_params(parameters, context), "output": output, "sites": sites}
        params = self.with_options(params, parameters, context)
        return self.request(params, inputs, [output])

    def outputs(self, result, parameters, context, feedback):
        counts = result.get("counts") or {}
        return {
            "OUTPUT": result.get("output"),
            "MANIFEST": result.get("manifest"),
            "TRAIN_TILES": counts.get("train", 0),
            "VAL_TILES": counts.get("val", 0),
            "TEST_TILES": counts.get("test", 0),
        }

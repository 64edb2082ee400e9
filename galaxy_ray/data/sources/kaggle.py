"""The Kaggle "Galaxy Zoo - The Galaxy Challenge" layout.

Labelled: a directory with ``training_solutions_rev1.csv`` (``GalaxyID``,
``Class1.1`` ... ``Class11.6``, already cumulative fractions, so taken as they
are) and the images ``<GalaxyID>.jpg`` in ``images_training_rev1/`` or beside
the CSV.  Unlabelled: a directory holding only ``.jpg`` files (the challenge's
``images_test_rev1/``); ``object_id`` is the file stem and ``votes`` is null.
Kaggle cutouts carry no coordinates: ``ra`` and ``dec`` are null.
"""

from __future__ import annotations

import pandas as pd

from galaxy_ray.io import storage
from galaxy_ray.errors import GalaxyRayError
from galaxy_ray.schema import GZ2_KAGGLE_COLUMNS, CatalogColumns as C
from galaxy_ray.data.sources._common import PATH, FileRowsSource
from galaxy_ray.data.sources.listing import SourceListing, as_listing, basename, list_source
from galaxy_ray.data.sources.tables import read_table

#: The challenge's labels: ``GalaxyID`` and the 37 cumulative vote fractions.
SOLUTIONS = "training_solutions_rev1.csv"
ID = "GalaxyID"
#: The challenge's folder of labelled cutouts, ``<GalaxyID>.jpg``.
TRAINING_IMAGES = "images_training_rev1"
#: Folders searched for the labelled cutouts, in order (else beside the CSV).
IMAGE_DIRS = (TRAINING_IMAGES, "images_training", "images")
IMAGE_SUFFIXES = (".jpg", ".jpeg")


class KaggleGZ2(FileRowsSource):
    """The Kaggle challenge's training folder (votes) or test folder (images only)."""

    format = "kaggle-gz2"

    def __init__(self, source: SourceListing | str) -> None:
        listing = as_listing(source)
        super().__init__(listing)
        self.root = listing.folder
        if listing.is_dir:
            self.solutions = listing.named(SOLUTIONS)
        else:
            self.solutions = listing.uri
        if self.solutions is not None:
            self.image_dir = next((storage.join(self.root, d) for d in IMAGE_DIRS if listing.has_subdir(d)),
                                  self.root)

    def metadata(self) -> pd.DataFrame:
        if self.solutions is None:
            files = (self.listing or list_source(self.root)).files_with(IMAGE_SUFFIXES)
            if not files:
                raise GalaxyRayError(f"{self.root}: no {SOLUTIONS} and no .jpg cutouts; not a Kaggle GZ2 folder")
            return pd.DataFrame({C.OBJECT_ID: [basename(f).rsplit(".", 1)[0] for f in files], PATH: files})
        table = read_table(self.solutions, columns_as_string=[ID], id_columns=[ID])
        if ID not in table.columns:
            raise GalaxyRayError(f"{self.solutions}: no '{ID}' column; expected GalaxyID, Class1.1 ... Class11.6")
        missing = [c for c in GZ2_KAGGLE_COLUMNS if c not in table.columns]
        if missing:
            raise GalaxyRayError(
                f"{self.solutions}: missing vote columns {', '.join(missing[:5])}; expected Class1.1 ... Class11.6"
            )
        ids = table[ID].astype(str).str.strip()
        meta = pd.DataFrame({C.OBJECT_ID: ids, PATH: [storage.join(self.image_dir, f"{i}.jpg") for i in ids]})
        self.check_cutouts(meta[PATH], self.solutions, f"<{ID}>.jpg",
                           f"put the challenge's images in {TRAINING_IMAGES}/ beside {SOLUTIONS}")
        for c in GZ2_KAGGLE_COLUMNS:
            meta[c] = table[c].astype("float64").to_numpy()
        return meta

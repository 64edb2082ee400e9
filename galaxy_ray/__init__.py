"""galaxy-ray: galaxy morphology catalogs at survey scale with Ray."""

__version__ = "0.1.0"

"""The FEST M30 drug catalogue (DMP's "Forskrivnings- og ekspedisjonsstøtte").

This package owns the file format: the streaming parser (:mod:`fest.parser`), the typed
records extracted from each entry (:mod:`fest.records`), the catalogue tables
(:mod:`fest.schema`), the versioned loader (:mod:`fest.loader`), XSD validation
(:mod:`fest.validate`) and the synthetic-catalogue generator (:mod:`fest.synth`).
It never imports :mod:`medloop` or :mod:`interactions`.
"""

from fest.errors import FestFormatError, FestImportRejected
from fest.loader import ImportResult, import_catalogue

__all__ = ["FestFormatError", "FestImportRejected", "ImportResult", "import_catalogue"]

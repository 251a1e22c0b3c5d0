"""Search by photo: index a catalogue with any model (:mod:`.build`, :mod:`.index`), query it
with optional test-time background removal (:mod:`.service`), serve it with a web page
(:mod:`.server`, needs ``pip install 'bgbias[serve]'``)."""

from .build import build_index
from .catalogue import Catalogue, CatalogueItem, read_catalogue
from .index import INDEX_TYPES, SearchIndex
from .service import SearchService, ServeOptions

__all__ = [
    "INDEX_TYPES",
    "Catalogue",
    "CatalogueItem",
    "SearchIndex",
    "SearchService",
    "ServeOptions",
    "build_index",
    "read_catalogue",
]

"""layerdiff: what each layer of a container image adds, changes and wastes.

The public API:

    open_image(source)      read a docker save archive or an OCI layout
    inspect_image(image)    classify every layer and account for waste
    merged_view(image)      the filesystem the layers give
"""

from .archive import Image, open_image
from .errors import LayerdiffError
from .inspect import inspect_image, merged_view
from .model import Change, ChangeKind, Entry, EntryType, Finding, ImageReport

__all__ = [
    "open_image",
    "inspect_image",
    "merged_view",
    "Image",
    "ImageReport",
    "Entry",
    "EntryType",
    "Change",
    "ChangeKind",
    "Finding",
    "LayerdiffError",
]

__version__ = "0.1.0"

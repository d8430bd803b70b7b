"""layerdiff: what each layer of a container image adds, changes and wastes.

The public API:

    open_image(source)      read a docker save archive or an OCI layout
    inspect_image(image)    classify every layer and account for waste
    merged_view(image)      the filesystem the layers give
    read_upperdir(path)     an overlay upper dir (or a tar of one) as a changeset
    read_container(upper)   a container's changes against its base, for a commit
    commit_container(c, o)  write the base image plus the container's new layer
"""

from .archive import Image, open_image
from .changes import read_container
from .commit import commit_container
from .errors import LayerdiffError
from .inspect import inspect_image, merged_view
from .model import Change, ChangeKind, Entry, EntryType, Finding, ImageReport
from .upperdir import read_upperdir

__all__ = [
    "open_image",
    "inspect_image",
    "merged_view",
    "read_upperdir",
    "read_container",
    "commit_container",
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

"""RFC 3894 copy: the :copy tag on redirect and fileinto (the implicit keep stays).

Never: change anything but the Action's copy field.
"""
from .. import registry
from ..registry import TagSpec

registry.add_tag(["redirect", "fileinto"], TagSpec("copy", "copy"), tests=False)

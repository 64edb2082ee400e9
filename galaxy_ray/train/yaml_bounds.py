"""YAML read with bounded memory: a file's aliases may expand it only so far (``--config`` files)."""

from __future__ import annotations

from typing import Any

from galaxy_ray.errors import GalaxyRayError

__all__ = ["bounded_yaml", "expanded_values"]


def expanded_values(node, limit: int) -> int:
    """How many values a composed YAML node holds once its aliases are expanded, counted up to ``limit + 1``.

    PyYAML composes an alias as the node it names, shared, so the graph stays
    as small as the text; each shared node is measured once.  A node met again
    while it is being measured (a recursive alias, ``&a [*a]``) counts as more
    than ``limit``: expanded, it never ends.
    """
    import yaml

    sizes: dict[int, int] = {}

    def expanded(n) -> int:
        if id(n) not in sizes:
            sizes[id(n)] = limit + 1  # while being measured
            if isinstance(n, yaml.MappingNode):
                children = [c for pair in n.value for c in pair]
            else:
                children = n.value if isinstance(n, yaml.SequenceNode) else []
            total = 1
            for child in children:
                total += expanded(child)
                if total > limit:
                    break
            sizes[id(n)] = total
        return sizes[id(n)]

    return expanded(node)


def bounded_yaml(text: str, where: str, max_values: int) -> Any:
    """YAML text as Python values (``yaml.safe_load``), refused when its aliases expand beyond ``max_values``.

    Composing a "billion laughs" (9 levels of 9 aliases, a few hundred bytes)
    is cheap; what costs gigabytes is any later walk over its values (a
    message, ``str``, JSON).  So the composed graph is measured first.

    Raises
    ------
    GalaxyRayError
        More than ``max_values`` values once expanded, or a recursive alias (one line, naming ``where``).
    yaml.YAMLError
        Text that is not YAML.
    """
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is not None and expanded_values(node, max_values) > max_values:
        raise GalaxyRayError(f"{where}: its YAML aliases expand to more than {max_values:,} values (an alias bomb, "
                             "or a recursive alias); write the options out without anchors")
    return yaml.safe_load(text)

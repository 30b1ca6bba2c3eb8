"""Package list for setuptools (everything else is in pyproject.toml).

``zoo._weights`` and ``zoo._configs`` are the repository's ``weights/`` and ``configs/`` folders mapped into the
package, so the wheel ships the weights manifest and the det/seg/cls configs as package data without a second copy
in the repository. In a source checkout and an editable install the links ``zoo/_weights`` and ``zoo/_configs`` point
at the same folders, so ``importlib.resources`` finds them everywhere. The config folders are listed as (namespace)
packages too, so setuptools does not warn that they look importable.
"""
from setuptools import find_namespace_packages, find_packages, setup

setup(
    packages=(find_packages(include=['zoo', 'zoo.*']) + ['zoo._weights', 'zoo._configs']
              + ['zoo._configs.' + p for p in find_namespace_packages(where='configs')]),
    package_dir={'zoo._weights': 'weights', 'zoo._configs': 'configs'},
)

"""omix: the library behind the multi-omics biomarker workflow.

Layout follows scanpy's split: ``io`` (read/validate/write), ``pp`` (per-omic normalisation),
``tl`` (integration, ranking, clustering), ``pl`` (plots).  Rule scripts in
``workflow/scripts/*.py`` are thin wrappers around one function of this package each; every
function here is importable and unit-tested without Snakemake.
"""

__version__ = "0.1.0"
